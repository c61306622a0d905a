"""The guest's RTC changes (QMP ``RTC_CHANGE``), as libvirt records them.

QEMU reports each change as the RTC's offset from the base it started with. With ``<clock
offset='variable'>`` libvirt keeps the guest's time across its restarts by recording the new offset into
the live XML's ``adjustment``: the adjustment the domain started with plus QEMU's offset (the sum of all
changes since the start, not the last one). Every change is also published as the ``rtc-change`` event
(virsh's, detail: QEMU's offset in seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess


def on_rtc_change(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, data: dict[str, Any]) -> None:
    """Apply one ``RTC_CHANGE`` (``obj.lock`` held)."""
    offset = int(data.get("offset", 0))
    clock = obj.live.clock if obj.live is not None else None
    if clock is not None and clock.offset == "variable":
        clock.adjustment = (proc.record.rtc_adjustment0 or 0) + offset
        reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "rtc-change", str(offset))

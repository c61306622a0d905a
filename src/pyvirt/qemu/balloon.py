"""The memory balloon at start, as libvirt sets it up before the guest runs.

``<currentMemory>`` below ``<memory>`` becomes the balloon target, and ``<memballoon><stats period>``
the interval at which the guest reports its memory statistics. QEMU takes neither on its command line
(``guest-stats-polling-interval`` is a QOM property, the target a QMP command), so both are set over QMP
while the guest is still paused. Validation has already refused them without a virtio balloon.
"""

from __future__ import annotations

from pyvirt.conf.domain import Domain
from pyvirt.qemu.monitor import Monitor


async def configure(monitor: Monitor, dom: Domain) -> None:
    balloon = dom.devices.memballoon
    if balloon is None or balloon.model != "virtio":
        return
    if dom.current_kib < dom.memory_kib:
        await monitor.execute("balloon", {"value": dom.current_kib * 1024})
    if balloon.stats_period is not None:
        path = f"/machine/peripheral/{balloon.alias or 'balloon0'}"
        arguments = {"path": path, "property": "guest-stats-polling-interval", "value": balloon.stats_period}
        await monitor.execute("qom-set", arguments)

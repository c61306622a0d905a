"""Whether this host's KVM can run ordinary guests, or QEMU (and the libguestfs appliance) must use TCG.

``/dev/kvm`` existing is not enough: a paravirtual nested KVM (the ``kvm_pvm`` module) accepts the
ioctls but hangs ordinary guest kernels, so it counts as unusable. The QEMU driver and the libguestfs
appliance ask the same question through :func:`kvm_usable`.
"""

from __future__ import annotations

import os
from pathlib import Path

KVM_DEVICE = Path("/dev/kvm")
PVM_MODULE = Path("/sys/module/kvm_pvm")


def kvm_usable(device: Path = KVM_DEVICE, pvm_module: Path = PVM_MODULE) -> tuple[bool, str]:
    """Return ``(usable, reason)``; ``reason`` says why KVM cannot be used, or what is used."""
    if not device.exists():
        return False, f"{device} does not exist (no KVM module loaded, or no hardware virtualisation)"
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return False, f"cannot open {device}: {err.strerror}"
    os.close(fd)
    if pvm_module.exists():
        return False, "paravirtual nested KVM (kvm_pvm) hangs ordinary guest kernels"
    return True, f"{device} is usable"

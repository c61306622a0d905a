"""Where a SCSI disk sits on its controller, and its device id, as libvirt 9.0 gives them per model.

On the parallel-SCSI HBAs (``lsilogic``, ``am53c974``, ``dc390``: one LUN per target) libvirt puts a
disk on bus ``scsiN.BUS`` with its address's unit as the SCSI id and no channel or LUN (its target must
be 0: QEMU's ``lsi`` refuses a LUN other than 0); on the others (virtio-scsi, the SAS HBAs, pvscsi) on
``scsiN.0`` with channel, scsi-id and lun from bus, target and unit. A disk on an ``lsilogic``
controller has the id ``scsiN-BUS-UNIT``, on the others ``scsiN-BUS-TARGET-UNIT``. A SCSI disk whose
controller is not in the definition has libvirt's default model's (:mod:`pyvirt.conf.implicit_devices`).
"""

from __future__ import annotations

from pyvirt.conf.domain import Domain
from pyvirt.conf.implicit_devices import DEFAULT_SCSI_MODEL
from pyvirt.errors import UnsupportedConfig

PARALLEL_MODELS = ("lsilogic", "am53c974", "dc390")


def controller_model(dom: Domain, controller: int) -> str:
    """The model of SCSI controller ``controller`` of ``dom`` (libvirt's default when it has none)."""
    model = next(
        (c.model for c in dom.devices.controllers if c.type == "scsi" and c.index == controller), None
    )
    return model or DEFAULT_SCSI_MODEL


def placement(dom: Domain, address: tuple[int, int, int, int], what: str) -> dict[str, int | str]:
    """``bus`` and the SCSI address properties of a ``scsi-*`` device at ``(controller, bus, target,
    unit)``; ``what`` names the disk in an error."""
    controller, bus, target, unit = address
    model = controller_model(dom, controller)
    if model in PARALLEL_MODELS:
        if target != 0:
            raise UnsupportedConfig(
                f"unsupported configuration: {what}: target must be 0 for controller model '{model}'"
            )
        return {"bus": f"scsi{controller}.{bus}", "scsi-id": unit}
    return {"bus": f"scsi{controller}.0", "channel": bus, "scsi-id": target, "lun": unit}


def device_id(dom: Domain, address: tuple[int, int, int, int]) -> str:
    controller, bus, target, unit = address
    if controller_model(dom, controller) == "lsilogic":
        return f"scsi{controller}-{bus}-{unit}"
    return f"scsi{controller}-{bus}-{target}-{unit}"

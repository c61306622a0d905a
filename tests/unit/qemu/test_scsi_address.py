"""SCSI disk placement and ids per controller model, as libvirt 9.0's ``domxml-to-native`` gives them."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain import ControllerConfig, Domain
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu import scsi_address


def _dom(model: str | None) -> Domain:
    dom = Domain(name="s")
    if model is not None:
        dom.devices.controllers.append(ControllerConfig(type="scsi", index=0, model=model))
    return dom


@pytest.mark.parametrize(
    ("model", "props", "dev_id"),
    [
        ("lsilogic", {"bus": "scsi0.0", "scsi-id": 1}, "scsi0-0-1"),
        (None, {"bus": "scsi0.0", "scsi-id": 1}, "scsi0-0-1"),  # libvirt's default model: lsilogic
        ("dc390", {"bus": "scsi0.0", "scsi-id": 1}, "scsi0-0-0-1"),
        ("am53c974", {"bus": "scsi0.0", "scsi-id": 1}, "scsi0-0-0-1"),
        ("virtio-scsi", {"bus": "scsi0.0", "channel": 0, "scsi-id": 0, "lun": 1}, "scsi0-0-0-1"),
        ("lsisas1078", {"bus": "scsi0.0", "channel": 0, "scsi-id": 0, "lun": 1}, "scsi0-0-0-1"),
    ],
)
def test_unit_one_per_model(model: str | None, props: dict[str, object], dev_id: str) -> None:
    dom = _dom(model)
    assert scsi_address.placement(dom, (0, 0, 0, 1), "disk 'sdb'") == props
    assert scsi_address.device_id(dom, (0, 0, 0, 1)) == dev_id


def test_a_target_on_a_parallel_hba_is_refused() -> None:
    with pytest.raises(UnsupportedConfig, match="'sdb': target must be 0 for controller model 'lsilogic'"):
        scsi_address.placement(_dom("lsilogic"), (0, 0, 2, 0), "disk 'sdb'")

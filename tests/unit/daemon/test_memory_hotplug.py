"""The QMP arguments of a plugged DIMM (pyvirt.daemon.memory_hotplug): the last module's backend and
device from the command-line builder, so that a plug and a start name them alike."""

from __future__ import annotations

import json

from pyvirt.daemon.memory_hotplug import _last_module_args


def test_the_last_modules_objects_and_device() -> None:
    first = ["-object", json.dumps({"qom-type": "memory-backend-ram", "id": "memdimm0"})]
    first += ["-device", json.dumps({"driver": "pc-dimm", "id": "dimm0"})]
    second = ["-object", json.dumps({"qom-type": "thread-context", "id": "tc-memdimm1"})]
    second += ["-object", json.dumps({"qom-type": "memory-backend-ram", "id": "memdimm1", "size": 1})]
    second += ["-device", json.dumps({"driver": "pc-dimm", "id": "dimm1", "slot": 1})]
    assert _last_module_args(first) == (
        [{"qom-type": "memory-backend-ram", "id": "memdimm0"}],
        {"driver": "pc-dimm", "id": "dimm0"},
    )
    objects, device = _last_module_args(first + second)
    assert [o["id"] for o in objects] == ["tc-memdimm1", "memdimm1"] and device["id"] == "dimm1"

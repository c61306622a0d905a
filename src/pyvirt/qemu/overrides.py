"""``<qemu:override>`` applied to a built command line: each ``-device`` whose id is an overridden alias
gets its properties set or removed, in the option's own syntax (``key=value`` or JSON), as libvirt 9.0
does (it builds every ``-device`` as JSON and edits that). An alias no device has is refused by name.
"""

from __future__ import annotations

import json

from pyvirt.conf.qemu_ns import Property, QemuNamespace
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu import keyval


def apply(ns: QemuNamespace, argv: list[str]) -> None:
    """Edit ``argv`` in place."""
    pending = dict(ns.overrides)
    for i in range(len(argv) - 1):
        if argv[i] != "-device":
            continue
        value = argv[i + 1]
        if value.startswith("{"):
            spec = json.loads(value)
            if (props := pending.pop(str(spec.get("id")), None)) is not None:
                for prop in props:
                    _set_json(spec, prop)
                argv[i + 1] = json.dumps(spec, separators=(",", ":"))
            continue
        items = keyval.split(value)
        pairs = [item.split("=", 1) if "=" in item else [item, ""] for item in items[1:]]
        ident = next((v for k, v in pairs if k == "id"), None)
        if ident is None or (props := pending.pop(ident, None)) is None:
            continue
        current = {k: v for k, v in pairs}
        for prop in props:
            if prop.type == "remove":
                current.pop(prop.name, None)
            else:
                assert prop.value is not None
                current[prop.name] = _keyval_value(prop)
        argv[i + 1] = ",".join([items[0], *(f"{k}={keyval.escape(v)}" for k, v in current.items())])
    if pending:
        alias = next(iter(pending))
        raise UnsupportedConfig(
            f"unsupported configuration: <qemu:device alias='{alias}'> of qemu:override: "
            "no device has that alias"
        )


def _keyval_value(prop: Property) -> str:
    assert prop.value is not None
    if prop.type == "bool":
        return "on" if prop.value == "true" else "off"
    return prop.value


def _set_json(spec: dict[str, object], prop: Property) -> None:
    if prop.type == "remove":
        spec.pop(prop.name, None)
    elif prop.type in ("signed", "unsigned"):
        spec[prop.name] = int(prop.value or "0")
    elif prop.type == "bool":
        spec[prop.name] = prop.value == "true"
    else:
        spec[prop.name] = prop.value

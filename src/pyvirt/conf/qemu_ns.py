"""libvirt's QEMU namespace (``xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'``), as libvirt 9.0
applies it:

- ``<qemu:commandline>``: ``<qemu:arg value>`` appended to QEMU's command line, ``<qemu:env name value>``
  set in its environment (a missing value is the empty string);
- ``<qemu:override><qemu:device alias><qemu:frontend><qemu:property name type value>``: a property of the
  ``-device`` whose id is the alias set (``string``, ``signed``, ``unsigned``, ``bool``) or removed
  (``remove``) (:mod:`pyvirt.qemu.overrides`);
- ``<qemu:deprecation behavior>``: QEMU's ``-compat`` policy for deprecated interfaces (``omit``: hide
  them; ``reject``/``crash``: also refuse or abort on their use);
- ``<qemu:capabilities><qemu:add|del capability>``: libvirt's switches of its probed QEMU features.
  pyvirt probes no such flags. Those libvirt 9.0 has retired (:data:`RETIRED_CAPABILITIES`: it keeps
  their names but no code reads them) change nothing in libvirt either, and are accepted as such; any
  other switch would change what libvirt runs, and is refused by name.

A domain using any of it is *tainted*, as libvirt marks it: ``custom-argv`` (command line, environment,
capabilities, deprecation) and ``custom-device`` (overrides), shown by ``dominfo`` as libvirt's
``Messages:`` and written to the domain's log when it starts. Any prefix bound to the namespace is
read; the definition is written back with ``qemu:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain

NS = "http://libvirt.org/schemas/domain/qemu/1.0"
PROPERTY_TYPES = ("string", "signed", "unsigned", "bool", "remove")
DEPRECATION = ("none", "omit", "reject", "crash")
# libvirt's capability flags that were retired (X_QEMU_CAPS_*) long before 9.0: named in its table, read by
# no code, so switching them changes nothing there either
RETIRED_CAPABILITIES = frozenset(
    {
        "vnc-colon", "no-reboot", "drive", "drive-boot", "name", "uuid", "domid", "vnet-hdr",
        "migrate-kvm-stdio", "migrate-qemu-tcp", "migrate-qemu-exec", "drive-cache-v2", "drive-format",
        "vga", "0.10", "pci-device", "mem-path", "drive-serial", "xen-domid", "migrate-qemu-unix",
        "chardev", "enable-kvm", "monitor-json", "balloon", "device", "sdl", "smp-topology", "netdev",
        "rtc", "vhost-net", "rtc-td-hack",
    }
)  # fmt: skip
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# libvirt's taint flags and the words its messages give them
TAINT_MESSAGES = {
    "custom-argv": "custom configuration parameters specified",
    "custom-device": "custom device configuration",
}


@dataclass
class Property:
    name: str
    type: str
    value: str | None  # None for 'remove'


@dataclass
class QemuNamespace:
    args: list[str] = field(default_factory=list)
    env: list[tuple[str, str | None]] = field(default_factory=list)
    caps_add: list[str] = field(default_factory=list)
    caps_del: list[str] = field(default_factory=list)
    overrides: dict[str, list[Property]] = field(default_factory=dict)  # device alias → its properties
    deprecation: str | None = None


def parse(root: Elem) -> QemuNamespace | None:
    """The namespace's elements under ``<domain>`` ``root``, or None when it binds none."""
    prefix = next(
        (
            name[len("xmlns:") :]
            for name, value in root.node.attrib.items()
            if name.startswith("xmlns:") and value == NS
        ),
        None,
    )
    if prefix is None:
        return None
    root.skip(f"xmlns:{prefix}")
    ns = QemuNamespace()
    for node in root.children(f"{prefix}:commandline"):
        for arg in node.children(f"{prefix}:arg"):
            ns.args.append(arg.require("value"))
            arg.done()
        for env in node.children(f"{prefix}:env"):
            name = env.require("name")
            if not _ENV_NAME.fullmatch(name):
                raise XMLError(f"invalid environment name '{name}' in '{env.path}'")
            ns.env.append((name, env.attr("value")))
            env.done()
        node.done()
    for node in root.children(f"{prefix}:capabilities"):
        for kind, into in (("add", ns.caps_add), ("del", ns.caps_del)):
            for cap in node.children(f"{prefix}:{kind}"):
                name = cap.require("capability")
                if name not in RETIRED_CAPABILITIES:
                    raise UnsupportedConfig(
                        f"unsupported configuration: qemu:capabilities '{name}' of '{cap.path}' switches"
                        " one of libvirt's probed QEMU features, which pyvirt does not have (only the"
                        " switches libvirt 9.0 has retired, which change nothing, are accepted)"
                    )
                into.append(name)
                cap.done()
        node.done()
    for node in root.children(f"{prefix}:override"):
        for dev in node.children(f"{prefix}:device"):
            alias = dev.require("alias")
            props = ns.overrides.setdefault(alias, [])
            for frontend in dev.children(f"{prefix}:frontend"):
                for prop in frontend.children(f"{prefix}:property"):
                    props.append(_property(prop))
                    prop.done()
                frontend.done()
            dev.done()
        node.done()
    for node in root.children(f"{prefix}:deprecation"):
        ns.deprecation = node.choice("behavior", DEPRECATION, required=True)
        node.done()
    return ns


def _property(e: Elem) -> Property:
    name = e.require("name")
    kind = e.choice("type", PROPERTY_TYPES, required=True) or "string"
    value = e.attr("value")
    if kind == "remove":
        if value is not None:
            raise XMLError(f"property '{name}' of '{e.path}' of type 'remove' takes no value")
        return Property(name, kind, None)
    if value is None:
        raise XMLError(f"missing attribute 'value' of property '{name}' in '{e.path}'")
    if kind == "signed" and not re.fullmatch(r"-?[0-9]+", value):
        raise XMLError(f"value '{value}' of signed property '{name}' is not an integer")
    if kind == "unsigned" and not re.fullmatch(r"[0-9]+", value):
        raise XMLError(f"value '{value}' of unsigned property '{name}' is not an unsigned integer")
    if kind == "bool" and value not in ("true", "false"):
        raise XMLError(f"value '{value}' of bool property '{name}' must be 'true' or 'false'")
    return Property(name, kind, value)


def write(ns: QemuNamespace) -> list[XNode]:
    out: list[XNode] = []
    if ns.args or ns.env:
        line = x("qemu:commandline").add(*(x("qemu:arg", {"value": a}) for a in ns.args))
        out.append(line.add(*(x("qemu:env", {"name": n, "value": v}) for n, v in ns.env)))
    if ns.caps_add or ns.caps_del:
        caps = x("qemu:capabilities").add(*(x("qemu:add", {"capability": c}) for c in ns.caps_add))
        out.append(caps.add(*(x("qemu:del", {"capability": c}) for c in ns.caps_del)))
    if ns.overrides:
        override = x("qemu:override")
        for alias, props in ns.overrides.items():
            frontend = x("qemu:frontend").add(
                *(x("qemu:property", {"name": p.name, "type": p.type, "value": p.value}) for p in props)
            )
            override.add(x("qemu:device", {"alias": alias}).add(frontend))
        out.append(override)
    if ns.deprecation is not None:
        out.append(x("qemu:deprecation", {"behavior": ns.deprecation}))
    return out


def environment(dom: Domain) -> dict[str, str]:
    ns = dom.qemu_ns
    return {name: value or "" for name, value in ns.env} if ns is not None else {}


def compat(ns: QemuNamespace) -> dict[str, object] | None:
    """``-compat`` (JSON) for the deprecation behaviour, as libvirt gives it."""
    if ns.deprecation in (None, "none"):
        return None
    policy: dict[str, object] = {"deprecated-output": "hide"}
    if ns.deprecation in ("reject", "crash"):
        policy["deprecated-input"] = ns.deprecation
    return policy


def taints(dom: Domain) -> list[str]:
    """libvirt's taint flags for what the domain asks through the namespace."""
    ns = dom.qemu_ns
    if ns is None:
        return []
    flags = []
    if ns.args or ns.env or ns.caps_add or ns.caps_del or ns.deprecation not in (None, "none"):
        flags.append("custom-argv")
    if ns.overrides:
        flags.append("custom-device")
    return flags


def messages(dom: Domain) -> list[str]:
    """``dominfo``'s ``Messages:``: each taint in libvirt's words, then the capability switches."""
    out = [f"tainted: {TAINT_MESSAGES[flag]}" for flag in taints(dom)]
    ns = dom.qemu_ns
    if ns is not None and (ns.caps_add or ns.caps_del):
        names = ", ".join([*(f"+{c}" for c in ns.caps_add), *(f"-{c}" for c in ns.caps_del)])
        out.append(f"qemu:capabilities {names} change nothing: libvirt 9.0 has retired them")
    return out

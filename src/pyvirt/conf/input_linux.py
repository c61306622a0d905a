"""``<input type='evdev'>``: a host input device (``/dev/input/eventN``) shared with the guest through
QEMU's ``input-linux`` object, as libvirt 9.0 gives it.

``<source dev grab='all' grabToggle='KEYS' repeat='on|off'/>`` becomes ``-object input-linux`` with
``evdev``, ``grab_all``, ``grab-toggle`` and ``repeat``: QEMU reads the host device and feeds its events
to the guest's keyboard and mouse (the host loses them while grabbed; the toggle keys switch). There is
no guest device and no bus. The options are kept in ``InputConfig.evdev_options`` under their XML names;
the device itself in ``InputConfig.evdev``, handed to QEMU's user as a passthrough device is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import InputConfig

GRAB_TOGGLES = ("ctrl-ctrl", "alt-alt", "shift-shift", "meta-meta", "scrolllock", "ctrl-scrolllock")


def parse(e: Elem, dev: InputConfig) -> None:
    """The ``<source>`` of an evdev ``<input>`` into ``dev``."""
    source = e.child("source")
    if source is None:
        raise XMLError(f"'{e.path}' of type 'evdev' needs <source dev>")
    dev.evdev = source.require("dev")
    if not dev.evdev.startswith("/dev/input/"):
        raise XMLError(f"dev '{dev.evdev}' of '{source.path}' must be a device under /dev/input")
    for name, values in (("grab", ("all",)), ("grabToggle", GRAB_TOGGLES), ("repeat", ("on", "off"))):
        if (value := source.choice(name, values)) is not None:
            dev.evdev_options[name] = value
    source.done()


def write(dev: InputConfig) -> XNode:
    return x("source", {"dev": dev.evdev, **dev.evdev_options})


def qemu_object(dev: InputConfig, ident: str) -> dict[str, object]:
    opts = dev.evdev_options
    obj: dict[str, object] = {"qom-type": "input-linux", "id": ident, "evdev": dev.evdev}
    if "repeat" in opts:
        obj["repeat"] = opts["repeat"] == "on"
    if opts.get("grab") == "all":
        obj["grab_all"] = True
    if "grabToggle" in opts:
        obj["grab-toggle"] = opts["grabToggle"]
    return obj

"""A VNC display's options beyond its listener, as libvirt writes them on ``<graphics type='vnc'>``.

- ``sharePolicy='allow-exclusive|force-shared|ignore'``: ``-vnc ...,share=`` (how clients share the
  display);
- ``powerControl='yes'``: ``power-control=on`` (a client may reset, reboot or stop the guest);
- ``websocket='N'``: ``websocket=N``, a WebSocket listener on port N of the same address (an
  automatic port, ``-1``, is refused: pyvirt allocates none).

Kept in ``GraphicsConfig.vnc`` under the XML names; a SPICE display with any of them is refused.
The legacy ``socket='PATH'`` attribute is read by the parser as ``<listen type='socket' socket=PATH>``.
"""

from __future__ import annotations

from pyvirt.conf.xmlutil import Elem
from pyvirt.errors import UnsupportedConfig

SHARE_POLICIES = ("allow-exclusive", "force-shared", "ignore")


def parse(e: Elem, options: dict[str, str]) -> None:
    if (share := e.choice("sharePolicy", SHARE_POLICIES)) is not None:
        options["sharePolicy"] = share
    if (power := e.choice("powerControl", ("yes", "no"))) is not None:
        options["powerControl"] = power
    if (websocket := e.integer("websocket", minimum=-1, maximum=65535)) is not None:
        if websocket == -1:
            raise UnsupportedConfig(
                f"unsupported configuration: attribute 'websocket' = '-1' of '{e.path}': pyvirt picks no "
                "WebSocket port (give one)"
            )
        options["websocket"] = str(websocket)


def check(kind: str, options: dict[str, str]) -> None:
    if options and kind != "vnc":
        names = ", ".join(sorted(options))
        raise UnsupportedConfig(f"unsupported configuration: {names} of graphics type '{kind}' (VNC only)")


def props(options: dict[str, str]) -> str:
    """The ``,key=value`` tail of ``-vnc`` for the options."""
    out = ""
    if "sharePolicy" in options:
        out += f",share={options['sharePolicy']}"
    if "websocket" in options:
        out += f",websocket={options['websocket']}"
    if options.get("powerControl") == "yes":
        out += ",power-control=on"
    return out

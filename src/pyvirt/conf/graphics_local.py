"""Displays on the host besides VNC and SPICE's network ones, and the display settings libvirt 9.0 applies
over QMP, as libvirt gives them to QEMU:

- ``<graphics type='sdl' display xauth fullscreen>`` (``<gl enable>``): a window on an X display,
  ``-display sdl[,gl=on]`` (``-full-screen``), ``DISPLAY``/``XAUTHORITY`` in QEMU's environment;
- ``<graphics type='egl-headless'>`` (``<gl rendernode>``): OpenGL rendering on the host's GPU for
  another display or for a mediated device's, ``-display egl-headless[,rendernode=]``;
- SPICE's ``<gl enable='yes' rendernode>``: ``-spice ...,gl=on,rendernode=``;
- ``passwdValidTo`` (VNC, SPICE): the password expires then (QMP ``expire_password`` at start, time
  in UTC as libvirt reads it); ``connected`` (SPICE: keep, disconnect, fail): what a password change
  does to the connected clients (``set_password``'s ``connected``).

Debian's QEMU has SDL only with ``qemu-system-gui`` (``ui-sdl.so``), and a daemon has no X display of
its own: an SDL display is defined anywhere and refused by name at start where it cannot open. OpenGL
needs a DRM render node (``/dev/dri/renderD*``): a domain asking for one is refused at start on a host
without it.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain, GraphicsConfig

LOCAL_TYPES = ("sdl", "egl-headless")
QEMU_MODULE_DIR = Path("/usr/lib/x86_64-linux-gnu/qemu")
DRI_DIR = Path("/dev/dri")
CONNECTED = ("keep", "disconnect", "fail")


def parse_local(e: Elem, gfx: GraphicsConfig) -> None:
    """An ``sdl`` or ``egl-headless`` display (``gfx.type`` set); the caller calls ``e.done()``."""
    gfx.autoport, gfx.port, gfx.listen = False, None, ""
    if gfx.type == "sdl":
        for name in ("display", "xauth"):
            if (value := e.attr(name)) is not None:
                gfx.local[name] = value
        if (full := e.choice("fullscreen", ("yes", "no"))) is not None:
            gfx.local["fullscreen"] = full
    parse_gl(e, gfx)


def parse_gl(e: Elem, gfx: GraphicsConfig) -> None:
    node = e.child("gl")
    if node is None:
        return
    if gfx.type in ("sdl", "spice"):
        gfx.gl["enable"] = node.choice("enable", ("yes", "no"), required=True) or "no"
    if gfx.type in ("spice", "egl-headless") and (render := node.attr("rendernode")) is not None:
        if not render.startswith("/dev/"):
            raise XMLError(f"rendernode '{render}' of '{node.path}' must be a device under /dev")
        gfx.gl["rendernode"] = render
    node.done()


def parse_password_settings(e: Elem, gfx: GraphicsConfig) -> None:
    if (valid_to := e.attr("passwdValidTo")) is not None:
        expires_at(valid_to, e.path)
        gfx.passwd_valid_to = valid_to
    if (connected := e.choice("connected", CONNECTED)) is not None:
        if gfx.type != "spice" and connected != "keep":
            raise UnsupportedConfig(
                f"unsupported configuration: connected='{connected}' of graphics type '{gfx.type}' "
                "(only SPICE disconnects its clients)"
            )
        gfx.connected = connected


def expires_at(valid_to: str, where: str) -> int:
    """``passwdValidTo`` as seconds since the epoch (libvirt reads it as UTC)."""
    try:
        return calendar.timegm(time.strptime(valid_to, "%Y-%m-%dT%H:%M:%S"))
    except ValueError as err:
        raise XMLError(f"passwdValidTo '{valid_to}' of '{where}' is not YYYY-MM-DDTHH:MM:SS") from err


def write_local(gfx: GraphicsConfig) -> XNode:
    node = x("graphics", {"type": gfx.type, **gfx.local})
    return node.add(write_gl(gfx))


def write_gl(gfx: GraphicsConfig) -> XNode | None:
    return (
        x("gl", {"enable": gfx.gl.get("enable"), "rendernode": gfx.gl.get("rendernode")}) if gfx.gl else None
    )


def display_args(gfx: GraphicsConfig) -> list[str]:
    """QEMU's options for an ``sdl`` or ``egl-headless`` display."""
    if gfx.type == "sdl":
        spec = "sdl" + (
            "" if "enable" not in gfx.gl else f",gl={'on' if gfx.gl['enable'] == 'yes' else 'off'}"
        )
        return [*(["-full-screen"] if gfx.local.get("fullscreen") == "yes" else []), "-display", spec]
    render = gfx.gl.get("rendernode")
    return ["-display", "egl-headless" + (f",rendernode={render}" if render else "")]


def spice_props(gfx: GraphicsConfig) -> dict[str, str | None]:
    if gfx.gl.get("enable") != "yes":
        return {}  # libvirt gives QEMU nothing for enable='no' (its default)
    return {"gl": "on", "rendernode": gfx.gl.get("rendernode")}


def environment(dom: Domain) -> dict[str, str]:
    env: dict[str, str] = {}
    for gfx in dom.devices.graphics:
        if gfx.type == "sdl":
            if "xauth" in gfx.local:
                env["XAUTHORITY"] = gfx.local["xauth"]
            if "display" in gfx.local:
                env["DISPLAY"] = gfx.local["display"]
    return env


def _uses_gl(gfx: GraphicsConfig) -> bool:
    return gfx.type == "egl-headless" or gfx.gl.get("enable") == "yes"


def require_host(dom: Domain, module_dir: Path = QEMU_MODULE_DIR, dri: Path = DRI_DIR) -> None:
    """Refuse, by name and before QEMU runs, a display this host cannot open, and 3D virtio video
    without a display that renders with OpenGL (QEMU's virtio-vga-gl cannot start without one)."""
    if any(v.accel3d == "yes" for v in dom.devices.videos) and not any(
        _uses_gl(g) for g in dom.devices.graphics
    ):
        raise UnsupportedConfig(
            "unsupported configuration: video with accel3d='yes' needs a display with OpenGL "
            "(<graphics type='egl-headless'>, or SPICE or SDL with <gl enable='yes'/>)"
        )
    for gfx in dom.devices.graphics:
        what = f"graphics type '{gfx.type}'"
        if gfx.type == "sdl":
            if module_dir.is_dir() and not (module_dir / "ui-sdl.so").exists():
                raise UnsupportedConfig(
                    f"unsupported configuration: {what} needs QEMU's ui-sdl.so module, which this host "
                    "lacks (Debian's qemu-system-gui package)"
                )
            if "display" not in gfx.local:
                raise UnsupportedConfig(
                    f"unsupported configuration: {what} needs an X display (<graphics display=':0'>): "
                    "pyvirtd has none of its own"
                )
        if (
            gfx.type == "egl-headless"
            and module_dir.is_dir()
            and not (module_dir / "ui-egl-headless.so").exists()
        ):
            raise UnsupportedConfig(
                f"unsupported configuration: {what} needs QEMU's ui-egl-headless.so module"
            )
        if _uses_gl(gfx):
            render = gfx.gl.get("rendernode")
            if render is not None and not Path(render).exists():
                raise UnsupportedConfig(
                    f"unsupported configuration: {what} with OpenGL: this host has no render node {render}"
                )
            if render is None and not any(dri.glob("renderD*")):
                raise UnsupportedConfig(
                    f"unsupported configuration: {what} with OpenGL needs a DRM render node "
                    f"({dri}/renderD*), which this host lacks"
                )


def render_node(gfx: GraphicsConfig, dri: Path = DRI_DIR) -> str | None:
    """The render node QEMU's user must reach: the one given, else the host's first."""
    if not _uses_gl(gfx):
        return None
    return gfx.gl.get("rendernode") or next((str(p) for p in sorted(dri.glob("renderD*"))), None)

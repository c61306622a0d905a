"""SDL and EGL-headless displays, SPICE's OpenGL and a display password's validity (conf.graphics_local):
parsed, written back, given to QEMU, and what start refuses on a host without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf import graphics_local
from pyvirt.conf.domain import Domain
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>g</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices>{graphics}</devices></domain>"""
SDL = "<graphics type='sdl' display=':1' xauth='/x/.Xauthority' fullscreen='no'><gl enable='no'/></graphics>"


def _dom(graphics: str) -> Domain:
    return load_domain_xml(XML.format(graphics=graphics))


def test_sdl_round_trips_with_its_environment_and_argv() -> None:
    dom = _dom(SDL)
    text = format_domain(dom)
    assert "<graphics type='sdl' display=':1' xauth='/x/.Xauthority' fullscreen='no'>" in text
    assert load_domain_xml(text).devices.graphics == dom.devices.graphics
    assert graphics_local.environment(dom) == {"XAUTHORITY": "/x/.Xauthority", "DISPLAY": ":1"}
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert argv[argv.index("-display") + 1] == "sdl,gl=off" and "-full-screen" not in argv


def test_spice_password_settings_round_trip() -> None:
    text = (
        "<graphics type='spice' autoport='yes' passwd='p' passwdValidTo='2030-01-02T03:04:05' "
        "connected='fail'/>"
    )
    dom = _dom(text)
    gfx = dom.devices.graphics[0]
    assert (gfx.passwd_valid_to, gfx.connected) == ("2030-01-02T03:04:05", "fail")
    assert graphics_local.expires_at("2030-01-02T03:04:05", "x") == 1893553445
    assert "passwdValidTo='2030-01-02T03:04:05' connected='fail'" in format_domain(dom)


@pytest.mark.parametrize(
    ("graphics", "message"),
    [
        ("<graphics type='egl-headless'><gl rendernode='/tmp/x'/></graphics>", "must be a device under /dev"),
        ("<graphics type='vnc' passwdValidTo='tomorrow'/>", "not YYYY-MM-DDTHH:MM:SS"),
        ("<graphics type='vnc' connected='disconnect'/>", "only SPICE disconnects"),
        ("<graphics type='sdl' port='5900'/>", "attribute 'port'"),
        ("<graphics type='egl-headless'><gl enable='yes'/></graphics>", "attribute 'enable'"),
    ],
)
def test_refused_by_name(graphics: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        _dom(graphics)


def test_start_refusals_follow_the_host(tmp_path: Path) -> None:
    modules, dri = tmp_path / "qemu", tmp_path / "dri"
    modules.mkdir()
    dri.mkdir()
    sdl = _dom(SDL)
    with pytest.raises(PyvirtError, match=r"ui-sdl\.so"):
        graphics_local.require_host(sdl, modules, dri)
    (modules / "ui-sdl.so").touch()
    graphics_local.require_host(sdl, modules, dri)  # gl off: no render node needed
    with pytest.raises(PyvirtError, match="needs an X display"):
        graphics_local.require_host(_dom("<graphics type='sdl'/>"), modules, dri)
    egl = _dom("<graphics type='egl-headless'/>")
    (modules / "ui-egl-headless.so").touch()
    with pytest.raises(PyvirtError, match="needs a DRM render node"):
        graphics_local.require_host(egl, modules, dri)
    (dri / "renderD128").touch()
    graphics_local.require_host(egl, modules, dri)
    assert graphics_local.render_node(egl.devices.graphics[0], dri) == str(dri / "renderD128")


GL_VIDEOS = (
    "<video><model type='virtio' heads='1' primary='yes'><acceleration accel3d='yes'/></model></video>"
    "<video><model type='virtio' heads='1'><acceleration accel3d='yes'/></model></video>"
)


def test_3d_virtio_video_as_libvirt_runs_it_and_what_start_needs(tmp_path: Path) -> None:
    """libvirt's video-virtio-vga-gpu-gl: virtio-vga-gl and virtio-gpu-gl-pci; QEMU starts them only
    with a display rendering with OpenGL, which start asks for (and that display, a render node)."""
    dom = _dom(GL_VIDEOS)
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    devices = [argv[i + 1].split(",")[0] for i, a in enumerate(argv) if a == "-device"]
    assert "virtio-vga-gl" in devices and "virtio-gpu-gl-pci" in devices
    assert format_domain(dom).count("<acceleration accel3d='yes'/>") == 2
    modules, dri = tmp_path / "qemu", tmp_path / "dri"
    modules.mkdir()
    dri.mkdir()
    (modules / "ui-egl-headless.so").touch()
    with pytest.raises(PyvirtError, match="accel3d='yes' needs a display with OpenGL"):
        graphics_local.require_host(dom, modules, dri)
    with_egl = _dom(GL_VIDEOS + "<graphics type='egl-headless'/>")
    with pytest.raises(PyvirtError, match="needs a DRM render node"):
        graphics_local.require_host(with_egl, modules, dri)
    (dri / "renderD128").touch()
    graphics_local.require_host(with_egl, modules, dri)
    with pytest.raises(PyvirtError, match="only for virtio video, not 'qxl'"):
        _dom("<video><model type='qxl'><acceleration accel3d='yes'/></model></video>")

"""Chardev UNIX sockets the daemon binds for QEMU: which chardevs, a stale socket replaced, another
file refused by name, the command line naming the inherited descriptor, removal at stop."""

from __future__ import annotations

import socket
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.daemon import chardev_sockets
from pyvirt.errors import OperationFailed
from pyvirt.qemu.command import build_argv
from tests.unit.qemu.test_command import dom_of, runtime_context


def _devices(tmp: Path) -> str:
    return (
        f"<serial type='unix'><source mode='bind' path='{tmp}/s0.sock'/><target port='0'/></serial>"
        f"<serial type='unix'><source mode='connect' path='{tmp}/s1.sock'/><target port='1'/></serial>"
        f"<console type='unix'><source mode='bind' path='{tmp}/s0.sock'/><target type='serial'/></console>"
        f"<channel type='unix'><source mode='bind' path='{tmp}/c.sock'/>"
        "<target type='virtio' name='org.x.c'/></channel>"
        # libvirt's default for a path without a mode: connect
        f"<channel type='unix'><source path='{tmp}/d.sock'/><target type='virtio' name='org.x.d'/></channel>"
    )


def test_the_daemon_listens_where_qemu_would_and_qemu_inherits_it(tmp_path: Path) -> None:
    dom = dom_of(_devices(tmp_path))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "c.sock"))  # a socket left by a QEMU that is gone: replaced
    stale.close()
    bound = chardev_sockets.bind(dom, tmp_path / "channels")
    try:
        assert sorted(bound) == [f"{tmp_path}/c.sock", f"{tmp_path}/s0.sock"]  # not the connect one
        for path, sock in bound.items():
            assert stat.S_IMODE(Path(path).stat().st_mode) == chardev_sockets.MODE
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(path)  # listening already: QEMU starts serving it
            assert sock.getsockname() == path
        ctx = replace(runtime_context(dom), socket_fds={p: s.fileno() for p, s in bound.items()})
        argv = build_argv(dom, ctx)
        fd = bound[f"{tmp_path}/s0.sock"].fileno()
        assert f"socket,id=charserial0,fd={fd},server=on,wait=off" in argv
        assert f"socket,id=charserial1,path={tmp_path}/s1.sock" in argv
        assert any(
            a.startswith(f"socket,id=charchannel0,fd={bound[f'{tmp_path}/c.sock'].fileno()},") for a in argv
        )
    finally:
        chardev_sockets.close(bound)
    chardev_sockets.remove(list(bound))
    assert not (tmp_path / "s0.sock").exists() and not (tmp_path / "c.sock").exists()


def test_a_file_that_is_no_socket_is_refused_and_nothing_is_left_bound(tmp_path: Path) -> None:
    dom = dom_of(_devices(tmp_path))
    (tmp_path / "c.sock").write_text("mine")
    with pytest.raises(
        OperationFailed, match=rf"channel socket '{tmp_path}/c.sock': it exists and is not a socket"
    ):
        chardev_sockets.bind(dom, tmp_path / "channels")
    assert (tmp_path / "c.sock").read_text() == "mine"
    assert not (tmp_path / "s0.sock").exists()  # the one bound before is gone again
    chardev_sockets.remove([str(tmp_path / "c.sock")])  # only sockets are removed
    assert (tmp_path / "c.sock").exists()


def test_sockets_in_the_channel_directory_are_qemus_own(tmp_path: Path) -> None:
    dom = dom_of(_devices(tmp_path))
    assert chardev_sockets.bind(dom, tmp_path) == {}


def test_an_egd_backend_and_a_usb_redirection_listen_the_same_way(tmp_path: Path) -> None:
    devices = (
        "<controller type='usb' model='qemu-xhci'/>"
        f"<redirdev bus='usb' type='unix'><source mode='bind' path='{tmp_path}/redir.sock'/></redirdev>"
        "<rng model='virtio'><backend model='egd' type='unix'>"
        f"<source mode='bind' path='{tmp_path}/egd.sock'/>"
        "</backend></rng>"
    )
    dom = dom_of(devices)
    bound = chardev_sockets.bind(dom, tmp_path / "channels")
    try:
        assert sorted(bound) == [f"{tmp_path}/egd.sock", f"{tmp_path}/redir.sock"]
        fds = {path: sock.fileno() for path, sock in bound.items()}
        argv = build_argv(dom, replace(runtime_context(dom), socket_fds=fds))
        assert f"socket,id=charrng0,fd={fds[f'{tmp_path}/egd.sock']},server=on,wait=off" in argv
        assert f"socket,id=charredir0,fd={fds[f'{tmp_path}/redir.sock']},server=on,wait=off" in argv
    finally:
        for sock in bound.values():
            sock.close()
        chardev_sockets.remove(list(bound))

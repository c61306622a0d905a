"""pyvirt clone over qemu+ssh:// (a real sshd on 127.0.0.1) and qemu+tls://: the daemon makes the clone.

Before, clone ran in the client and refused every non-local URI; now the daemon copies, writes the seed
and defines, whatever the transport, and the progress it reports reaches the remote user.
"""

from __future__ import annotations

from pathlib import Path

import pyvirt
from tests.integration.remote.sshd import Sshd
from tests.integration.remote.tlsd import TLSDaemon
from tests.support.daemon import Daemon
from tests.support.guest import guest_artifacts


def _template(daemon: Daemon) -> Path:
    daemon.cli("template", "import", "--os", "busybox", str(guest_artifacts().disk), "bb").ok()
    return daemon.pool_dir


def _check_clone(daemon: Daemon, uri: str, images: Path, name: str, *, global_option: bool) -> None:
    """Clone over ``uri``, given as ``pyvirt -c URI clone`` or as ``pyvirt clone -c URI``."""
    where = ["-c", uri, "clone"] if global_option else ["clone", "-c", uri]
    out = daemon.cli(
        *where, "--original", "bb", "--name", name, "--network", "none", "--disk-size", "1G"
    ).ok()
    assert f"Domain {name} cloned from template bb (linked," in out.out
    assert f"Disk {name}.qcow2: overlay on {images / 'bb.template.qcow2'}" in out.err
    with pyvirt.open(uri) as conn:
        vol = conn.pool("default").volume(f"{name}.qcow2").info()
        assert vol["backing"] == str(images / "bb.template.qcow2") and vol["capacity"] == 1 << 30
        assert f"volume='{name}-seed.iso'" in conn.domain(name).xml()
    assert (images / f"{name}-seed.iso").is_file()
    # A second clone of the name over the same connection: refused, nothing made or removed.
    before = sorted(p.name for p in images.iterdir())
    again = daemon.cli(*where, "--original", "bb", "--name", name, "--network", "none")
    assert again.rc == 1 and f"domain {name} exists already" in again.err
    assert sorted(p.name for p in images.iterdir()) == before
    # The guest tools find the clone's volume disks through the API, and say why they stop here.
    refused = daemon.cli("-c", uri, "sysprep", "-d", name)
    assert refused.rc == 1 and "is another one" in refused.err


def test_clone_over_ssh(sshd: Sshd, daemon: Daemon) -> None:
    images = _template(daemon)
    _check_clone(daemon, sshd.uri(socket_path=daemon.socket), images, "far1", global_option=True)


def test_clone_over_tls(tls: TLSDaemon) -> None:
    _check_clone(tls.daemon, tls.uri(), _template(tls.daemon), "far2", global_option=False)

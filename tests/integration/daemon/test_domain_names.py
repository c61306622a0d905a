"""Domain names libvirt 9.0 takes (``=`` and ``,``; spaces, quotes, non-ASCII) on a real pyvirtd and a
TCG QEMU: the domain is defined, started, listed and destroyed; QEMU's options that embed the name
(``-name guest=``, the channel sockets in the domain's run folder) escape its comma, so QEMU starts
and calls itself by that name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
AGENT = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"


@pytest.mark.parametrize("name", ["a=b,c", "vm 'ü' x=1,2"])
def test_a_name_libvirt_takes(daemon: Daemon, tmp_path: Path, name: str) -> None:
    d = daemon
    path = tmp_path / "named.xml"
    path.write_text(domain_xml(name, extra_devices=AGENT))
    d.cli("define", str(path)).ok()
    try:
        d.cli("start", name).ok()
        assert d.state(name) == "running"
        assert any(f" {name} " in line and "running" in line for line in d.cli("list").ok().out.splitlines())
        log = (d.root / f"var/log/pyvirt/qemu/{name}.log").read_text()
        assert f"guest={name.replace(',', ',,')},debug-threads=on" in log
        request = json.dumps({"execute": "query-name"})
        reply = json.loads(d.cli("qemu-monitor-command", name, request).ok().out)["return"]
        assert reply == {"name": name}
        chardevs = json.loads(d.cli("qemu-monitor-command", name, '{"execute":"query-chardev"}').ok().out)
        paths = [c["filename"] for c in chardevs["return"] if "guest_agent" in c["filename"]]
        assert paths and f"/{name}.channels/org.qemu.guest_agent.0" in paths[0], chardevs
        d.cli("destroy", name).ok()
        assert d.state(name) == "shut off"
    finally:
        d.cli("destroy", name)
        d.cli("undefine", name).ok()
    assert name not in d.cli("list", "--all").ok().out


def test_a_tpm_emulator_refused_for_a_comma_swtpm_cannot_take(daemon: Daemon, tmp_path: Path) -> None:
    """swtpm splits its options on ',' with no escape: its socket and log, named after the domain,
    cannot have one. The start is refused by name, and leaves the domain shut off."""
    name = "tpm,1"
    tpm = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
    path = tmp_path / "tpm.xml"
    path.write_text(domain_xml(name, extra_devices=tpm))
    d = daemon
    d.cli("define", str(path)).ok()
    try:
        result = d.cli("start", name)
        assert result.rc == 1 and "swtpm cannot be given the path" in result.err, result.err
        assert d.state(name) == "shut off"
    finally:
        d.cli("undefine", name).ok()

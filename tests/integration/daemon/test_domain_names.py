"""A domain name with ``=`` and ``,`` (libvirt 9.0 accepts them) on a real pyvirtd and a TCG QEMU: the
domain is defined, started, listed and destroyed; QEMU's options that embed the name (``-name
guest=``, the channel sockets in the domain's run folder) escape its comma, so QEMU starts and calls
itself by that name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
NAME = "a=b,c"
AGENT = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"


def test_a_name_with_equals_and_comma(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    path = tmp_path / "named.xml"
    path.write_text(domain_xml(NAME, extra_devices=AGENT))
    d.cli("define", str(path)).ok()
    try:
        d.cli("start", NAME).ok()
        assert d.state(NAME) == "running"
        assert any(line.split()[1:2] == [NAME] for line in d.cli("list").ok().out.splitlines()[2:])
        log = (d.root / f"var/log/pyvirt/qemu/{NAME}.log").read_text()
        assert "guest=a=b,,c,debug-threads=on" in log
        request = json.dumps({"execute": "query-name"})
        reply = json.loads(d.cli("qemu-monitor-command", NAME, request).ok().out)["return"]
        assert reply == {"name": NAME}
        chardevs = json.loads(d.cli("qemu-monitor-command", NAME, '{"execute":"query-chardev"}').ok().out)
        paths = [c["filename"] for c in chardevs["return"] if "guest_agent" in c["filename"]]
        assert paths and f"/{NAME}.channels/org.qemu.guest_agent.0" in paths[0], chardevs
        d.cli("destroy", NAME).ok()
        assert d.state(NAME) == "shut off"
    finally:
        d.cli("destroy", NAME)
        d.cli("undefine", NAME).ok()
    assert NAME not in d.cli("list", "--all").ok().out

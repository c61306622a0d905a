"""The CLI stays lean: what `pyvirt list`/`dominfo`, the snapshot verbs and attach-disk/detach-disk
load, locally or over qemu+ssh:// (the client's ssh transport and the remote `pyvirt proxy`), imports
nothing heavy.

Each heavy module here costs from 0.5 to 4 ms of a ~10 ms command (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "re",
    "json",
    "enum",
    "socket",
    "typing",
    "dataclasses",
    "pathlib",
    "urllib.parse",
    "functools",
    "subprocess",
    "argparse",
    "threading",
    "collections",
    "xml.etree.ElementTree",  # the verbs that read XML (attach-disk, domdisplay, ...): pyvirt.conf.xmlutil
    # WebSocket code: only the stream verbs (console, event, vol-upload, vol-download) load it.
    "wsproto",
    "h11",
    "pyvirt.client.websocket",
    "pyvirt.client.streams",
)

PROBE = """
import sys
sys.argv = ["pyvirt"]
import pyvirt.cli.main, pyvirt.cli.domain, pyvirt.cli.host, pyvirt.client.api, pyvirt.uri
import pyvirt.client.remote, pyvirt.cli.proxy, pyvirt.cli.network, pyvirt.cli.hotplug, pyvirt.cli.storage
from pyvirt.uri import parse_uri, default_uri
parse_uri(default_uri())
pyvirt.cli.proxy.socket_path("system", None, True)
from pyvirt.cli.args import parse
from pyvirt.cli.commands import find
parse(find("list"), ["--all"]), parse(find("dominfo"), ["web01"])
import pyvirt.cli.snapshot
pyvirt.cli.snapshot.create_as_xml("s", "d", "file=/m", ["vda,snapshot=external,file=/o"])
import pyvirt.cli.devices
from pyvirt.conf.xmlutil import editable, parse_document, serialize
pyvirt.cli.devices.disk_xml(parse(find("attach-disk"), ["d", "/dev/null", "vdb", "--serial", "s"]))
serialize(editable(parse_document("<domain><devices><disk><serial>s</serial></disk></devices></domain>")))
from pyvirt.cli.keys import display_urls
display_urls("<domain><devices><graphics type='vnc' port='5901'/></devices></domain>", None, True)
print(" ".join(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def test_local_verbs_import_no_heavy_module() -> None:
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path[1:]), "PYVIRT_CONF": "/nonexistent", "HOME": "/nonexistent"},
    )
    assert out.stdout.split() == []

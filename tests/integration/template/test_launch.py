"""``pyvirt launch`` on a real daemon, inside a network namespace this test makes: a template made from
a test guest disk that boots by itself (tests/support/bootable.py: syslinux, and a NoCloud reader
standing for cloud-init), launched onto a pyvirt NAT network. The guest comes up with the hostname and
SSH key of its seed; ``--wait-ip`` prints the address its DHCP client really got, which answers pings
from the namespace. Failures (an unknown template, a taken name, a start QEMU refuses) leave nothing.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import bootable
from tests.support.daemon import Console, Daemon

pytestmark = [pytest.mark.slow, pytest.mark.root, bootable.needs_tools]

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq3bm9ZbP1oW1Vr1Ux1rWfQqkYt0n0yS1k8m4b9cXyZ launch@test"
NET_XML = """<network>
  <name>lan</name>
  <forward mode='nat'/>
  <bridge name='pvl0' stp='off' delay='0'/>
  <ip address='10.91.0.1' netmask='255.255.255.0'>
    <dhcp><range start='10.91.0.100' end='10.91.0.200'/></dhcp>
  </ip>
</network>
"""


@pytest.fixture(scope="module")
def d() -> Iterator[Daemon]:
    ns = f"pvl-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    daemon = Daemon(netns=ns)
    try:
        daemon.start()
        net = daemon.root / "lan.xml"
        net.write_text(NET_XML)
        daemon.cli("net-define", str(net)).ok()
        daemon.cli("net-start", "lan").ok()
        disk = bootable.make_disk(daemon.root / "bootable.qcow2")
        daemon.cli("template", "import", "--os", "busybox", str(disk), "bb").ok()
        yield daemon
    finally:
        daemon.cleanup()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _pool_files(d: Daemon) -> list[str]:
    return sorted(p.name for p in d.pool_dir.iterdir())


def test_launch_boots_with_identity_and_wait_ip_prints_the_real_address(d: Daemon, tmp_path: Path) -> None:
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    result = d.cli(
        "launch", "bb", "web1", "--network", "lan", "--memory", "128", "--ssh-key", str(key), "--user",
        "root", "--wait-ip", "--timeout", "300", timeout=400,
    ).ok()  # fmt: skip
    address = result.out.strip()
    assert re.fullmatch(r"10\.91\.0\.\d+", address), result.out
    assert "Disk web1.qcow2: overlay on" in result.err and "Started web1" in result.err
    assert d.state("web1") == "running"
    console = Console(d, "web1")
    try:
        # What the guest's DHCP client says it got is what --wait-ip printed.
        lease = console.expect(r"eth0 lease (10\.91\.0\.\d+)\s", 120).group(1).decode()
        assert lease == address
        # The shell starts once busybox init's sysinit (the NoCloud reader) is done.
        console.send("\n")
        console.expect("guest# ", 120)
        assert console.run("hostname") == "web1"
        assert KEY in console.run("cat /root/.ssh/authorized_keys")
    finally:
        console.close()
    ping = subprocess.run(
        ["ip", "netns", "exec", str(d.netns), "busybox", "ping", "-c", "2", "-W", "3", address],
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
    vol = d.connect().pool("default").volume("web1.qcow2").info()
    assert vol["backing"] == str(d.pool_dir / "bb.template.qcow2")
    xml = d.connect().domain("web1").xml()
    assert "<source network='lan'/>" in xml and "volume='web1-seed.iso'" in xml
    listing = d.cli("template", "list").ok().out
    assert re.search(r"^ bb\s+busybox\s+.*\bweb1\b", listing, re.M), listing
    d.cli("destroy", "web1").ok()


def test_launch_full_copy_json_password_user_data_and_disk_size(d: Daemon, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\nignored\n")
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nruncmd: [echo launched-by-test]\n")
    out = d.cli(
        "launch", "bb", "full1", "--full", "--network", "none", "--memory", "96M", "--vcpus", "2",
        "--password-file", str(secret), "--hostname", "full-one.example", "--user-data", str(user_data),
        "--disk-size", "200M", "--pool", "default", "--json",
    ).ok().out  # fmt: skip
    result = json.loads(out)
    assert result["linked"] is False and result["state"] == "running" and result["name"] == "full1"
    vol = d.connect().pool("default").volume("full1.qcow2").info()
    assert vol["backing"] is None and vol["capacity"] == 200 << 20
    info = d.connect().domain("full1").info()
    assert info["vcpus"] == 2 and info["max_memory_kib"] == 96 << 10
    from pyvirt.guest.cloudinit import read_seed_iso

    seed = read_seed_iso(d.pool_dir / "full1-seed.iso")["user-data"]
    assert "multipart/mixed" in seed  # pyvirt's cloud-config and the user's, merged by cloud-init
    parts = [base64.b64decode(chunk).decode() for chunk in re.findall(r"\n\n([A-Za-z0-9+/=\n]+)\n--", seed)]
    assert any('"password": "s3cret-pw"' in p and '"name": "root"' in p for p in parts), parts
    assert any('"fqdn": "full-one.example"' in p for p in parts), parts
    assert any("launched-by-test" in p for p in parts), parts
    assert "<interface" not in d.connect().domain("full1").xml()
    # --console: attached once started; Ctrl+] (0x1d) on stdin detaches.
    attached = d.cli("launch", "bb", "con1", "--network", "none", "--console", input="\x1d")
    assert "Connected to domain 'con1'" in attached.ok().out
    quiet = d.cli("launch", "-q", "bb", "quiet1", "--network", "none", "--memory", "64M").ok()
    assert quiet.out == "" and quiet.err == ""
    for name in ("full1", "con1", "quiet1"):
        d.cli("destroy", name).ok()


def test_launch_bad_input_leaves_nothing(d: Daemon) -> None:
    d.cli("launch", "bb", "taken", "--network", "none", "--memory", "64M").ok()
    d.cli("destroy", "taken").ok()
    before = _pool_files(d)
    domains = d.cli("list", "--all", "--name").ok().out
    missing = d.cli("launch", "nosuch", "x1", "--network", "none")
    assert missing.rc == 1 and "template nosuch not found" in missing.err, missing.err
    taken = d.cli("launch", "bb", "taken", "--network", "none")
    assert taken.rc == 1 and "domain taken exists already" in taken.err, taken.err
    no_net = d.cli("launch", "bb", "x2", "--network", "nonet")
    assert no_net.rc == 1 and "network nonet not found" in no_net.err
    # Refused at define (the clone made for it is removed), and by QEMU at start (the domain and its
    # volumes are removed again).
    refused = d.cli("launch", "bb", "x3", "--network", "none", "--vcpus", "4096")
    assert refused.rc == 1 and "vcpu count 4096 is out of range" in refused.err, refused.err
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() != "1":  # 1: QEMU would get 15 TiB
        no_start = d.cli("launch", "bb", "x3", "--network", "none", "--memory", "15T")
        assert no_start.rc == 1 and "QEMU" in no_start.err, no_start.err
    both = d.cli("launch", "bb", "x4", "--password", "a", "--password-file", "/dev/null")
    assert both.rc == 1 and "mutually exclusive" in both.err
    lone = d.cli("launch", "bb", "x5", "--timeout", "5")
    assert lone.rc == 1 and "give --wait-ip too" in lone.err
    assert _pool_files(d) == before
    assert d.cli("list", "--all", "--name").ok().out == domains

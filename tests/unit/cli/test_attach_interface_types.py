"""attach-interface's ``<interface>`` (pyvirt.cli.interface_xml): the types virsh 9.0 makes no XML for
are refused in its words, the others written element for element as virsh writes them; virsh itself
(its test driver, no daemon) is the oracle where it is installed. What the XML does once attached is
tested on a running domain (tests/integration/daemon/test_attach_interface_options.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyvirt.cli.args import parse
from pyvirt.cli.commands import find
from pyvirt.cli.interface_xml import interface_xml
from pyvirt.conf.device_xml import parse_device
from pyvirt.conf.domain import InterfaceConfig
from pyvirt.errors import InvalidArgument, PyvirtError

NO_XML_TYPES = ("ethernet", "server", "client", "mcast", "udp", "internal", "null", "vds", "vdpa", "foo")


def xml(*argv: str) -> str:
    cmd = find("attach-interface")
    assert cmd is not None
    return interface_xml(parse(cmd, ["dom", *argv]))


def virsh(*argv: str) -> subprocess.CompletedProcess[str] | None:
    """virsh 9.0's attach-interface --print-xml of ``argv`` (its test driver: no daemon), if installed."""
    binary = shutil.which("virsh")
    if binary is None:
        return None
    return subprocess.run(
        [binary, "-c", "test:///default", "attach-interface", "test", *argv, "--print-xml"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("kind", NO_XML_TYPES)
def test_types_virsh_has_no_xml_for_are_refused_in_its_words(kind: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        xml(kind, "src")
    assert str(err.value) == f"No support for {kind} in command 'attach-interface'"
    oracle = virsh(kind, "src")
    if oracle is not None:  # the oracle is optional: pyvirt's refusal is checked above
        assert oracle.returncode == 1 and str(err.value) in oracle.stderr, oracle.stderr


CASES = [
    ("network", "default", "--mac", "52:54:00:12:34:56", "--model", "e1000"),
    ("bridge", "br0", "--target", "tap7", "--script", "/etc/qemu-ifup", "--alias", "ua-net7"),
    ("network", "n1", "--inbound", "100,200,300", "--outbound", "10,,5"),
    ("network", "n1", "--inbound", ",,,40"),
    ("direct", "eth0", "--model", "virtio"),
    ("hostdev", "0000:03:1f.2", "--managed"),
    ("hostdev", "0001:00:01.7"),
    ("hostdev", "0000.00.0a.1"),
    ("vhostuser", "/run/vhu.sock", "--source-mode", "client", "--mac", "52:54:00:00:00:01"),
    ("vhostuser", "/run/vhu.sock", "--source-mode", "server", "--alias", "ua-vhu"),
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c[:2]) for c in CASES])
def test_print_xml_is_virsh_s(argv: tuple[str, ...]) -> None:
    ours = xml(*argv) + "\n"  # --print-xml ends with virsh's blank line
    oracle = virsh(*argv)
    if oracle is None:
        pytest.skip("virsh (the oracle) is not installed")
    assert oracle.returncode == 0, oracle.stderr
    assert ours == oracle.stdout


def test_options_reach_the_interface_pyvirt_reads() -> None:
    """What pyvirt's device parser reads of the XML: each option lands in the interface."""
    text = xml(
        "network", "n1", "--target", "tap7", "--mac", "52:54:00:AB:00:01", "--model", "e1000",
        "--alias", "ua-n7", "--inbound", "100,200", "--outbound", "50",
    )  # fmt: skip
    nic = parse_device(text).obj
    assert isinstance(nic, InterfaceConfig)
    assert (nic.type, nic.source_network, nic.target_dev, nic.mac, nic.model, nic.alias) == (
        "network", "n1", "tap7", "52:54:00:ab:00:01", "e1000", "ua-n7",
    )  # fmt: skip
    assert nic.bandwidth == {"inbound": {"average": 100, "peak": 200}, "outbound": {"average": 50}}
    vhu = parse_device(xml("vhostuser", "/run/v.sock", "--source-mode", "client")).obj
    assert isinstance(vhu, InterfaceConfig)
    assert vhu.socket == {"path": "/run/v.sock", "mode": "client"}


def test_script_on_a_bridge_is_refused_as_libvirt_s_qemu_driver_does() -> None:
    with pytest.raises(PyvirtError, match="scripts are not supported on interfaces of type bridge"):
        parse_device(xml("bridge", "br0", "--script", "/etc/qemu-ifup"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("vhostuser", "/s"), "source-mode is mandatory"),
        (("vhostuser", "/s", "--source-mode", "listen"), "Invalid source mode: listen"),
        (("network", "n", "--source-mode", "client"), "--source-mode: a mode is for a vhostuser"),
        (("bridge", "b", "--managed"), "--managed: managed is for a hostdev interface"),
        (("hostdev", "00:19.0"), "cannot parse pci address '00:19.0' for network interface"),
        (("network", "n", "--inbound", "0,10"), "either inbound average or floor is mandatory"),
        (("network", "n", "--outbound", ",10"), "outbound average is mandatory"),
        (("network", "n", "--outbound", "1,2,3,4"), "outbound floor is unsupported yet"),
        (("network", "n", "--inbound", "1,2,3,4,5"), "Rate string '1,2,3,4,5' has too many fields"),
        (("network", "n", "--inbound", "1,x"), "field 'peak' is malformed"),
        (("network", "n", "--target", "vnet3"), "--target vnet3: the prefixes vnet"),
        (("network", "n", "--alias", "net7"), "--alias net7: a user alias must start with 'ua-'"),
    ],
)
def test_refusals(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        xml(*argv)
    assert message in str(err.value)
    oracle = virsh(*argv)
    if oracle is not None and not message.startswith("--"):  # '--' ones: pyvirt refuses what virsh ignores
        assert oracle.returncode == 1 and message in oracle.stderr, oracle.stderr

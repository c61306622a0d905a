"""nodedev-list, nodedev-info and nodedev-dumpxml on a real daemon, of this host's real devices (its PCI
devices, disks and network interfaces), and libvirt 9.0 as the oracle: a private libvirtd's udev backend
lists the same devices, draws the same tree and writes the same XML. No guest is booted."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support.daemon import Daemon
from tests.support.virtinstall import Oracle

CAPS = ("system", "pci", "usb_device", "usb", "net", "storage", "scsi_host", "scsi_target", "scsi", "mdev")


def _names(out: str) -> list[str]:
    assert out.endswith("\n\n"), repr(out)  # virsh's blank line after the list
    return out.splitlines()[:-1]


def test_nodedev_verbs_show_this_hosts_devices(module_daemon: Daemon) -> None:
    pci = sorted(os.listdir("/sys/bus/pci/devices"))
    names = _names(module_daemon.cli("nodedev-list").ok().out)
    assert names == sorted(names) and "computer" in names
    expected = ["pci_" + re.sub(r"[:.]", "_", p) for p in pci]
    assert _names(module_daemon.cli("nodedev-list", "--cap", "pci").ok().out) == expected
    nets = _names(module_daemon.cli("nodedev-list", "--cap", "net").ok().out)
    assert sorted(n.split("_")[1] for n in nets) == sorted(os.listdir("/sys/class/net"))
    both = _names(module_daemon.cli("nodedev-list", "--cap", "pci,net").ok().out)
    assert both == sorted(expected + nets)
    assert _names(module_daemon.cli("nodedev-list", "--all").ok().out) == names
    assert module_daemon.cli("nodedev-list", "--inactive").ok().out == "\n"  # none is defined and stopped

    for name, path in zip(expected, pci, strict=True):
        root = ET.fromstring(module_daemon.cli("nodedev-dumpxml", name).ok().out)
        assert root.findtext("name") == name and root.findtext("path") == os.path.realpath(
            f"/sys/bus/pci/devices/{path}"
        )
        cap = root.find("capability[@type='pci']")
        assert cap is not None
        dom, bus, rest = path.split(":")
        slot, fn = rest.split(".")
        assert [cap.findtext(t) for t in ("domain", "bus", "slot", "function")] == [
            str(int(x, 16)) for x in (dom, bus, slot, fn)
        ]
        vendor = cap.find("vendor")
        assert (
            vendor is not None
            and vendor.get("id") == Path(f"/sys/bus/pci/devices/{path}/vendor").read_text().strip()
        )
        info = module_daemon.cli("nodedev-info", name).ok().out
        assert (
            info.startswith(f"Name:           {name}\nParent:         ") and "Active:         yes\n" in info
        )

    tree = module_daemon.cli("nodedev-list", "--tree").ok().out
    assert tree.startswith("computer\n  |\n")
    drawn = [line.split("+- ")[1] for line in tree.splitlines() if "+- " in line]
    assert sorted(drawn) == sorted(n for n in names if n != "computer")

    # the read-only socket serves them
    assert _names(module_daemon.cli("-r", "nodedev-list", "--cap", "pci").ok().out) == expected


def test_nodedev_refusals(module_daemon: Daemon) -> None:
    result = module_daemon.cli("nodedev-dumpxml", "pci_0000_ff_1f_7")
    assert result.rc == 1 and result.err == (
        "error: Could not find matching device 'pci_0000_ff_1f_7'\n"
        "error: Node device not found: no node device with matching name 'pci_0000_ff_1f_7'\n"
    ), result.err
    result = module_daemon.cli("nodedev-info", "nosuch")
    assert result.rc == 1 and "Could not find matching device 'nosuch'" in result.err
    for args, message in (
        (("--cap", "pci,bogus"), "Invalid capability type"),
        (("--tree", "--cap", "pci"), "Option --tree is incompatible with --cap and --inactive"),
        (("--tree", "--inactive"), "Option --tree is incompatible with --cap and --inactive"),
        (("--all", "--inactive"), "Option --all is incompatible with --inactive"),
    ):
        result = module_daemon.cli("nodedev-list", *args)
        assert result.rc == 1 and result.err == f"error: {message}\n" and not result.out, (args, result)
    for flag in (("--xpath", "//name"), ("--wrap",)):
        result = module_daemon.cli("nodedev-dumpxml", "computer", *flag)
        assert result.rc == 1 and f"error: {flag[0]}: pyvirt prints the whole document" in result.err, result


def _comparable(xml: str, namespaced: bool) -> str:
    """The XML without the offload features ethtool reports for an interface of the oracle's own
    network namespace (only its loopback there: the others' features it cannot see)."""
    if not namespaced:
        return xml
    return "".join(line for line in xml.splitlines(True) if "<feature name=" not in line)


def test_agrees_with_libvirt(module_daemon: Daemon, oracle: Oracle) -> None:
    """Every device libvirt lists here, listed, drawn and written alike: the same names, capabilities,
    tree, XML (line for line) and nodedev-info."""
    names = oracle.virsh("nodedev-list")
    assert module_daemon.cli("nodedev-list").ok().out == names
    assert module_daemon.cli("nodedev-list", "--tree").ok().out == oracle.virsh("nodedev-list", "--tree")
    for cap in CAPS:
        assert module_daemon.cli("nodedev-list", "--cap", cap).ok().out == oracle.virsh(
            "nodedev-list", "--cap", cap
        ), cap
    for name in _names(names):
        theirs = oracle.virsh("nodedev-dumpxml", name)
        ours = module_daemon.cli("nodedev-dumpxml", name).ok().out
        namespaced = name.startswith("net_") and not name.startswith("net_lo_")
        assert _comparable(ours, namespaced) == _comparable(theirs, namespaced), name
        assert module_daemon.cli("nodedev-info", name).ok().out == oracle.virsh("nodedev-info", name)
    # and the same errors
    for args in (
        ("nodedev-dumpxml", "nosuch"),
        ("nodedev-dumpxml", "20000000c9831b4b,10000000c9831b4b"),  # an HBA's WWNN,WWPN: none here
        ("nodedev-info", "pci_0000_ff_00_0"),
        ("nodedev-list", "--cap", "pci,bogus"),
        ("nodedev-list", "--tree", "--cap", "pci"),
        ("nodedev-list", "--all", "--inactive"),
    ):
        theirs = subprocess.run(oracle.virsh_command(*args), capture_output=True, text=True)
        ours = module_daemon.cli(*args)
        errors = ours.err, theirs.stderr
        if "," in args[1]:  # libvirt 9.0 then says "An error occurred, but the cause is unknown"; pyvirt why
            assert ours.err.endswith("matching wwnn '20000000c9831b4b' and wwpn '10000000c9831b4b'\n")
            errors = ours.err.splitlines()[0], theirs.stderr.splitlines()[0]
        assert (ours.rc, errors[0]) == (theirs.returncode, errors[1]), args

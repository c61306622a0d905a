"""guestinfo's typed parameters and domifaddr's rows from guest agent replies (pyvirt.daemon.guestinfo),
with replies shaped as qemu-guest-agent 7.2 sends them."""

from __future__ import annotations

from pyvirt.conf.domain_xml import parse_domain
from pyvirt.daemon import guestinfo

DOMAIN = parse_domain(
    """<domain type='qemu'><name>g</name><memory>131072</memory><os><type arch='x86_64'>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/a.qcow2'/><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='disk'><source file='/b.raw'/><target dev='sdb' bus='scsi'/>
        <serial>DATA-1</serial></disk>
    </devices></domain>"""
)
VDA_PCI = {"domain": 0, "bus": 0, "slot": 4, "function": 0}
TARGETS: guestinfo.Targets = {(0, 0, 4, 0): "vda"}


def test_users_os_timezone() -> None:
    users = guestinfo.user_params([{"user": "root", "login-time": 1700000000.25}])
    assert users == {"user.count": 1, "user.0.name": "root", "user.0.login-time": 1700000000250}
    os = guestinfo.os_params({"kernel-release": "6.1", "id": "debian", "unknown": "x", "name": "Debian"})
    assert list(os) == ["os.id", "os.name", "os.kernel-release"]  # libvirt's order, unknown fields left out
    assert guestinfo.timezone_params({"zone": "UTC", "offset": 0}) == {
        "timezone.name": "UTC",
        "timezone.offset": 0,
    }
    assert guestinfo.timezone_params({"offset": 3600}) == {"timezone.offset": 3600}


def test_disks_matched_by_pci_address_serial_or_name() -> None:
    virtio = {"bus-type": "virtio", "pci-controller": VDA_PCI, "dev": "/dev/vda1", "bus": 0, "unit": 0}
    assert guestinfo.disk_target(virtio, TARGETS, DOMAIN) == "vda"
    scsi = {
        "bus-type": "scsi",
        "pci-controller": {**VDA_PCI, "slot": 9},
        "serial": "DATA-1",
        "dev": "/dev/sda",
    }
    assert guestinfo.disk_target(scsi, TARGETS, DOMAIN) == "sdb"
    by_name = {"bus-type": "scsi", "dev": "/dev/sdb2"}
    assert guestinfo.disk_target(by_name, TARGETS, DOMAIN) == "sdb"
    assert guestinfo.disk_target({"bus-type": "ide", "dev": "/dev/hdz"}, TARGETS, DOMAIN) is None


def test_filesystem_params() -> None:
    fs = [
        {
            "name": "vda1",
            "mountpoint": "/",
            "fstype": "ext4",
            "total_bytes": 1000,
            "used_bytes": None,
            "disks": [{"alias": "vda", "serial": None, "device": "/dev/vda1"}],
        }
    ]
    assert guestinfo.filesystem_params(fs) == {
        "fs.count": 1,
        "fs.0.name": "vda1",
        "fs.0.mountpoint": "/",
        "fs.0.fstype": "ext4",
        "fs.0.total-bytes": 1000,
        "fs.0.disk.count": 1,
        "fs.0.disk.0.alias": "vda",
        "fs.0.disk.0.device": "/dev/vda1",
    }


def test_disk_params() -> None:
    disks = [
        {
            "name": "/dev/vda",
            "partition": False,
            "address": {"bus-type": "virtio", "pci-controller": VDA_PCI},
        },
        {"name": "/dev/vda1", "partition": True, "dependencies": ["/dev/vda"], "alias": "root"},
    ]
    assert guestinfo.disk_params(disks, TARGETS, DOMAIN) == {
        "disk.count": 2,
        "disk.0.name": "/dev/vda",
        "disk.0.partition": False,
        "disk.0.alias": "vda",
        "disk.1.name": "/dev/vda1",
        "disk.1.partition": True,
        "disk.1.dependency.count": 1,
        "disk.1.dependency.0.name": "/dev/vda",
        "disk.1.guest_alias": "root",
    }


IFACES = [
    {
        "name": "lo",
        "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}],
    },
    {
        "name": "eth0",
        "hardware-address": "52:54:00:12:34:56",
        "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "192.0.2.7", "prefix": 24},
            {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64},
        ],
    },
    {"name": "eth1", "hardware-address": "52:54:00:12:34:57"},
]


def test_interfaces_as_params_and_domifaddr_rows() -> None:
    params = guestinfo.interface_params(IFACES)
    assert params["if.count"] == 3
    assert params["if.1.addr.count"] == 2
    assert params["if.1.addr.1.addr"] == "fe80::1" and params["if.1.addr.1.prefix"] == 64
    assert params["if.2.addr.count"] == 0
    rows = guestinfo.interface_addresses(IFACES)
    assert [(r["name"], r["protocol"], r["address"]) for r in rows] == [
        ("lo", "ipv4", "127.0.0.1/8"),
        ("eth0", "ipv4", "192.0.2.7/24"),
        ("eth0", "ipv6", "fe80::1/64"),
        ("eth1", "N/A", "N/A"),  # an interface without an address, as virsh shows it
    ]

"""libvirt 9.0 as the oracle of the golden command lines of libvirt-shaped XML.

Each case is a domain XML written here (tests/data/domain/libvirt-*.xml) for one feature; its golden
command line (tests/unit/qemu/test_command.py) is compared with what ``virsh domxml-to-native
qemu-argv`` of Debian's libvirt 9.0 gives for the same file, against a private libvirtd in its own
namespaces (tests/support/virtinstall.py). The options of the feature's devices must agree in meaning:
the same drivers with the same properties, JSON or key=value alike; ids, buses, PCI slots and the
descriptors or paths each daemon chooses are not compared. Without libvirt here the comparison is
skipped (the golden tests and the real-QEMU run of tests/integration/qemu/test_golden_argv_runs.py
still check pyvirt's side).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pyvirt.qemu import keyval
from tests.support.argv import json_values
from tests.support.virtinstall import Oracle
from tests.unit.qemu.test_command import DATA_ROOT, argv_for

# Properties that name things each daemon chooses (ids, buses, descriptors, its own directories), not
# what a device does.
NAMING = frozenset(
    {
        *("id", "bus", "addr", "drive", "netdev", "chardev", "rng", "bootindex", "fsdev", "fd", "vhostfd"),
        *("dir", "tpmdev"),
    }
)

# case → (option, the drivers or backends of the feature under test) pairs
CASES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "libvirt-virtio-options": (
        (
            "-device",
            (
                "virtio-blk-pci",
                "virtio-scsi-pci",
                "virtio-serial-pci",
                "virtio-mouse-pci",
                "virtio-vga",
                "virtio-balloon-pci",
                "virtio-rng-pci",
            ),
        ),
    ),
    "libvirt-audio-backends": (
        ("-audiodev", ("none", "wav", "alsa")),
        ("-device", ("AC97", "ES1370", "intel-hda", "hda-output")),
    ),
    "libvirt-intel-iommu": (("-device", ("intel-iommu",)),),
    "libvirt-pvspinlock-hyperv-panic": (("-cpu", ("qemu64",)),),
    "libvirt-genid-rng-builtin": (("-device", ("vmgenid", "virtio-rng-pci")), ("-object", ("rng-builtin",))),
    "libvirt-vnc-listen-none": (("-vnc", ("none",)),),
    "libvirt-spice-listen-none": (("-spice", ("-spice",)), ("-audiodev", ("spice",))),
    "libvirt-virtio-9p": (("-fsdev", ("local",)), ("-device", ("virtio-9p-pci",))),
    "libvirt-controller-models": (
        (
            "-device",
            (
                "x3130-upstream",
                "xio3130-downstream",
                "i82801b11-bridge",
                "pci-bridge",
                "lsi",
                "virtio-scsi-pci",
                "nec-usb-xhci",
            ),
        ),
    ),
    "libvirt-pci-root-hotplug": (("-global", ("-global",)), ("-device", ("piix4-usb-uhci",))),
    # (scsi-hd is left out: pyvirt sets no device_id, libvirt does; a difference older than this case)
    "libvirt-disk-tuning": (("-device", ("ide-hd", "virtio-blk-pci", "usb-storage")),),
    "libvirt-input-passthrough": (("-device", ("virtio-input-host-pci",)),),
    "libvirt-chardev-backends": (
        ("-chardev", ("socket", "udp", "vc", "file", "pty")),
        ("-device", ("isa-serial", "pci-serial", "isa-debugcon", "isa-parallel")),
    ),
    "libvirt-clock": (("-rtc", ("-rtc",)),),
    "libvirt-q35-tseg-tcg": (
        ("-accel", ("tcg",)),
        ("-global", ("-global",)),
        ("-cpu", ("qemu64",)),
        ("-device", ("ramfb", "virtio-balloon-pci")),
    ),
    "libvirt-vnc-options": (("-vnc", ("127.0.0.1:3",)),),
    "libvirt-iothread-pools": (("-object", ("iothread", "main-loop")), ("-device", ("virtio-blk-pci",))),
    # (virtio-net-pci is left out: domxml-to-native rebuilds each NIC from its MAC and model only, and
    # drops its acpi-index, which libvirt's own test data, devices-acpi-index, gives QEMU)
    "libvirt-acpi-index": (("-device", ("virtio-blk-pci", "cirrus-vga")),),
    # (the sockets' -chardev are left out: libvirt hands QEMU a listening fd, pyvirt the path)
    "libvirt-egd-usbredir": (("-object", ("rng-egd",)), ("-device", ("virtio-rng-pci", "usb-redir"))),
    "libvirt-input-evdev": (("-object", ("input-linux",)),),
    # (the vdpa NIC is left out: domxml-to-native turns every NIC into a tap; libvirt's own test data,
    # net-vdpa-multiqueue, gives the vhost-vdpa netdev with queues=2 and virtio-net-pci mq, vectors=6)
    "libvirt-vdpa-lun": (("-device", ("scsi-block",)),),
    "libvirt-nbd-tls": (("-object", ("tls-creds-x509",)),),  # the NBD node's tls-*: test_nbd_tls
    "libvirt-vhostuser-disk": (("-chardev", ("socket",)), ("-device", ("vhost-user-blk-pci",))),
    # (the -chardev is left out: its path is the virtiofsd's socket, under each daemon's own directories)
    "libvirt-virtiofs": (("-device", ("vhost-user-fs-pci",)),),
    "libvirt-floppy-dir": (("-device", ("floppy",)), ("-global", ("-global",))),  # vvfat: test_libvirt_extras
    "libvirt-spice-no-args": (("-spice", ("-spice",)), ("-audiodev", ("spice",))),
    "libvirt-vsock": (("-device", ("vhost-vsock-pci",)),),
    "libvirt-hostdev-mdev-usb": (("-device", ("vfio-pci", "vfio-pci-nohotplug", "usb-host")),),
    "libvirt-memory-devices": (
        ("-device", ("pc-dimm", "nvdimm", "virtio-pmem-pci", "virtio-mem-pci")),
        ("-object", ("memory-backend-ram", "memory-backend-file")),
        ("-m", ("-m",)),
    ),
    "libvirt-memory-backing": (
        ("-object", ("memory-backend-ram", "thread-context")),
        ("-overcommit", ("-overcommit",)),
    ),
    "libvirt-numa-hmat": (("-numa", ("node", "hmat-lb", "hmat-cache")),),
    "libvirt-numa-shared-cells": (("-object", ("memory-backend-memfd",)), ("-numa", ("node",))),
    # a SCSI disk without a controller: libvirt's default model for x86 (lsilogic)
    "libvirt-scsi-implicit": (("-device", ("lsi",)),),
    "libvirt-tpm-passthrough": (("-device", ("tpm-crb",)),),
    # (the -chardev is left out: its path is swtpm's socket, under each daemon's own directories)
    "libvirt-tpm-emulator": (("-tpmdev", ("emulator",)), ("-device", ("tpm-tis",))),
    # an swtpm someone else runs: its socket is the user's, so the -chardev is compared too
    "libvirt-tpm-external": (
        ("-chardev", ("socket",)),
        ("-tpmdev", ("emulator",)),
        ("-device", ("tpm-crb",)),
    ),
    "libvirt-hostdev": (("-device", ("vfio-pci", "usb-host")),),
    "libvirt-chardev-extras": (
        ("-chardev", ("file", "spiceport", "socket", "stdio", "qemu-vdagent")),
        ("-netdev", ("user",)),
        ("-device", ("isa-serial", "virtserialport")),
    ),
    "libvirt-smartcard-watchdog": (
        ("-device", ("usb-ccid", "ccid-card-passthru", "i6300esb")),
        ("-chardev", ("socket",)),
        ("-watchdog-action", ("pause",)),
    ),
    "libvirt-smartcard-certificates": (("-device", ("usb-ccid", "ccid-card-emulated")),),
    # the overridden disk's properties, -compat and the <qemu:arg>s (env: test_qemu_ns)
    "libvirt-sdl": (("-display", ("sdl",)), ("-audiodev", ("sdl",)), ("-device", ("virtio-vga",))),
    "libvirt-egl-headless": (("-display", ("egl-headless",)),),
    "libvirt-spice-gl": (("-spice", ("-spice",)),),  # passwdValidTo, connected: QMP (test_devices_boot)
    "libvirt-qemu-ns": (("-device", ("virtio-blk-pci",)), ("-compat", ("",)), ("-fw_cfg", ("-fw_cfg",))),
}

# Cases whose host device libvirt opens even to print the command line.
HOST_DEVICES = {
    "libvirt-tpm-passthrough": "/dev/tpm0",
    "libvirt-hostdev": "/sys/bus/pci/devices/0000:06:12.5",
}


def _value(value: object) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)


def _flatten(obj: dict[str, object], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _value(value)
    return out


def normalise(option: str, value: str) -> tuple[str, dict[str, str]]:
    """(driver or backend, properties) of one ``-device``/``-audiodev``/``-chardev`` value."""
    if value.startswith("{"):
        props = _flatten(json.loads(value))
        head = props.pop("type" if option == "-netdev" else "driver", "") or props.pop("qom-type", "")
    else:
        items = keyval.split(value)
        head = option if "=" in items[0] else items.pop(0)  # -spice port=0,...: no head of its own
        props = dict(item.split("=", 1) if "=" in item else (item, "on") for item in items)
    return head, {key: val for key, val in props.items() if key not in NAMING}


Options = list[tuple[str, list[tuple[str, str]]]]


def options(argv: list[str], option: str, drivers: tuple[str, ...]) -> Options:
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]
    found = [normalise(option, value) for value in values if "id=charmonitor" not in value]  # each its own
    return sorted((head, sorted(props.items())) for head, props in found if head in drivers)


def both(oracle: Oracle, case: str) -> tuple[list[str], list[str]]:
    """libvirt's command line for tests/data/domain/CASE.xml, and pyvirt's golden one."""
    return oracle.native_argv(DATA_ROOT / "domain" / f"{case}.xml"), argv_for(f"domain/{case}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_command_line_agrees_with_libvirt(case: str, oracle: Oracle) -> None:
    if (device := HOST_DEVICES.get(case)) and not os.path.exists(device):
        pytest.skip(f"libvirt opens {device}, which this host lacks")
    theirs, ours = both(oracle, case)
    for option, drivers in CASES[case]:
        expected = options(theirs, option, drivers)
        assert expected, f"libvirt's command line has no {option} of {drivers}: the case tests nothing"
        assert options(ours, option, drivers) == expected, option


# Network disks (conf.network_disk): each protocol node as libvirt writes it. Not compared: node names
# and the ids of the secret objects they name (libvirt-N-..., pyvirt-N-...), and the protocol node's
# discard: libvirt's 'unmap' under a format node that ignores discards, pyvirt's 'ignore', the same.
NETWORK_DRIVERS = frozenset({"http", "https", "ftp", "ftps", "nfs", "gluster", "rbd", "iscsi"})
SECRET_REFS = ("key-secret", "password-secret", "cookie-secret")


def network_nodes(argv: list[str]) -> list[dict[str, object]]:
    nodes = json_values(argv, "-blockdev")
    out = []
    for node in nodes:
        if node.get("driver") in NETWORK_DRIVERS:
            node.pop("node-name")
            node.pop("discard")
            out.append({key: ("<secret>" if key in SECRET_REFS else value) for key, value in node.items()})
    return sorted(out, key=lambda n: json.dumps(n, sort_keys=True))


def secret_objects(argv: list[str]) -> list[str]:
    """The secret objects other than the master key, by what they are for (auth, httpcookie)."""
    objects = json_values(argv, "-object")
    secrets = [o for o in objects if o["qom-type"] == "secret" and o["id"] != "masterKey0"]
    assert all(o["keyid"] == "masterKey0" and o["format"] == "base64" and "iv" in o for o in secrets)
    return sorted(str(o["id"]).split("-storage-")[1] for o in secrets)


def test_network_disks_agree_with_libvirt(oracle: Oracle) -> None:
    theirs = network_nodes(oracle.native_argv(DATA_ROOT / "domain" / "libvirt-network-disks.xml"))
    assert len(theirs) == 7
    assert network_nodes(argv_for("domain/libvirt-network-disks")) == theirs


def test_network_disk_credentials_agree_with_libvirt(oracle: Oracle, tmp_path: Path) -> None:
    """rbd's cephx key, iSCSI's and https's passwords and https's cookies: secret objects in both."""
    from pyvirt.conf import network_disk
    from pyvirt.conf.domain_xml import load_domain_xml
    from pyvirt.daemon.disk_secrets import pretend_all
    from pyvirt.qemu.command import build_argv
    from tests.unit.qemu.test_command import runtime_context

    for kind, usage, element in (("ceph", "netdisk-ceph", "name"), ("iscsi", "netdisk-iscsi", "target")):
        secret = tmp_path / f"{kind}.xml"
        secret.write_text(
            f"<secret ephemeral='no'><usage type='{kind}'><{element}>{usage}</{element}></usage></secret>"
        )
        uuid = oracle.virsh("secret-define", str(secret)).split()[1]
        oracle.virsh("secret-set-value", uuid, "c2VjcmV0")
    xml = DATA_ROOT / "netdisk" / "credentials.xml"
    theirs = oracle.native_argv(xml)
    dom = load_domain_xml(xml.read_text())
    ctx = runtime_context(dom)
    values = {
        sid: b"secret"
        for index, disk in enumerate(dom.devices.disks)
        if disk.net is not None
        for sid in network_disk.secret_ids(disk.net, f"pyvirt-{index + 1}")
    }
    ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, values, tmp_path)
    ours = build_argv(dom, ctx)
    assert network_nodes(ours) == network_nodes(theirs)
    assert (
        secret_objects(ours)
        == secret_objects(theirs)
        == sorted(["auth-secret0", "auth-secret0", "auth-secret0", "httpcookie-secret0"])
    )


def test_iscsi_hostdev_and_nvram_credentials_agree_with_libvirt(oracle: Oracle, tmp_path: Path) -> None:
    """An iSCSI hostdev's and an iSCSI NVRAM's CHAP: the iscsi nodes with user and password-secret, each
    naming a secret object encrypted with the master key, in both."""
    from pyvirt.conf import network_disk
    from pyvirt.conf.domain_xml import load_domain_xml
    from pyvirt.daemon.disk_secrets import network_sources, pretend_all
    from pyvirt.qemu.command import build_argv
    from tests.unit.qemu.test_command import runtime_context

    secret = tmp_path / "iscsi.xml"
    secret.write_text(
        "<secret ephemeral='no'><uuid>4e0f3b1c-2d7a-4c55-9b1e-6f2a8d3c7e10</uuid>"
        "<usage type='iscsi'><target>netdisk-iscsi-chap</target></usage></secret>"
    )
    oracle.virsh("secret-define", str(secret))
    oracle.virsh("secret-set-value", "4e0f3b1c-2d7a-4c55-9b1e-6f2a8d3c7e10", "c2VjcmV0")
    xml = DATA_ROOT / "netdisk" / "iscsi-credentials.xml"
    theirs = oracle.native_argv(xml)
    dom = load_domain_xml(xml.read_text())
    ctx = runtime_context(dom)
    values = {network_disk.auth_secret_id(node): b"secret" for node, _ in network_sources(dom)}
    ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, values, tmp_path)
    ours = build_argv(dom, ctx)

    def iscsi_nodes(argv: list[str]) -> list[dict[str, object]]:
        nodes = json_values(argv, "-blockdev")
        secrets = {str(o["id"]): o for o in json_values(argv, "-object") if o["qom-type"] == "secret"}
        out = []
        for node in nodes:
            if node.get("driver") == "iscsi":
                sealed = secrets[str(node["password-secret"])]
                assert sealed["keyid"] == "masterKey0" and sealed["format"] == "base64" and sealed["iv"]
                skip = ("node-name", "discard", "password-secret")
                out.append({key: value for key, value in node.items() if key not in skip})
        return sorted(out, key=lambda n: json.dumps(n, sort_keys=True))

    assert len(iscsi_nodes(theirs)) == 2
    assert iscsi_nodes(ours) == iscsi_nodes(theirs)


def layer_nodes(argv: list[str]) -> list[dict[str, object]]:
    """The copy-on-read filters and qcow2 format nodes, their node names and children left out."""
    nodes = json_values(argv, "-blockdev")
    out = [
        {key: value for key, value in node.items() if key not in ("node-name", "file")}
        for node in nodes
        if node.get("driver") in ("copy-on-read", "qcow2")
    ]
    return sorted(out, key=lambda n: json.dumps(n, sort_keys=True))


def test_disk_layers_agree_with_libvirt(oracle: Oracle) -> None:
    """copy_on_read's filter node, metadata_cache's cache-size; a transient disk's nodes as any disk's."""
    theirs, ours = both(oracle, "libvirt-disk-layers")
    assert layer_nodes(ours) == layer_nodes(theirs)
    assert any('"drive":"libvirt-CoR-vda"' in arg for arg in theirs)
    assert any("drive=pyvirt-CoR-vda" in arg for arg in ours)


def test_network_nvram_agrees_with_libvirt(oracle: Oracle) -> None:
    """<nvram type='network'>: the NBD node libvirt gives pflash1."""
    theirs, ours = both(oracle, "libvirt-nvram-network")

    def pflash1(argv: list[str]) -> list[dict[str, object]]:
        nodes = json_values(argv, "-blockdev")
        found = [n for n in nodes if "pflash1" in str(n["node-name"])]
        return [{k: v for k, v in n.items() if k not in ("node-name", "file", "discard")} for n in found]

    assert pflash1(ours) == pflash1(theirs) != []
    assert any("pflash1=libvirt-pflash1-format" in arg for arg in theirs)


def test_network_nvram_over_tls_agrees_with_libvirt(oracle: Oracle) -> None:
    """<nvram type='network'> on NBD with tls='yes': the client credentials object and the NBD node's
    tls-creds and tls-hostname (the object's id and each daemon's own directory are not compared)."""
    theirs = oracle.native_argv(DATA_ROOT / "domain" / "libvirt-nvram-nbd-tls.xml")
    ours = argv_for("domain/libvirt-nvram-nbd-tls")

    def tls(argv: list[str]) -> list[dict[str, object]]:
        values = [json.loads(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a in ("-object", "-blockdev")]
        creds = {o["id"]: o for o in values if o.get("qom-type") == "tls-creds-x509"}
        out = []
        for node in values:
            if "pflash1" in str(node.get("node-name")) and "tls-creds" in node:
                obj = {k: v for k, v in creds[node["tls-creds"]].items() if k not in ("id", "dir")}
                rest = {k: v for k, v in node.items() if k not in ("node-name", "discard", "tls-creds")}
                out.append({**rest, "creds": obj})
        return out

    assert tls(ours) == tls(theirs) != []


def test_reservations_agree_with_libvirt(oracle: Oracle) -> None:
    """<reservations managed='yes'/'no'>: the pr-manager-helper objects and the nodes naming them (the
    managed helper's socket is in each daemon's own run directory: its name is compared)."""
    theirs, ours = both(oracle, "libvirt-reservations")

    def helpers(argv: list[str]) -> list[tuple[str, str]]:
        values = json_values(argv, "-object", "-blockdev")
        objects = {o["id"]: o["path"] for o in values if o.get("qom-type") == "pr-manager-helper"}
        used = [str(node["pr-manager"]) for node in values if "pr-manager" in node]
        return [
            (
                re.sub(r"(libvirt|pyvirt)-\d+", "N", name),
                os.path.basename(objects[name]) if name == "pr-helper0" else objects[name],
            )
            for name in used
        ]

    expected = [("pr-helper0", "pr-helper0.sock"), ("pr-helper-N-storage", "/run/qemu-pr-helper.sock")]
    assert helpers(ours) == helpers(theirs) == expected


def test_iscsi_hostdevs_agree_with_libvirt(oracle: Oracle) -> None:
    """<hostdev type='scsi'> on iSCSI: the iscsi node and scsi-generic at the LUN's drive address."""
    theirs, ours = both(oracle, "libvirt-hostdev-iscsi")

    def backends(argv: list[str]) -> list[dict[str, object]]:
        nodes = json_values(argv, "-blockdev")
        return [{k: v for k, v in n.items() if k != "node-name"} for n in nodes if n.get("driver") == "iscsi"]

    assert backends(ours) == backends(theirs) != []
    generic = options(theirs, "-device", ("scsi-generic",))
    assert generic and options(ours, "-device", ("scsi-generic",)) == generic


def test_iscsi_hostdev_addresses_agree_with_libvirt(oracle: Oracle) -> None:
    """iSCSI hostdevs without an address: the units define writes into the definition (after the SCSI
    disk's) and the scsi-generic placement on the implicit lsilogic controller (scsi-id = unit)."""
    from pyvirt.conf.domain_xml import format_domain, load_domain_xml

    xml = DATA_ROOT / "domain" / "libvirt-hostdev-iscsi-auto.xml"
    theirs, ours = both(oracle, "libvirt-hostdev-iscsi-auto")
    generic = options(theirs, "-device", ("scsi-generic",))
    assert len(generic) == 2 and options(ours, "-device", ("scsi-generic",)) == generic
    oracle.virsh("define", str(xml))

    def drive_addresses(text: str) -> list[str]:
        return re.findall(r"<hostdev .*?(<address type='drive'[^>]*/>)", text, flags=re.S)

    defined = drive_addresses(oracle.virsh("dumpxml", "--inactive", "iscsi-auto-guest"))
    assert len(defined) == 2
    assert drive_addresses(format_domain(load_domain_xml(xml.read_text()))) == defined


def chain_nodes(argv: list[str]) -> list[dict[str, object]]:
    """Each format node over its protocol node, naming its backing by that layer's protocol node (node
    names left out; the protocol nodes' discard too: libvirt's 'unmap' under a format node that ignores
    discards, pyvirt's 'ignore')."""
    nodes = json_values(argv, "-blockdev")
    by_name = {str(n["node-name"]): n for n in nodes}

    def storage(format_node: str) -> dict[str, object]:
        found = by_name[str(by_name[format_node]["file"])]
        return {k: v for k, v in found.items() if k not in ("node-name", "discard")}

    out = []
    for node in nodes:
        if "file" not in node:
            continue
        entry = {k: v for k, v in node.items() if k not in ("node-name", "file", "backing")}
        entry["storage"] = storage(str(node["node-name"]))
        if "backing" in node:
            below = node["backing"]
            entry["backing"] = None if below is None else storage(str(below))
        out.append(entry)
    return sorted(out, key=lambda n: json.dumps(n, sort_keys=True))


def test_backing_chains_agree_with_libvirt(oracle: Oracle) -> None:
    """A given <backingStore> chain: a node pair per layer with its own format (and cache-size), the
    layer above naming it; an empty <backingStore/> is "backing": null; an open chain's last layer
    names none (QEMU reads its header)."""
    theirs = chain_nodes(oracle.native_argv(DATA_ROOT / "domain" / "libvirt-backing-chain.xml"))
    assert len(theirs) == 8
    assert chain_nodes(argv_for("domain/libvirt-backing-chain")) == theirs
    # layers on servers (nfs, http, NBD), under a local image and under a server's
    theirs = chain_nodes(oracle.native_argv(DATA_ROOT / "domain" / "libvirt-backing-chain-network.xml"))
    assert len(theirs) == 5
    assert chain_nodes(argv_for("domain/libvirt-backing-chain-network")) == theirs


def test_backing_layers_on_servers_with_credentials_and_tls_agree_with_libvirt(
    oracle: Oracle, tmp_path: Path
) -> None:
    """A given chain's layers on servers get what a network disk's source gets: https's password as a
    secret object the protocol node names, NBD's TLS client credentials object and tls-hostname
    (node names, the objects' ids and each daemon's own directory are not compared)."""
    from pyvirt.conf import backing_chain, network_disk
    from pyvirt.conf.domain_xml import load_domain_xml
    from pyvirt.daemon.disk_secrets import pretend_all
    from pyvirt.qemu.command import build_argv
    from tests.unit.qemu.test_command import runtime_context

    secret = tmp_path / "secret.xml"
    secret.write_text(
        "<secret ephemeral='no'><usage type='iscsi'><target>layer-web</target></usage></secret>"
    )
    uuid = oracle.virsh("secret-define", str(secret)).split()[1]
    oracle.virsh("secret-set-value", uuid, "c2VjcmV0")
    chain = (
        "<backingStore type='network'><format type='qcow2'/><source protocol='https' name='/mid.qcow2'>"
        "<host name='web.example.org' port='443'/><auth username='reader'>"
        "<secret type='iscsi' usage='layer-web'/></auth></source>"
        "<backingStore type='network'><format type='qcow2'/>"
        "<source protocol='nbd' name='base' tls='yes' tlsHostname='nbd.example.org'>"
        "<host name='nbd.example.org' port='10809'/></source><backingStore/></backingStore></backingStore>"
    )
    text = (DATA_ROOT / "domain" / "libvirt-backing-chain-network.xml").read_text()
    start = text.index("<backingStore type='network'>")
    end = text.index("<target dev='vda'")
    xml = tmp_path / "servers.xml"
    xml.write_text(text[:start] + chain + text[end:])
    theirs = oracle.native_argv(xml)
    dom = load_domain_xml(xml.read_text())
    ctx = runtime_context(dom)
    values = {
        sid: b"secret"
        for name, remote in backing_chain.remotes(dom.devices.disks[0], "pyvirt-1")
        if remote.net is not None
        for sid in network_disk.secret_ids(remote.net, name)
    }
    ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, values, tmp_path)
    ours = build_argv(dom, ctx)
    assert network_nodes(ours) == network_nodes(theirs) != []
    assert secret_objects(ours) == secret_objects(theirs) == ["auth-secret0"]

    def tls(argv: list[str]) -> list[dict[str, object]]:
        values = [json.loads(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a in ("-object", "-blockdev")]
        creds = {o["id"]: o for o in values if o.get("qom-type") == "tls-creds-x509"}
        out = []
        for node in values:
            if node.get("driver") == "nbd" and "tls-creds" in node:
                obj = {k: v for k, v in creds[node["tls-creds"]].items() if k not in ("id", "dir")}
                rest = {k: v for k, v in node.items() if k not in ("node-name", "discard", "tls-creds")}
                out.append({**rest, "creds": obj})
        return sorted(out, key=lambda n: json.dumps(n, sort_keys=True))

    assert tls(ours) == tls(theirs) != []

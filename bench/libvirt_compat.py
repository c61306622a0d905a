"""Measure pyvirt against libvirt's own QEMU test suite: ``python bench/libvirt_compat.py LIBVIRT_TREE``.

LIBVIRT_TREE is a libvirt source tree: a git checkout (``tests/qemuxmlconfdata``, libvirt ≥ 10) or a
release such as Debian's ``libvirt_9.0.0.orig.tar.xz`` (``tests/qemuxml2argvdata`` with the expanded
XML in ``tests/qemuxml2xmloutdata``). For every x86_64-latest case (libvirt's expanded XML for its
newest QEMU where the tree has it, else the input XML) it reports whether pyvirt accepts the XML
(parse, defaults, validation, firmware from this host's descriptors, command line) or refuses it and
why, and, for the accepted ones that have an expected ``.x86_64-latest.args``, whether the command
lines agree in meaning: the same QEMU devices (``-device`` drivers, as a multiset), the same vCPU count
and topology, memory size and machine type.
Ids, fd numbers, paths, option order and libvirt-only options (``-object secret``, ``-overcommit``...)
are not compared. libvirt's files are read from the checkout, never copied.

``--list`` prints each file's verdict; the summary is the acceptance rate, the equivalence rate and the
refusal reasons, most common first. ``--libvirt`` keeps only the cases libvirt 9.0 itself runs on this
host (``virsh domxml-to-native qemu-argv`` succeeds against a private libvirtd in mount and network
namespaces of its own, the tests' oracle, so a libvirtd already running on the machine neither stops
the run nor answers for it): the population the compatibility target is about.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shlex
import sys
from pathlib import Path

from pyvirt.conf import network_disk
from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.daemon.disk_secrets import pretend_all
from pyvirt.errors import PyvirtError
from pyvirt.qemu import firmware
from pyvirt.qemu.command import RuntimeContext, build_argv, disk_device_id

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.virtinstall import Oracle

# Devices libvirt adds that pyvirt gets from the machine or leaves out without a difference to the guest.
_IGNORED_DEVICES = {"pci-ohci"}


def _argv_of_args_file(path: Path) -> list[str]:
    text = path.read_text().replace("\\\n", " ")
    words = shlex.split(text)
    start = next(i for i, word in enumerate(words) if word.startswith("/") and "qemu-system" in word)
    return words[start:]


def _options(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def _driver(spec: str) -> str:
    if spec.startswith("{"):
        return str(json.loads(spec).get("driver", "?"))
    return spec.split(",", 1)[0]


def _device_id(spec: str) -> str | None:
    if spec.startswith("{"):
        value = json.loads(spec).get("id")
        return None if value is None else str(value)
    return next((part[3:] for part in spec.split(",") if part.startswith("id=")), None)


def _kib(size: str) -> int:
    """QEMU's ``-m`` value in KiB (a bare number is MiB)."""
    units = {"k": 1, "m": 1024, "g": 1024 * 1024, "t": 1024**3}
    unit = size[-1:].lower()
    return int(size[:-1]) * units[unit] if unit in units else int(size) * 1024


def summary(argv: list[str]) -> dict[str, object]:
    """What the comparison looks at."""
    devices = collections.Counter(_driver(d) for d in _options(argv, "-device"))
    for name in _IGNORED_DEVICES:
        devices.pop(name, None)
    smp = _options(argv, "-smp")
    memory = [_kib(re.sub(r"^size=", "", m.split(",")[0])) for m in _options(argv, "-m")]
    machine = [m.split(",")[0] for m in _options(argv, "-machine")]
    return {"devices": dict(sorted(devices.items())), "smp": smp, "memory": memory, "machine": machine}


def _context(dom_name: str, interfaces: int, channels: int) -> RuntimeContext:
    run = "/run/pyvirt/qemu"
    return RuntimeContext(
        accel="tcg",
        monitor_path=f"{run}/{dom_name}.monitor",
        taps={i: f"vnet{i}" for i in range(interfaces)},
        channel_paths={i: f"{run}/{dom_name}.channel{i}" for i in range(channels)},
        pidfile=f"{run}/{dom_name}.pid",
        # what start chooses for an autoport SPICE display and a <listen type='socket'/> without a path
        graphics_port=5900,
        graphics_socket=f"{run}/{dom_name}.channels/graphics.sock",
        vsock_cid=3,  # what start chooses for <cid auto='yes'/> on a host with no other guest
        pr_helper_socket=f"{run}/{dom_name}.channels/pr-helper0.sock",  # a managed qemu-pr-helper's
        tpm_socket=f"{run}/{dom_name}.channels/swtpm.sock",  # where start has the domain's swtpm listen
        memory_dir=f"{run}/{dom_name}.channels",  # where start puts <source type='file'/> memory files
    )


def check(xml_path: Path, expected: Path | None = None) -> tuple[str, str]:
    """(verdict, detail): accepted-equivalent | accepted-different | accepted | refused."""
    try:
        dom = load_domain_xml(xml_path.read_text())
        firmware.fill_domain(dom)
        ctx = _context(dom.name, len(dom.devices.interfaces), len(dom.devices.channels))
        nvram = dom.os.loader is not None and dom.os.loader.type == "pflash" and not dom.os.loader.stateless
        ctx.nvram_path = f"/var/lib/pyvirt/qemu/nvram/{dom.name}_VARS.fd" if nvram else None
        ctx.virtiofs_sockets = {  # where start has each virtiofs share's virtiofsd listen
            i: f"/run/pyvirt/qemu/{dom.name}.channels/{fs.alias or f'fs{i}'}-fs.sock"
            for i, fs in enumerate(dom.devices.filesystems)
            if fs.virtiofs is not None
        }
        ctx.disk_paths = {
            i: f"/var/lib/pyvirt/images/{d.source_volume}"
            for i, d in enumerate(dom.devices.disks)
            if d.type == "volume"
        }
        # network disks' credentials and cookies as start seals them (libvirt's own run needs the
        # credentials' secrets defined, so its population has only cookies)
        network = {
            sid: network_disk.cookie_string(d.net).encode() if "cookie" in sid else b"password"
            for i, d in enumerate(dom.devices.disks)
            if d.net is not None
            for sid in network_disk.secret_ids(d.net, f"pyvirt-{i + 1}")
        }
        ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, network, Path("/run/pyvirt/qemu/channels"))
        ctx.shared_overlays = {  # where start makes the overlays of <transient shareBacking='yes'/> disks
            i: f"{d.source}.TRANSIENT-{dom.name}"
            for i, d in enumerate(dom.devices.disks)
            if d.layers.share_backing
        }
        ours = build_argv(dom, ctx)
    except PyvirtError as err:
        return "refused", str(err)
    except Exception as err:  # a crash is a finding, not a refusal
        return "crashed", f"{type(err).__name__}: {err}"
    if expected is None or not expected.exists():
        return "accepted", "no expected .args"
    theirs = _argv_of_args_file(expected)
    mine, libvirts = summary(ours), summary(theirs)
    # libvirt plugs <transient shareBacking='yes'/> disks over QMP once QEMU has started, before the
    # vCPUs run (not on its command line): the guest has them from its first instruction, as with ours.
    plugged = [disk_device_id(dom, i) for i, d in enumerate(dom.devices.disks) if d.layers.share_backing]
    devices = collections.Counter(libvirts["devices"])  # type: ignore[arg-type]
    devices.update(_driver(spec) for spec in _options(ours, "-device") if _device_id(spec) in plugged)
    libvirts["devices"] = dict(sorted(devices.items()))
    if mine == libvirts:
        return "accepted-equivalent", ""
    diff = {key: (mine[key], libvirts[key]) for key in mine if mine[key] != libvirts[key]}
    return "accepted-different", json.dumps(diff)


def cases(tree: Path) -> list[tuple[Path, Path | None]]:
    """(domain XML, expected .args or None) of every x86_64-latest case in the tree."""
    confdata = tree / "tests" / "qemuxmlconfdata"
    if confdata.is_dir():
        return [
            (xml, xml.with_name(xml.name.replace(".xml", ".args")))
            for xml in sorted(confdata.glob("*.x86_64-latest.xml"))
        ]
    argvdata, outdata = tree / "tests" / "qemuxml2argvdata", tree / "tests" / "qemuxml2xmloutdata"
    out: list[tuple[Path, Path | None]] = []
    for args in sorted(argvdata.glob("*.x86_64-latest.args")):
        base = args.name.removesuffix(".x86_64-latest.args")
        expanded = outdata / f"{base}.x86_64-latest.xml"
        xml = expanded if expanded.exists() else argvdata / f"{base}.xml"
        if xml.exists():
            out.append((xml, args))
    return out


def libvirt_runs(oracle: Oracle, xml: Path) -> bool:
    """Whether libvirt 9.0 here turns the XML into a QEMU command line (its own verdict)."""
    return oracle.runs("domxml-to-native", "qemu-argv", str(xml))


def _reason(detail: str) -> str:
    """A refusal message with its values blanked, so that like refusals count together."""
    return re.sub(r"= '[^']*'", "= '…'", re.sub(r"\d+", "N", detail))[:140]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tree", type=Path, help="a libvirt source tree (checkout or release)")
    parser.add_argument("--list", action="store_true", help="print every file's verdict")
    parser.add_argument(
        "--libvirt", action="store_true", help="only the cases libvirt 9.0 itself runs on this host"
    )
    args = parser.parse_args()
    files = cases(args.tree)
    if not files:
        print(f"error: no x86_64-latest test cases under {args.tree}/tests", file=sys.stderr)
        return 1
    if args.libvirt:
        files = _libvirt_population(files)
    verdicts = collections.Counter[str]()
    reasons = collections.Counter[str]()
    for path, expected in files:
        verdict, detail = check(path, expected)
        verdicts[verdict] += 1
        if verdict in ("refused", "crashed"):
            reasons[_reason(detail)] += 1
        if args.list:
            print(f"{verdict:20} {path.name} {detail}")
    total = len(files)
    accepted = total - verdicts["refused"] - verdicts["crashed"]
    compared = verdicts["accepted-equivalent"] + verdicts["accepted-different"]
    print(f"cases: {total}" + (" (those libvirt 9.0 runs here)" if args.libvirt else ""))
    print(f"accepted: {accepted} ({100 * accepted / total:.1f}%)")
    if compared:
        rate = 100 * verdicts["accepted-equivalent"] / compared
        print(f"equivalent command line: {verdicts['accepted-equivalent']} of {compared} ({rate:.1f}%)")
    print(f"crashed: {verdicts['crashed']}")
    print("refusals, most common first:")
    for reason, count in reasons.most_common():
        print(f"{count:5}  {reason}")
    return 0


def _libvirt_population(files: list[tuple[Path, Path | None]]) -> list[tuple[Path, Path | None]]:
    why = Oracle.missing()
    if why is not None:
        raise SystemExit(f"error: --libvirt needs libvirt 9.0 as the oracle: {why}")
    oracle = Oracle()
    oracle.start()
    try:
        return [case for case in files if libvirt_runs(oracle, case[0])]
    finally:
        oracle.stop()


if __name__ == "__main__":
    sys.exit(main())

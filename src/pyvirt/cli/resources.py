"""Memory and vCPU verbs, with virsh 9.0's output: setmem, setmaxmem, setvcpus, vcpucount, vcpuinfo,
vcpupin, emulatorpin."""

from __future__ import annotations

from pyvirt.cli.domain import _domain
from pyvirt.cli.output import emit, table
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def _scope(a: Parsed) -> tuple[bool, bool]:
    """--live/--config, with virsh's refusal of --current beside either (neither: the current state)."""
    if a.flag("current") and (a.flag("live") or a.flag("config")):
        raise InvalidArgument("Options --current and --live are mutually exclusive")
    return a.flag("live"), a.flag("config")


def _kib(text: str) -> int:
    """virsh's scaled integer with KiB as the default unit (``512M``, ``1G``, ``131072``)."""
    from pyvirt.conf.units import parse_scaled

    if text.strip().isdigit():
        return int(text)
    return -(-parse_scaled(text) // 1024)


def cmd_setmem(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    dom.set_memory(_kib(a.text("size")), live=live, config=config)
    emit("\n")
    return 0


def cmd_setmaxmem(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    dom.set_memory(_kib(a.text("size")), maximum=True, live=live, config=config)
    emit("\n")
    return 0


def cmd_setvcpus(opts: GlobalOptions, a: Parsed) -> int:
    if a.flag("guest"):
        raise InvalidArgument(
            "--guest: pyvirt sets the guest's vCPU states through the guest agent, not here"
        )
    if a.flag("hotpluggable"):
        raise InvalidArgument(
            "--hotpluggable: pyvirt keeps no per-vCPU <vcpus> list; every vCPU beyond <vcpu current> is "
            "hot-pluggable already"
        )
    live, config = _scope(a)
    count = int(a.text("count"))
    dom = _domain(opts.connect(), a.text("domain"))
    dom.set_vcpus(count, maximum=a.flag("maximum"), live=live, config=config)
    emit("\n")
    return 0


def cmd_vcpucount(opts: GlobalOptions, a: Parsed) -> int:
    if a.flag("guest"):
        raise InvalidArgument(
            "--guest: pyvirt reads the guest's vCPU count through the guest agent, not here"
        )
    if a.flag("maximum") and a.flag("active"):
        raise InvalidArgument("Options --maximum and --active are mutually exclusive")
    if a.flag("live") and a.flag("config"):
        raise InvalidArgument("Options --live and --config are mutually exclusive")
    live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    info = dom.vcpus()
    running = info["current_live"] is not None
    if not any(a.flag(f) for f in ("maximum", "active", "live", "config", "current")):
        rows = []
        for kind in ("maximum", "current"):
            for where in ("config", "live"):
                value = info[f"{kind}_{where}"]  # type: ignore[literal-required]
                if value is not None:
                    rows.append(f"{kind:<12} {where:<12} {value:3d}\n")
        emit("".join(rows) + "\n")
        return 0
    where = "live" if live or (not config and running) else "config"
    kind = "maximum" if a.flag("maximum") else "current"
    value = info[f"{kind}_{where}"]  # type: ignore[literal-required]
    if value is None:
        from pyvirt.errors import InvalidState

        raise InvalidState(
            "Requested operation is not valid: domain is not running"
            if where == "live"
            else "Requested operation is not valid: transient domains do not have any persistent config"
        )
    emit(f"{value}\n\n")
    return 0


def cpulist(cpus: list[int]) -> str:
    """libvirt's CPU list of a set: ranges joined by commas (``0-3,6``)."""
    parts: list[str] = []
    ordered = sorted(cpus)
    start = prev = -2
    for cpu in [*ordered, -1]:
        if cpu == prev + 1:
            prev = cpu
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


def cmd_vcpuinfo(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    info = dom.vcpus()
    blocks = []
    for vcpu in info["vcpus"]:
        cpus: list[int] = vcpu["affinity"]
        if a.flag("pretty"):
            affinity = f"{cpulist(cpus)} (out of {info['host_cpus']})"
        else:
            affinity = "".join("y" if cpu in cpus else "-" for cpu in range(info["host_cpus"]))
        time_ns = vcpu["time_ns"]
        pairs: list[tuple[str, Any]] = [
            ("VCPU:", vcpu["vcpu"]),
            ("CPU:", vcpu["cpu"] if vcpu["cpu"] is not None else "N/A"),
            ("State:", vcpu["state"] or "N/A"),
            ("CPU time:", f"{time_ns / 1e9:.1f}s" if time_ns is not None else "N/A"),
            ("CPU Affinity:", affinity),
        ]
        blocks.append("".join(f"{label:<15} {value}\n" for label, value in pairs))
    emit("\n".join(blocks) + "\n")
    return 0


def cmd_vcpupin(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    vcpu = int(a.text("vcpu")) if a.opt("vcpu") is not None else None
    cpus = a.opt("cpulist")
    if cpus is None:
        info = dom.vcpus(config=config)
        rows = [[str(v["vcpu"]), cpulist(v["affinity"])] for v in info["vcpus"] if vcpu in (None, v["vcpu"])]
        if vcpu is not None and not rows:
            raise InvalidArgument(f"invalid argument: vcpu {vcpu} is out of range of live cpu count")
        emit(table(["VCPU", "CPU Affinity"], rows) + "\n")
        return 0
    if vcpu is None:
        raise InvalidArgument("vcpupin: Missing vCPU number in pin mode.")
    dom.pin(cpus, vcpu=vcpu, live=live, config=config)
    emit("\n")
    return 0


def cmd_emulatorpin(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    cpus = a.opt("cpulist")
    if cpus is None:
        info = dom.vcpus(config=config)
        emit(f"emulator: CPU Affinity\n{'-' * 34}\n       *: {cpulist(info['emulator'])}\n\n")
        return 0
    dom.pin(cpus, live=live, config=config)
    emit("\n")
    return 0


def cmd_blkdeviotune(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.conf.iotune import NAMES
    from pyvirt.conf.units import parse_scaled

    live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    device = a.text("device")
    changes: dict[str, int | str] = {}
    for name in NAMES:
        text = a.opt(name)
        if text is None:
            continue
        if name == "group_name":
            changes[name] = text
        elif "bytes_sec" in name and not name.endswith("_length"):
            changes[name] = parse_scaled(text)  # a scaled integer, bytes by default
        elif text.isdigit():
            changes[name] = int(text)
        else:
            raise InvalidArgument(
                f"Numeric value '{text}' for <{name.replace('_', '-')}> option is malformed"
            )
    if not changes:
        values = dom.iotune(device, config=config)
        emit("".join(f"{k:<15}: {v}\n" for k, v in values.items()) + "\n")
        return 0
    dom.set_iotune(device, live=live, config=config, **changes)
    emit("\n")
    return 0


def cmd_iothreadinfo(opts: GlobalOptions, a: Parsed) -> int:
    _live, config = _scope(a)
    dom = _domain(opts.connect(), a.text("domain"))
    threads = dom.iothreads(config=config)
    if not threads:
        emit("No IOThreads found for the domain\n")
        return 0
    rows = [[str(t["id"]), cpulist(t["affinity"])] for t in threads]
    emit(table(["IOThread ID", "CPU Affinity"], rows) + "\n")
    return 0

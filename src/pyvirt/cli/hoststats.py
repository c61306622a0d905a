"""Host statistics and capability verbs, with virsh 9.0's output: nodecpustats, nodememstats,
freecell, maxvcpus, cpu-models, sysinfo, domcapabilities."""

from __future__ import annotations

from pyvirt.cli.output import emit
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def _number(a: Parsed, name: str) -> int | None:
    text = a.opt(name)
    if text is None:
        return None
    if not text.isdigit():
        raise InvalidArgument(f"Invalid value for {name}: '{text}'")
    return int(text)


def cmd_nodecpustats(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    cpu = _number(a, "cpu")
    first = conn.cpu_stats(cpu)
    if not a.flag("percent"):
        emit("".join(f"{k + ':':<15} {v:20d}\n" for k, v in first.items()) + "\n")
        return 0
    import time

    time.sleep(1)  # virsh's one second between the two samples
    second = conn.cpu_stats(cpu)
    delta = {k: second[k] - first[k] for k in first}
    total = sum(delta.values())

    def share(value: float) -> str:
        return f"{(value / total * 100) if total else float('nan'):5.1f}%"

    lines = [("usage:", share(delta["user"] + delta["system"]))]
    lines += [(f"{k}:", share(v)) for k, v in delta.items()]
    emit("".join(f"{label:<15} {value}\n" for label, value in lines) + "\n")
    return 0


def cmd_nodememstats(opts: GlobalOptions, a: Parsed) -> int:
    stats = opts.connect().memory_stats(_number(a, "cell"))
    emit("".join(f"{k:<7}: {v:20d} KiB\n" for k, v in stats.items()) + "\n")
    return 0


def cmd_freecell(opts: GlobalOptions, a: Parsed) -> int:
    cell = _number(a, "cellno")
    if cell is not None and a.flag("all"):
        raise InvalidArgument("Options --cellno and --all are mutually exclusive")
    cells = opts.connect().free_cells()
    if a.flag("all"):
        text = "".join(f"{c['cell']:5d}: {c['free_kib']:10d} KiB\n" for c in cells)
        total = sum(c["free_kib"] for c in cells)
        emit(f"{text}{'-' * 20}\n{'Total':>5}: {total:10d} KiB\n\n")
        return 0
    if cell is not None:
        found = [c for c in cells if c["cell"] == cell]
        if not found:
            raise InvalidArgument(f"invalid argument: Invalid cell number {cell}")
        emit(f"{cell}: {found[0]['free_kib']} KiB\n\n")
        return 0
    emit(f"Total: {sum(c['free_kib'] for c in cells)} KiB\n\n")
    return 0


def cmd_maxvcpus(opts: GlobalOptions, a: Parsed) -> int:
    emit(f"{opts.connect().max_vcpus(a.opt('type'))}\n\n")
    return 0


def cmd_cpu_models(opts: GlobalOptions, a: Parsed) -> int:
    emit("".join(f"{name}\n" for name in opts.connect().cpu_models(a.text("arch"))) + "\n")
    return 0


def cmd_sysinfo(opts: GlobalOptions, a: Parsed) -> int:
    emit(opts.connect().sysinfo() + "\n")
    return 0


def cmd_domcapabilities(opts: GlobalOptions, a: Parsed) -> int:
    for flag in ("xpath", "wrap"):
        if a.get(flag):
            raise InvalidArgument(f"--{flag}: pyvirt prints the whole document (use an XML tool to select)")
    xml = opts.connect().domain_capabilities(
        virttype=a.opt("virttype"),
        emulator=a.opt("emulatorbin"),
        arch=a.opt("arch"),
        machine=a.opt("machine"),
    )
    emit(xml + "\n")
    return 0

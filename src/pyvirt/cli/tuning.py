"""memtune, schedinfo and domiftune, with virsh 9.0's options and output."""

from __future__ import annotations

from pyvirt.cli.domain import _domain
from pyvirt.cli.output import emit
from pyvirt.cli.resources import _scope
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

UNLIMITED_KIB = 9007199254740991  # libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED


def _limit(option: str, text: str) -> int:
    """virsh's scaled integer, KiB by default; -1 (or anything at libvirt's maximum) is unlimited."""
    from pyvirt.conf.units import parse_scaled

    if text.strip() == "-1":
        return UNLIMITED_KIB
    try:
        kib = int(text) if text.strip().isdigit() else -(-parse_scaled(text) // 1024)
    except InvalidArgument:
        raise InvalidArgument(f"Unable to parse integer parameter {option}") from None
    return min(kib, UNLIMITED_KIB)


def cmd_memtune(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    if a.opt("min_guarantee") is not None:
        raise InvalidArgument(
            "--min-guarantee: the QEMU driver has no min_guarantee (libvirt refuses it too)"
        )
    changes = {
        name: _limit(f"--{name.replace('_', '-')}", text)
        for name in ("hard_limit", "soft_limit", "swap_hard_limit")
        if (text := a.opt(name)) is not None
    }
    dom = _domain(opts.connect(), a.text("domain"))
    if changes:
        dom.set_memtune(live=live, config=config, **changes)
        emit("\n")
        return 0
    values = dom.memtune(config=config)
    emit(
        "".join(
            f"{name:<15}: {'unlimited' if kib >= UNLIMITED_KIB else kib}\n" for name, kib in values.items()
        )
    )
    emit("\n")
    return 0


def cmd_schedinfo(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    for xen in ("weight", "cap"):
        if a.opt(xen) is not None:
            raise InvalidArgument(f"--{xen}: a Xen credit scheduler parameter; QEMU domains have cpu_shares")
    dom = _domain(opts.connect(), a.text("domain"))
    setting = a.opt("set")
    if setting is not None:
        name, eq, value = setting.partition("=")
        if not eq or not name:
            raise InvalidArgument(f"Invalid syntax for --set, expecting name=value: '{setting}'")
        try:
            number = int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value '{value}' for scheduler parameter {name}") from None
        dom.set_schedinfo(live=live, config=config, **{name: number})
    values = dom.schedinfo(config=config and not live)
    emit("Scheduler      : posix\n" + "".join(f"{k:<15}: {v}\n" for k, v in values.items()) + "\n")
    return 0


def _rates(option: str, text: str, names: tuple[str, ...]) -> dict[str, int]:
    """virsh's ``average[,peak[,burst[,floor]]]`` (fields may be empty: ``100,,200``)."""
    words = text.split(",")
    if len(words) > len(names) or not all(w == "" or w.isdigit() for w in words):
        raise InvalidArgument(f"inbound format is incorrect: {option} {text}".replace("inbound", option[2:]))
    return {name: int(word) for name, word in zip(names, words, strict=False) if word != ""}


def bandwidth_options(a: Parsed) -> dict[str, dict[str, int]]:
    """--inbound and --outbound (domiftune, attach-interface) as <bandwidth> directions."""
    changes = {}
    for direction, names in (
        ("inbound", ("average", "peak", "burst", "floor")),
        ("outbound", ("average", "peak", "burst")),
    ):
        if (text := a.opt(direction)) is not None:
            changes[direction] = _rates(f"--{direction}", text, names)
    return changes


def cmd_domiftune(opts: GlobalOptions, a: Parsed) -> int:
    live, config = _scope(a)
    changes = bandwidth_options(a)
    dom = _domain(opts.connect(), a.text("domain"))
    device = a.text("interface")
    if changes:
        dom.set_iftune(device, live=live, config=config, **changes)  # type: ignore[arg-type]
        emit("\n")
        return 0
    values = dom.iftune(device, config=config and not live)
    emit("".join(f"{k:<15}: {v}\n" for k, v in values.items()) + "\n")
    return 0

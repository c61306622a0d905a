"""The guest agent's verbs (guestinfo, domfsinfo, domfsfreeze, domtime, qemu-agent-command...), with
virsh 9.0's output and messages. Like virsh, each one ends its output with virsh's blank line."""

from __future__ import annotations

from pyvirt.cli.domain import _domain, _guard, _read_file
from pyvirt.cli.output import emit, table
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

GUESTINFO_FLAGS = ("user", "os", "timezone", "hostname", "filesystem", "disk", "interface")


def _exclusive(a: Parsed, *names: str) -> None:
    given = [n for n in names if a.get(n.replace("-", "_")) not in (None, False)]
    if len(given) > 1:
        raise InvalidArgument(f"Options --{given[0]} and --{given[1]} are mutually exclusive")


def _value_text(value: Any) -> str:
    """A typed parameter as virsh prints it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def cmd_guestinfo(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    wanted = [name for name in GUESTINFO_FLAGS if a.flag(name)]
    params = dom.guest_info(wanted or None)
    emit("".join(f"{key:<20}: {_value_text(value)}\n" for key, value in params.items()) + "\n")
    return 0


def cmd_domfsinfo(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    filesystems = _guard("Unable to get filesystem information", dom.fs_info)
    if not filesystems:
        raise InvalidArgument("No filesystems are mounted in the domain")
    rows = [[fs["mountpoint"], fs["name"], fs["fstype"], ",".join(fs["targets"])] for fs in filesystems]
    emit(table(["Mountpoint", "Name", "Type", "Target"], rows) + "\n")
    return 0


def cmd_domfsfreeze(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    count = _guard("Unable to freeze filesystems", lambda: dom.fs_freeze(a.texts("mountpoint")))
    emit(f"Froze {count} filesystem(s)\n\n")
    return 0


def cmd_domfsthaw(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    count = _guard("Unable to thaw filesystems", lambda: dom.fs_thaw(a.texts("mountpoint")))
    emit(f"Thawed {count} filesystem(s)\n\n")
    return 0


def cmd_domfstrim(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    minimum = int(a.opt("minimum") or 0)
    if minimum < 0:
        raise InvalidArgument("Unable to parse integer parameter minimum")
    _guard("Unable to invoke fstrim", lambda: dom.fs_trim(minimum=minimum, mountpoint=a.opt("mountpoint")))
    emit("\n")
    return 0


def cmd_set_user_password(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    user = a.text("user")
    dom.set_user_password(user, a.text("password"), encrypted=a.flag("encrypted"))
    emit(f"Password set successfully for {user} in {dom.name}\n")
    return 0


def cmd_set_user_sshkeys(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    path = a.opt("file")
    remove, reset = a.flag("remove"), a.flag("reset")
    if remove and reset:
        raise InvalidArgument("Options --reset and --remove are mutually exclusive")
    if not reset and path is None:
        raise InvalidArgument("Option --file is required")
    keys: list[str] = []
    if path is not None:
        keys = [line for line in _read_file(path).splitlines() if line.strip()]
        if not keys:
            raise InvalidArgument(f"File {path} contains no keys")
    dom.set_user_ssh_keys(a.text("user"), keys, reset=reset, remove=remove)
    emit("\n")
    return 0


def cmd_get_user_sshkeys(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    keys = dom.user_ssh_keys(a.text("user"))
    emit("".join(f"{key}\n" for key in keys) + "\n")
    return 0


def cmd_domhostname(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    source = a.opt("source")
    if source is not None and source not in ("agent", "lease"):
        raise InvalidArgument(f"Unknown data source '{source}'")
    hostname = _guard("failed to get hostname", lambda: dom.guest_hostname(source))
    emit(f"{hostname}\n\n")
    return 0


def cmd_domtime(opts: GlobalOptions, a: Parsed) -> int:
    import time

    _exclusive(a, "time", "now")
    _exclusive(a, "time", "sync")
    _exclusive(a, "now", "sync")
    dom = _domain(opts.connect(), a.text("domain"))
    when = a.opt("time")
    if when is not None or a.flag("now") or a.flag("sync"):
        if a.flag("sync"):
            dom.set_guest_time(sync=True)
        elif a.flag("now"):
            now = time.time_ns()
            dom.set_guest_time(now // 1_000_000_000, now % 1_000_000_000)
        else:
            assert when is not None
            if int(when) < 0:
                raise InvalidArgument(f"Invalid time: {when}")
            dom.set_guest_time(int(when))
        emit("\n")
        return 0
    seconds = dom.guest_time()["seconds"]
    if a.flag("pretty"):
        emit(f"Time: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seconds))}\n")
    else:
        emit(f"Time: {seconds}\n")
    return 0


def cmd_qemu_agent_command(opts: GlobalOptions, a: Parsed) -> int:
    import json

    timeout_text = a.opt("timeout")
    _exclusive(a, "timeout", "async")
    _exclusive(a, "timeout", "block")
    _exclusive(a, "async", "block")
    timeout = -1
    if timeout_text is not None:
        timeout = int(timeout_text)
        if timeout < 1:
            raise InvalidArgument("timeout must be positive")
    elif a.flag("async"):
        timeout = 0
    elif a.flag("block"):
        timeout = -2
    dom = _domain(opts.connect(), a.text("domain"))
    reply = dom.agent_command(" ".join(a.texts("cmd")), timeout=timeout)
    if reply and a.flag("pretty"):
        reply = json.dumps(json.loads(reply), indent=2)
    emit(f"{reply}\n\n" if reply else "\n")
    return 0


def cmd_dompmsuspend(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    target = a.text("target")
    if target not in ("mem", "disk", "hybrid"):
        raise InvalidArgument(f"Invalid target: {target}")
    duration = int(a.opt("duration") or 0)
    _guard(f"Domain '{dom.name}' could not be suspended", lambda: dom.pm_suspend(target, duration=duration))
    emit(f"Domain '{dom.name}' successfully suspended\n")
    return 0


def cmd_dompmwakeup(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    _guard(f"Domain '{dom.name}' could not be woken up", dom.pm_wakeup)
    emit(f"Domain '{dom.name}' successfully woken up\n")
    return 0

"""``pyvirt``: the entry point. Parses the global options, then hands the verb to its module.

Every verb and tool is declared in :mod:`pyvirt.cli.commands`; only the chosen verb's module is
imported, so ``pyvirt list`` pays for neither the image nor the guest libraries.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvirt.cli.commands import Command
    from pyvirt.client.api import Connection


class GlobalOptions:
    """The options before the verb, handed to every command (tools included)."""

    def __init__(self) -> None:
        self.uri: str | None = None
        self.readonly = False
        self.json = False

    def connect(self) -> Connection:
        from pyvirt.client.api import Connection

        return Connection.open(self.uri, readonly=self.readonly)


def _load(module: str) -> object:
    """Import a verb's module (``importlib.import_module`` without importing importlib)."""
    __import__(module)
    return sys.modules[module]


def fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    opts = GlobalOptions()
    while args and args[0].startswith("-"):
        arg = args.pop(0)
        if arg in ("-c", "--connect"):
            if not args:
                return fail("option '--connect' requires a URI")
            opts.uri = args.pop(0)
        elif arg.startswith("--connect="):
            opts.uri = arg.split("=", 1)[1]
        elif arg in ("-r", "--readonly"):
            opts.readonly = True
        elif arg == "--json":
            opts.json = True
        elif arg in ("-h", "--help"):
            return _help([])
        elif arg in ("-V", "--version"):
            from pyvirt import __version__

            sys.stdout.write(f"{__version__}\n")
            return 0
        else:
            from pyvirt.cli.args import suggest

            hint = suggest(arg, ["--connect", "--readonly", "--json", "--help", "--version"])
            return fail(f"unsupported option '{arg}'{hint}. See --help.")
    if not args:
        return _help([])
    from pyvirt.cli.commands import find

    verb, rest = args[0], args[1:]
    cmd = find(verb)
    if cmd is None:
        from pyvirt.cli.args import suggest
        from pyvirt.cli.commands import COMMANDS

        hint = suggest(verb, [c.name for c in COMMANDS if c.group is not None])
        return fail(f"unknown command: '{verb}'{hint}")
    sub = cmd.subcommand(rest[0]) if cmd.sub and rest else None
    if _wants_help(rest):
        return _help([cmd.name, sub.name] if sub else [cmd.name])
    refused = refuse_globals(opts, sub or cmd, f"{cmd.name} {sub.name}" if sub else cmd.name)
    if refused:
        return fail(refused)
    if opts.json and sub is not None and cmd.name == "img":
        rest = [rest[0], "--output=json", *rest[1:]]
    module, func = cmd.function()
    if cmd.style == "virsh":
        from pyvirt.cli.args import parse

        def run() -> int:
            verb_func: Callable[[GlobalOptions, object], int] = getattr(_load(module), func)
            return verb_func(opts, parse(cmd, rest))

        return run_guarded(run)
    tool: Callable[[list[str], GlobalOptions], int] = getattr(_load(module), func)
    return run_guarded(lambda: tool(rest, opts))


def _wants_help(rest: list[str]) -> bool:
    for arg in rest:
        if arg == "--":
            return False
        if arg in ("-h", "--help"):
            return True
    return False


def _help(words: list[str]) -> int:
    from pyvirt.cli.help import show

    return run_guarded(lambda: show(words))


def refuse_globals(opts: GlobalOptions, cmd: Command, name: str) -> str | None:
    """The error for a global option ``cmd`` cannot honour, or None."""
    allowed = cmd.globals
    if opts.uri is not None:
        if "l" in allowed:
            from pyvirt.uri import parse_uri

            if not parse_uri(opts.uri).is_local:
                return (
                    f"option --connect: '{name}' works on local files only, not on the host of '{opts.uri}'"
                )
        elif "c" not in allowed:
            return f"option --connect does not apply to '{name}': it connects to no daemon"
    if opts.readonly and "r" not in allowed:
        return f"option --readonly does not apply to '{name}': it changes things, or connects to no daemon"
    if opts.json and "j" not in allowed:
        return f"option --json does not apply to '{name}': it has no JSON output"
    return None


def run_guarded(call: Callable[[], int]) -> int:
    from pyvirt.errors import PyvirtError

    try:
        return call()
    except PyvirtError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def run() -> None:
    """The ``pyvirt`` command: :func:`main`, then exit without the interpreter's teardown when nothing
    is left for it to do (no ``atexit`` handler, no other thread): freeing every module and object of
    a process about to end is a fifth of a local ``dominfo``'s instructions (7.7 of 40 million, most
    of what the command adds to the bare interpreter's 21). Output is flushed first; should that fail
    (a closed pipe), the ordinary exit reports it as before."""
    code = main()
    import atexit

    threading = sys.modules.get("threading")
    if atexit._ncallbacks() or (threading is not None and threading.active_count() > 1):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    run()

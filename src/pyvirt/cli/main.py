"""``pyvirt``: the entry point. Parses the global options, then hands the verb to its module.

Only the chosen verb's module is imported (the table below names modules as strings), so
``pyvirt list`` pays for neither argparse trees of forty verbs nor the image or guest libraries.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyvirt.client.api import Connection

USAGE = """\
usage: pyvirt [-c URI] [-r] [--json] COMMAND [ARGS...]

Global options:
  -c, --connect URI   hypervisor connection URI (default: $PYVIRT_DEFAULT_URI, qemu:///system for root,
                      qemu:///session otherwise)
  -r, --readonly      connect read-only (queries only)
  -h, --help          this help, or `pyvirt help COMMAND`
  -V, --version       client version

Domain management:
  define FILE              define a persistent domain from an XML file
  undefine DOMAIN          undefine a domain [--remove-all-storage]
  create FILE              create and start a transient domain [--paused] [--console]
  dumpxml DOMAIN           domain XML [--inactive]
  edit DOMAIN              edit the domain XML in $EDITOR
  list                     list domains [--all] [--name] [--uuid] [--state-*] [--autostart] [--json]
  dominfo DOMAIN           domain information [--json]
  domstate DOMAIN          domain state [--reason]
  domid|domuuid|domname    convert between name, id and UUID
  start DOMAIN             start a domain [--paused] [--console]
  shutdown DOMAIN          ACPI power-button shutdown
  reboot DOMAIN            ACPI reboot
  reset DOMAIN             hard reset
  destroy DOMAIN           power off at once [--graceful]
  suspend|resume DOMAIN    pause or resume the vCPUs
  autostart DOMAIN         start with the daemon [--disable]
  console DOMAIN           attach to the serial console (Ctrl+] detaches) [--force] [--history]
  domblklist DOMAIN        block devices [--details]
  domiflist DOMAIN         network interfaces
  vncdisplay DOMAIN        the VNC display
  event                    print lifecycle events [--loop] [--timeout N]

Networks:
  net-list net-info net-define net-undefine net-create net-start net-destroy net-autostart
  net-dumpxml net-edit net-uuid net-name net-dhcp-leases domifaddr attach-interface
  detach-interface domif-setlink

Storage:
  pool-list pool-info pool-define pool-define-as pool-create pool-create-as pool-edit pool-build
  pool-start pool-destroy pool-autostart pool-refresh pool-dumpxml pool-undefine vol-list vol-info
  vol-create vol-create-as vol-create-from vol-clone vol-resize vol-wipe vol-delete vol-path
  vol-dumpxml vol-upload vol-download

Host:
  nodeinfo  capabilities  version  uri  hostname  host-validate

Tools:
  img ...                  disk images (qemu-img's verbs: create info check convert resize ...)
  sysprep | customize | mount | umount   offline guest tools
  template ... | clone ... templates and clones
"""

# verb → (module, function). Functions take (global options, argv) and return an exit status.
VERBS: dict[str, tuple[str, str]] = {
    **{
        verb: ("pyvirt.cli.domain", "cmd_" + verb.replace("-", "_"))
        for verb in (
            "define",
            "undefine",
            "create",
            "dumpxml",
            "edit",
            "list",
            "dominfo",
            "domstate",
            "domid",
            "domuuid",
            "domname",
            "start",
            "shutdown",
            "reboot",
            "reset",
            "destroy",
            "suspend",
            "resume",
            "autostart",
            "domblklist",
            "domiflist",
            "vncdisplay",
            "event",
        )
    },
    "console": ("pyvirt.cli.console", "cmd_console"),
    **{
        verb: ("pyvirt.cli.host", "cmd_" + verb.replace("-", "_"))
        for verb in ("nodeinfo", "capabilities", "version", "uri", "hostname", "host-validate")
    },
    **{
        verb: ("pyvirt.cli.network", "cmd_" + verb.replace("-", "_"))
        for verb in (
            "net-list",
            "net-info",
            "net-define",
            "net-undefine",
            "net-create",
            "net-start",
            "net-destroy",
            "net-autostart",
            "net-dumpxml",
            "net-edit",
            "net-uuid",
            "net-name",
            "net-dhcp-leases",
            "domifaddr",
            "attach-interface",
            "detach-interface",
            "domif-setlink",
        )
    },
    **{
        verb: ("pyvirt.cli.storage", "cmd_" + verb.replace("-", "_"))
        for verb in (
            "pool-list",
            "pool-info",
            "pool-define",
            "pool-define-as",
            "pool-create",
            "pool-create-as",
            "pool-edit",
            "pool-build",
            "pool-start",
            "pool-destroy",
            "pool-autostart",
            "pool-refresh",
            "pool-dumpxml",
            "pool-undefine",
            "vol-list",
            "vol-info",
            "vol-create",
            "vol-create-as",
            "vol-create-from",
            "vol-clone",
            "vol-resize",
            "vol-wipe",
            "vol-delete",
            "vol-path",
            "vol-dumpxml",
            "vol-upload",
            "vol-download",
        )
    },
}

# Tools with their own option syntax: they get argv after the verb and nothing else.
TOOLS: dict[str, tuple[str, str]] = {
    "img": ("pyvirt.cli.img", "main"),
    "sysprep": ("pyvirt.cli.guest", "sysprep_main"),
    "customize": ("pyvirt.cli.guest", "customize_main"),
    "mount": ("pyvirt.cli.guest", "mount_main"),
    "umount": ("pyvirt.cli.guest", "umount_main"),
    "template": ("pyvirt.cli.template", "main"),
    "clone": ("pyvirt.cli.template", "clone_main"),
    "proxy": ("pyvirt.cli.proxy", "main"),
    "pki": ("pyvirt.cli.pki", "main"),
}


class GlobalOptions:
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
            sys.stdout.write(USAGE)
            return 0
        elif arg in ("-V", "--version"):
            from pyvirt import __version__

            sys.stdout.write(f"{__version__}\n")
            return 0
        else:
            return fail(f"unsupported option '{arg}'. See --help.")
    if not args:
        sys.stdout.write(USAGE)
        return 0
    verb, rest = args[0], args[1:]
    if verb == "help":
        if rest and rest[0] in VERBS:
            return dispatch(VERBS[rest[0]], opts, ["--help"])
        sys.stdout.write(USAGE)
        return 0
    if verb in TOOLS:
        module, func = TOOLS[verb]
        tool: Callable[[list[str]], int] = getattr(_load(module), func)
        return run_guarded(lambda: tool(rest))
    if verb not in VERBS:
        return fail(f"unknown command: '{verb}'")
    return dispatch(VERBS[verb], opts, rest)


def dispatch(target: tuple[str, str], opts: GlobalOptions, rest: list[str]) -> int:
    module, func = target
    command: Callable[[GlobalOptions, list[str]], int] = getattr(_load(module), func)
    return run_guarded(lambda: command(opts, rest))


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


if __name__ == "__main__":
    sys.exit(main())

"""Host verbs: nodeinfo, capabilities, version, uri, hostname, host-validate."""

from __future__ import annotations

from pyvirt.cli.output import emit, emit_json, fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions


def cmd_nodeinfo(opts: GlobalOptions, a: Parsed) -> int:
    info = opts.connect().nodeinfo()
    if opts.json or a.get("json"):
        emit_json(info)
        return 0
    emit(
        fields(
            [
                ("CPU model:", info["model"]),
                ("CPU(s):", info["cpus"]),
                ("CPU frequency:", f"{info['mhz']} MHz"),
                ("CPU socket(s):", info["sockets"]),
                ("Core(s) per socket:", info["cores"]),
                ("Thread(s) per core:", info["threads"]),
                ("NUMA cell(s):", info["nodes"]),
                ("Memory size:", f"{info['memory_kib']} KiB"),
            ],
            width=20,
        )
        + "\n"
    )
    return 0


def cmd_capabilities(opts: GlobalOptions, a: Parsed) -> int:
    xml = opts.connect().capabilities()
    if opts.json or a.get("json"):
        emit_json({"xml": xml})
        return 0
    emit(xml)
    return 0


def _dotted(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def cmd_version(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt import __version__

    info = opts.connect().version()
    if opts.json or a.get("json"):
        emit_json({"client": __version__, **info})
        return 0
    text = (
        f"Compiled against library: pyvirt {__version__}\n"
        f"Using library: pyvirt {__version__}\n"
        f"Using API: QEMU {__version__}\n"
        f"Running hypervisor: QEMU {info['hypervisor_version']}\n"
    )
    if a.get("daemon"):
        text += f"Running against daemon: {info['pyvirt']}\n"
    emit(text + "\n")
    return 0


def cmd_uri(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.uri import default_uri, parse_uri

    uri = parse_uri(opts.uri or default_uri())
    opts.connect().close()  # like virsh: `uri` fails when the daemon cannot be reached
    if opts.json or a.get("json"):
        emit_json({"uri": uri.canonical()})
        return 0
    emit(uri.canonical() + "\n\n")
    return 0


def cmd_hostname(opts: GlobalOptions, a: Parsed) -> int:
    name = opts.connect().hostname()
    if opts.json or a.get("json"):
        emit_json({"hostname": name})
        return 0
    emit(name + "\n")
    return 0


def cmd_host_validate(opts: GlobalOptions, a: Parsed) -> int:
    checks = opts.connect().validate_host()
    if opts.json or a.get("json"):
        emit_json(checks)
        return 0
    failed = False
    for check in checks:
        status = check["status"]
        detail = f" ({check['detail']})" if check["detail"] and status != "PASS" else ""
        emit(f"{check['name']:<60}: {status}{detail}\n")
        failed = failed or status == "FAIL"
    return 1 if failed else 0

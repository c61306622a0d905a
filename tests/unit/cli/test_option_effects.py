"""Every option of every command of the table (pyvirt.cli.commands) is shown to take effect by a test,
or is listed below with what stands for that test. A new option without either fails here.

An option counts as shown when one function of a test module names both its command (the verb, or the
tool's sub-verb, as a word of a string) and the option (``--name``, or one of a tool option's
spellings; a positional needs only the command). That is a heuristic, so the list below also holds
the options whose test names them elsewhere, each with that test; an entry for an option the table no
longer has fails. (An entry whose option a new test shows is not an error, so that another area's new
test never breaks this one: ``python -m pytest tests/unit/cli/test_option_effects.py -k shown`` lists
them for removal.)
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from pyvirt.cli.commands import COMMANDS, Command

TESTS = Path(__file__).resolve().parents[2]

# Shown by a test that names the option away from its verb (the test is given), or not yet shown by
# any test although the code applies it (what applies it is said). Keys: "COMMAND OPTION" as in help.
# "img ..." options are pyvirt img's (qemu-img's flags), kept by the image library's owners.
EXPLAINED = {
    "define validate": "always on: the parser refuses any unknown element or attribute (test_bad_input)",
    "create validate": "always on, as define's",
    "net-define validate": "always on: the network parser is as strict",
    "net-create validate": "always on, as net-define's",
    "pool-define validate": "always on: the pool parser is as strict",
    "vol-create validate": "always on: the volume parser is as strict",
    "vol-create-from validate": "always on, as vol-create's",
    "dumpxml security-info": "tests/integration/daemon/test_api_routes.py (the query security_info)",
    "console history": "tests/integration/daemon/test_verbs.py::test_console_through_api_sees_history",
    "attach-interface live": "tests/integration/daemon/test_networks.py (the default on a running domain)",
    "attach-interface config": "tests/integration/daemon/test_flags_network.py (--persistent is live+config)",
    "attach-interface current": "hotplug._scope: refused with --persistent/--live/--config",
    "detach-interface live": "tests/integration/daemon/test_flags.py (--persistent: live+config)",
    "sysprep -v --verbose": "libguestfs debug output",
    "sysprep --append-line": "tests/integration/guest/test_customize.py (the customize step sysprep shares)",
    "sysprep --run-command": "tests/integration/guest/test_customize.py (the customize step sysprep shares)",
    "sysprep --install": "tests/integration/guest/test_customize.py (the customize step sysprep shares)",
    "sysprep --list-operations": "tests/integration/guest/test_sysprep.py",
    "customize --format": "tests/integration/guest/test_customize.py::test_json (its fixture)",
    "customize -v --verbose": "libguestfs debug output",
    "customize --root-password": "tests/integration/guest/test_sysprep.py (the step customize shares)",
    "customize --ssh-inject": "tests/integration/guest/test_sysprep.py (the step customize shares)",
    "customize --install": "tests/integration/guest/test_customize.py",
    "customize --network": "tests/integration/guest/test_customize.py (the install without network test)",
    "customize --no-network": "tests/integration/guest/test_customize.py",
    "customize --json": "tests/integration/guest/test_customize.py::test_json",
    "mount -v --verbose": "libguestfs debug output",
    "template build -v --verbose": "libguestfs debug output",
    "pki init --force": "tests/unit/test_pki.py::test_refusals (pki.init_ca(force=True))",
    "pki issue-client --readonly": "tests/unit/test_pki.py::test_readonly_client_and_out_dir",
    "pki issue-client --out": "tests/unit/test_pki.py::test_readonly_client_and_out_dir",
    "update-device force": "tests/integration/daemon/test_hotplug_disks.py (change-media --force, "
    "which is update-device --force, opens a tray the guest keeps locked)",
    "img check -U --force-share": "img: the image library's",
    "img convert -m": "img: the image library's",
    "img convert -U --force-share": "img: the image library's",
    "img resize -q": "img: the image library's",
    "img commit -q": "img: the image library's",
    "img rebase -q": "img: the image library's",
    "img rebase -U --force-share": "img: the image library's",
    "img snapshot -q": "img: the image library's",
    "img snapshot -U --force-share": "img: the image library's",
    "img map -U --force-share": "img: the image library's",
    "img compare -s": "img: the image library's",
    "img measure -U --force-share": "img: the image library's",
}


@cache
def module_functions() -> list[frozenset[str]]:
    """Per function of every test module: its strings and their words."""
    out = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                words: set[str] = set()
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        words.add(sub.value)
                        words.update(sub.value.split())
                out.append(frozenset(words))
    return out


def options() -> list[tuple[str, Command, str, str]]:
    """(key, command, option name, kind) of every option of the table, sub-verbs included."""
    out = []

    def walk(cmd: Command, path: str) -> None:
        out.extend((f"{path} {name}", cmd, name, kind) for name, kind, _help in cmd.options)
        for sub in cmd.sub:
            walk(sub, f"{path} {sub.name}")

    for cmd in COMMANDS:
        walk(cmd, cmd.name)
    return out


def shown(cmd: Command, name: str, kind: str) -> bool:
    spellings = [f"--{name}"] if cmd.style == "virsh" else [s for s in name.split() if s.startswith("-")]
    positional = not spellings or kind[:1] in "*?"
    for words in module_functions():
        if cmd.name not in words:
            continue
        if positional or any(s in words or any(w.startswith(s + "=") for w in words) for s in spellings):
            return True
    return False


def test_every_option_is_shown_or_explained() -> None:
    missing = [
        key for key, cmd, name, kind in options() if key not in EXPLAINED and not shown(cmd, name, kind)
    ]
    assert not missing, (
        "options no test shows taking effect (name the command and the option in one test function, "
        f"or list the option in EXPLAINED with the test that shows it): {missing}"
    )


def test_explained_but_shown(capsys: pytest.CaptureFixture[str]) -> None:
    """Lists (does not fail on) the entries of EXPLAINED a test now shows: they may be dropped."""
    table = {key: (cmd, name, kind) for key, cmd, name, kind in options()}
    with capsys.disabled():
        for key in EXPLAINED:
            if key in table and shown(*table[key]):
                print(f"\nshown by a test now, may leave EXPLAINED: {key}")


def test_the_explanations_are_current() -> None:
    table = {key: (cmd, name, kind) for key, cmd, name, kind in options()}
    stale = [key for key in EXPLAINED if key not in table]
    assert not stale, f"EXPLAINED names options the table does not have: {stale}"
    for key, why in EXPLAINED.items():
        if why.startswith("tests/"):
            path, _, func = why.split(" ", 1)[0].partition("::")
            assert (TESTS.parent / path).is_file(), f"{key}: {path} does not exist"
            assert not func or f"def {func}(" in (TESTS.parent / path).read_text(), (
                f"{key}: no {func} in {path}"
            )

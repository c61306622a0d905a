"""``pyvirt complete LINE WORD``: the candidates for the word under the cursor, one a line, for the
bash completion script (``contrib/bash-completion/pyvirt``). LINE is the command line up to the
cursor; WORD is the word bash is completing, which bash cuts at ``:`` and ``=`` (so a URI is
several of its words): the candidates are cut the same way.

Verbs, sub-verbs and options come from the command table; domain, network, pool and volume names
are asked from the daemon the command line names (its ``-c``), read-only. A file or directory
argument prints ``__files__`` or ``__dirs__``: the script lets bash complete the path. Nothing is
printed on an error (no daemon, say): completion stays quiet.
"""

from __future__ import annotations

import sys

from pyvirt.cli.commands import COMMANDS, GLOBAL_OPTIONS, GROUPS, Command, find
from pyvirt.cli.help import split_kind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

URIS = ["qemu:///system", "qemu:///session"]


def cmd_complete(opts: GlobalOptions, a: Parsed) -> int:
    try:
        words = split_line(a.text("line"))
        found = candidates(words, len(words) - 1, opts)
        cut = len(words[-1]) - len(a.text("word"))
        if found not in (["__files__"], ["__dirs__"]) and cut > 0 and words[-1].endswith(a.text("word")):
            found = [c[cut:] for c in found]
    except Exception:  # completion must never print an error into the command line
        found = []
    sys.stdout.write("".join(f"{c}\n" for c in found))
    return 0


def split_line(line: str) -> list[str]:
    """The shell words of a command line cut at the cursor, the last one the word being typed."""
    import shlex

    for closing in ("", '"', "'"):
        try:
            words = shlex.split(line + closing)
            break
        except ValueError:
            continue
    else:
        words = line.split()
    if not line or (line[-1] in " \t" and not line.endswith("\\ ")):
        words.append("")
    return words


def candidates(words: list[str], index: int, opts: GlobalOptions) -> list[str]:
    """What may stand at ``words[index]`` (``words[0]`` is the program)."""
    from pyvirt.cli.main import GlobalOptions

    cur = words[index] if index < len(words) else ""
    before = words[1:index]
    target = GlobalOptions()
    target.uri, target.readonly = opts.uri, True
    # The global options, then the verb.
    while before and before[0].startswith("-"):
        arg = before.pop(0)
        if arg in ("-c", "--connect"):
            if not before:
                return _prefixed(URIS, cur)
            target.uri = before.pop(0)
        elif arg.startswith("--connect="):
            target.uri = arg.split("=", 1)[1]
    if not before:
        if cur.startswith("--connect="):
            return _prefixed(["--connect=" + uri for uri in URIS], cur)
        if cur.startswith("-"):
            return _prefixed([s for o in GLOBAL_OPTIONS for s in o[0].split() if s.startswith("--")], cur)
        return _prefixed([c.name for c in COMMANDS if c.group is not None], cur)
    cmd = find(before.pop(0))
    if cmd is None:
        return []
    if cmd.name == "help":
        if not before:
            return _prefixed([c.name for c in COMMANDS if c.group is not None] + [k for k, _ in GROUPS], cur)
        parent = find(before[0])
        return _prefixed([s.name for s in parent.sub] if parent and len(before) == 1 else [], cur)
    if cmd.sub:
        if not before:
            return _prefixed([s.name for s in cmd.sub], cur)
        sub = cmd.subcommand(before.pop(0))
        if sub is None:
            return []
        cmd = sub
    return _arguments(cmd, before, cur, target)


def _arguments(cmd: Command, before: list[str], cur: str, target: GlobalOptions) -> list[str]:
    """Options, an option's value or a positional of ``cmd``, given the words already typed."""
    by_spelling: dict[str, tuple[str, str]] = {}
    positionals: list[tuple[str, str]] = []
    for name, kind, _help in cmd.options:
        mark = split_kind(kind)[0]
        if cmd.style == "virsh":
            by_spelling["--" + name] = (name, kind)
            if mark in ("*", "?"):
                positionals.append((name, kind))
        elif name.startswith("-"):
            for spelling in name.split():
                by_spelling[spelling] = (name, kind)
        else:
            positionals.append((name, kind))
    given: dict[str, str] = {}  # option name -> value ("" for flags)
    filled = 0
    words = list(before)
    while words:
        word = words.pop(0)
        spelling, eq, value = word.partition("=")
        option = by_spelling.get(spelling if word.startswith("--") else word)
        if option is not None:
            name, kind = option
            if split_kind(kind)[1] != "bool" and not eq:
                if not words:  # the word being completed is this option's value
                    return _values(split_kind(kind)[1], cur, given, target)
                value = words.pop(0)
            given[name] = value
        elif not word.startswith("-"):
            filled += 1
    if cur.startswith("-"):
        unused = [
            s
            for s, (name, kind) in by_spelling.items()
            if name not in given or split_kind(kind)[2] or split_kind(kind)[0] == "@"
        ]
        return _prefixed(sorted(s for s in unused if s.startswith("--") or cur == "-"), cur)
    open_positionals = [p for p in positionals if p[0] not in given]
    if filled < len(open_positionals):
        return _values(split_kind(open_positionals[filled][1])[1], cur, given, target)
    if positionals and split_kind(positionals[-1][1])[2]:
        return _values(split_kind(positionals[-1][1])[1], cur, given, target)
    return []


def _values(kind_type: str, cur: str, given: dict[str, str], target: GlobalOptions) -> list[str]:
    if kind_type in ("file", "path"):
        return ["__files__"]
    if kind_type == "dir":
        return ["__dirs__"]
    if kind_type == "uri":
        return _prefixed(URIS, cur)
    if kind_type not in ("domain", "network", "pool", "vol", "secret"):
        return []
    with target.connect() as conn:
        if kind_type == "secret":
            names = [s["uuid"] for s in conn.list_secrets()]
        elif kind_type == "domain":
            names = [d["name"] for d in conn.list_domains()]
        elif kind_type == "network":
            names = [n["name"] for n in conn.list_networks()]
        elif kind_type == "pool":
            names = [p["name"] for p in conn.list_pools()]
        else:
            pool = given.get("pool") or given.get("inputpool")
            pools = [pool] if pool else [p["name"] for p in conn.list_pools() if p["active"]]
            names = []
            for name in pools:
                vols = conn.pool(name).list_volumes()
                names += [v["name"] for v in vols] if pool else [v["path"] for v in vols]
    return _prefixed(sorted(names), cur)


def _prefixed(names: list[str], cur: str) -> list[str]:
    return [n for n in names if n.startswith(cur)]

"""``pyvirt img``: qemu-img's verbs, options, output and exit codes, on :mod:`pyvirt.image`.

The top-level CLI calls :func:`main` with the arguments after ``img``. Imports stay lazy so that
``pyvirt img info`` starts quickly.
"""

from __future__ import annotations

import sys

from pyvirt.errors import PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyvirt.cli.main import GlobalOptions

PROG = "pyvirt img"


class UsageError(PyvirtError):
    """Bad options or operands (a PyvirtError, so that verbs in other modules raise the one class
    ``main`` catches even when this module runs as ``__main__``)."""


HELP = "?help"  # the key ``_options`` gives "-o help"


def _option_help(fmt: str) -> int:
    from pyvirt.image.options import option_help

    sys.stdout.write(option_help(fmt))
    return 0


def _err(msg: str) -> None:
    sys.stderr.write(f"{PROG}: error: {msg}\n")


def _spec(verb: str) -> tuple[str, list[str]]:
    """The verb's getopt specification, from the command table."""
    from pyvirt.cli.args import getopt_spec
    from pyvirt.cli.commands import find

    img = find("img")
    assert img is not None
    cmd = img.subcommand(verb)
    assert cmd is not None
    return getopt_spec(cmd)


def _parse(argv: list[str], short: str, long: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """GNU getopt, options anywhere (the stdlib getopt imports gettext, slowing start-up)."""
    takes = {f"-{c}" for i, c in enumerate(short) if c != ":" and short[i + 1 : i + 2] == ":"}
    flags = {f"-{c}" for i, c in enumerate(short) if c != ":" and short[i + 1 : i + 2] != ":"}
    long_takes = {f"--{n[:-1]}" for n in long if n.endswith("=")}
    long_flags = {f"--{n}" for n in long if not n.endswith("=")}
    opts: list[tuple[str, str]] = []
    args: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            args.extend(argv[i:])
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name in long_takes:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"option '{name}' requires an argument")
                    val = argv[i]
                    i += 1
                opts.append((name, val))
            elif name in long_flags and not eq:
                opts.append((name, ""))
            else:
                from pyvirt.cli.args import suggest

                spellings = [f"--{n.rstrip('=')}" for n in long]
                raise UsageError(f"unrecognized option '{a}'{suggest(name, spellings)}")
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                o = f"-{a[j]}"
                if o in takes:
                    val = a[j + 1 :]
                    if not val:
                        if i >= len(argv):
                            raise UsageError(f"option requires an argument -- '{a[j]}'")
                        val = argv[i]
                        i += 1
                    opts.append((o, val))
                    break
                if o not in flags:
                    raise UsageError(f"invalid option -- '{a[j]}'")
                opts.append((o, ""))
                j += 1
        else:
            args.append(a)
    return opts, args


def _options(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part:
            continue
        if part == "help" or part == "?":
            out[HELP] = ""  # the verb prints its format's options and stops
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise UsageError(f"Invalid option list: {text}")
        out[k] = v
    return out


def _output_fmt(v: str) -> str:
    if v not in ("human", "json"):
        raise UsageError("--output must be used with human or json as argument.")
    return v


def _progress_printer(quiet: bool) -> Callable[[float], None]:
    state = {"last": -2.0}

    def show(pct: float) -> None:
        if quiet:
            return
        if pct - state["last"] >= 1.0 or (pct >= 100.0 and state["last"] < 100.0):
            state["last"] = pct
            sys.stdout.write(f"    ({pct:3.2f}/100%)\r")
            sys.stdout.flush()

    return show


def _progress_done(enabled: bool) -> None:
    if enabled:
        sys.stdout.write("    (100.00/100%)\r\n")
        sys.stdout.flush()


class _ProgressLine:
    """qemu's progress line for commit and rebase: ``    (12.34/100%)\r`` whenever the percentage
    moves by more than ``step`` (and at 0 and 100), ended by a newline."""

    def __init__(self, step: float) -> None:
        self.step, self.last, self.started = step, 0.0, False

    def __call__(self, pct: float) -> None:
        pct = min(pct, 100.0)
        if pct in (0.0, 100.0) or abs(pct - self.last) > self.step:
            self.last, self.started = pct, True
            sys.stdout.write(f"    ({pct:3.2f}/100%)\r")
            sys.stdout.flush()

    def end(self, ok: bool) -> None:
        """After success the line shows 100%; after an error (once begun) it is just ended."""
        if ok:
            self(100.0)
        if self.started:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _run_with_progress(bar: _ProgressLine | None, run: Callable[[], None]) -> None:
    try:
        run()
    except BaseException:
        if bar is not None:
            bar.end(False)
        raise
    if bar is not None:
        bar.end(True)


CACHE_MODES = ("none", "off", "writeback", "writethrough", "directsync", "unsafe")


def _check_cache(mode: str) -> None:
    if mode not in CACHE_MODES:
        raise UsageError(f"Invalid cache option: {mode}")


def _rate_limit(text: str) -> int:
    from pyvirt.image.sizes import parse_size

    return parse_size(text, what="rate limit")


# ---------------------------------------------------------------- verbs


def cmd_create(argv: list[str]) -> int:
    from pyvirt.image.create import create_image
    from pyvirt.image.sizes import parse_size

    opts, args = _parse(argv, *_spec("create"))
    fmt, backing, bfmt, unsafe, quiet, o = "raw", None, None, False, False, {}
    objects: list[str] = []
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k == "-b":
            backing = v
        elif k == "-F":
            bfmt = v
        elif k == "-u":
            unsafe = True
        elif k == "-q":
            quiet = True
        elif k == "-o":
            o.update(_options(v))
        elif k == "--object":
            objects.append(v)
    if HELP in o:
        return _option_help(fmt)
    if not args or len(args) > 2:
        raise UsageError("Expecting image file name")
    path = args[0]
    from pyvirt.image.create import CREATABLE

    if fmt not in CREATABLE:
        _err(f"{path}: Unknown file format '{fmt}'")
        return 1
    from pyvirt.errors import PyvirtError

    kw: dict[str, object] = {}
    if o:
        from pyvirt.image.options import parse_options

        try:
            kw = parse_options(o, fmt)
        except PyvirtError as err:
            _err(f"{path}: {err}")
            return 1
    if fmt not in ("qcow2", "vmdk"):
        for key, name in (("backing", "backing_file"), ("backing_fmt", "backing_fmt")):
            if key in kw:  # not among this format's creation options
                _err(f"{path}: Invalid parameter '{name}'")
                return 1
        if backing:
            _err(f"{path}: Backing file not supported for file format '{fmt}'")
            return 1
    backing = backing or kw.pop("backing", None)  # type: ignore[assignment]
    bfmt = bfmt or kw.pop("backing_fmt", None)  # type: ignore[assignment]
    kw.pop("backing", None)
    kw.pop("backing_fmt", None)
    size: int | None = parse_size(args[1]) if len(args) == 2 else kw.pop("size", None)  # type: ignore[assignment]
    kw.pop("size", None)
    secret_error: PyvirtError | None = None  # qemu-img finds it creating: after the Formatting line
    try:
        if fmt == "luks":
            kw = luks_options(kw, _secrets(objects))
        else:
            passphrase = _encrypt_key(kw, _secrets(objects))
            if passphrase is not None:
                kw["encrypt_passphrase"] = passphrase
    except PyvirtError as err:
        secret_error = err
    if backing and not bfmt:
        _err(f"{path}: Backing file specified without backing format")
        return 1
    if size is None and not backing:
        _err(f"{path}: Image creation needs a size parameter")
        return 1
    if size is None:
        from pyvirt.image.info import image_info
        from pyvirt.image.opener import resolve_backing

        assert backing is not None
        size = image_info(resolve_backing(path, backing, allow_outside=True), fmt=bfmt)["virtual-size"]
    if not quiet:
        if fmt in ("qcow2", "raw"):
            print(_formatting_line(path, fmt, size, backing, bfmt, o, kw))
        else:
            from pyvirt.image.options import formatting_line

            print(formatting_line(path, fmt, size, o, backing, bfmt))
        sys.stdout.flush()
    if secret_error is not None:
        _err(f"{path}: {secret_error}")
        return 1
    try:
        create_image(path, fmt, size, backing=backing, backing_fmt=bfmt, check_backing=not unsafe, **kw)  # type: ignore[arg-type]
    except PyvirtError as err:
        msg = str(err)
        _err(msg if msg.startswith(f"{path}:") else f"{path}: {msg}")
        return 1
    return 0


def _formatting_line(
    path: str,
    fmt: str,
    size: int | None,
    backing: str | None,
    bfmt: str | None,
    o: dict[str, str],
    kw: dict[str, object],
) -> str:
    parts = [f"Formatting '{path}', fmt={fmt}"]
    for name in (
        *("encrypt.format", "encrypt.key-secret", "encrypt.cipher-alg", "encrypt.cipher-mode"),
        *("encrypt.ivgen-alg", "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time"),
    ):
        if fmt == "qcow2" and name in o:
            parts.append(f"{name}={o[name]}")
    if fmt == "qcow2":
        parts.append(f"cluster_size={kw.get('cluster_size', 65536)}")
        parts.append(f"extended_l2={'on' if kw.get('extended_l2') else 'off'}")
        if "preallocation" in o:
            parts.append(f"preallocation={o['preallocation']}")
        parts.append(f"compression_type={o.get('compression_type', 'zlib')}")
        parts.append(f"size={size}")
        if "compat" in o:
            parts.append(f"compat={o['compat']}")
        if backing:
            parts.append(f"backing_file={backing}")
        if bfmt:
            parts.append(f"backing_fmt={bfmt}")
        for name in ("data_file", "data_file_raw"):
            if name in o:
                parts.append(f"{name}={o[name]}")
        parts.append(f"lazy_refcounts={'on' if kw.get('lazy_refcounts') else 'off'}")
        parts.append(f"refcount_bits={kw.get('refcount_bits', 16)}")
    else:
        parts.append(f"size={size}")
        if "preallocation" in o:
            parts.append(f"preallocation={o['preallocation']}")
    return " ".join(parts)


def cmd_info(argv: list[str]) -> int:
    from pyvirt.image.info import chain_list, image_info, info_human, info_json

    opts, args = _parse(argv, *_spec("info"))
    fmt, output, chain, image_opts = None, "human", False, False
    objects: list[str] = []
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k == "--output":
            output = _output_fmt(v)
        elif k == "--backing-chain":
            chain = True
        elif k == "--image-opts":
            image_opts = True
        elif k == "--object":
            objects.append(v)
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    _secrets(objects)  # checked as qemu-img checks them, though info reads no encrypted data
    shown = None
    if image_opts:  # info needs no key: an encrypt.key-secret is taken and not used
        if fmt is not None:
            raise UsageError("--image-opts and --format are mutually exclusive")
        sid = _keyvals(args[0]).get("encrypt.key-secret")
        names, fmt, _key = _image_opts(args, {}, need_secrets=False)
        args = names
        if sid is not None:  # qemu-img names such an image by its options, in this order
            import json

            shown = "json:" + json.dumps(
                {"encrypt.key-secret": sid, "driver": fmt, "file": {"driver": "file", "filename": names[0]}}
            )
    info = image_info(args[0], fmt=fmt, backing_chain=chain, allow_backing_outside=True)
    if shown is not None:
        info["filename"] = shown
    if output == "json":
        print(info_json(chain_list(info) if chain else info))
    else:
        items = chain_list(info)
        print("\n".join(info_human(i) for i in items), end="")
    return 0


def cmd_check(argv: list[str]) -> int:
    from pyvirt.image.checker import CheckFailed, NotCheckable, check_image, render_human, render_json

    opts, args = _parse(argv, *_spec("check"))
    fmt, output, repair, quiet, share = None, "human", None, False, False
    src_cache: str | None = None
    objects: list[str] = []
    image_opts = False
    for k, v in opts:
        if k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        elif k == "-T":
            if v not in CACHE_MODES:
                raise UsageError(f"Invalid source cache option: {v}")
            src_cache = v
        elif k == "-f":
            fmt = v
        elif k == "--output":
            output = _output_fmt(v)
        elif k in ("-r", "--repair"):
            if v not in ("leaks", "all"):
                raise UsageError("Unknown option value for -r (expecting 'leaks' or 'all'): " + v)
            repair = v
        elif k == "-q":
            quiet = True
        elif k in ("-U", "--force-share"):
            share = True
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts)
    try:
        from pyvirt.image.pagecache import bypasses

        res = check_image(
            path, fmt=fmt, repair=repair, force_share=share, passphrase=passphrase,
            bypass_cache=bypasses(src_cache),
        )  # fmt: skip
    except NotCheckable as err:
        _err(str(err))
        return 63
    except CheckFailed as err:
        for line in err.messages:
            sys.stderr.write(line + "\n")
        _err(str(err))
        return 1
    for line in res.messages:
        sys.stderr.write(line + "\n")
    if not quiet:
        if output == "json":
            print(render_json(res))
        else:
            sys.stdout.write(render_human(res))
    return res.exit_code


def cmd_convert(argv: list[str]) -> int:
    from pyvirt.image.converter import convert
    from pyvirt.image.sizes import parse_size

    opts, args = _parse(argv, *_spec("convert"))
    kw: dict[str, Any] = {}
    objects: list[str] = []
    image_opts = bitmaps = skip_broken = out_bypass = src_bypass = False
    out_fmt, progress, quiet, o = "raw", False, False, {}
    sparse = 4096
    for k, v in opts:
        if k == "-c":
            kw["compress"] = True
        elif k == "-p":
            progress = True
        elif k == "-q":
            quiet = True
        elif k == "-f":
            kw["src_fmt"] = v
        elif k == "-O":
            out_fmt = v
        elif k == "-o":
            o.update(_options(v))
        elif k == "-B":
            kw["backing"] = v
        elif k == "-F":
            kw["backing_fmt"] = v
        elif k == "-S":
            sparse = parse_size(v, what="buffer size for sparse output")
        elif k == "-m":
            kw["threads"] = int(v)
        elif k == "-n":
            kw["skip_create"] = True
        elif k == "--target-is-zero":
            kw["target_is_zero"] = True
        elif k in ("-U", "--force-share"):
            kw["force_share"] = True
        elif k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        elif k == "-t":
            _check_cache(v)
            kw["durable"] = v != "unsafe"  # qemu-img's convert default; every other mode flushes
            out_bypass = v in ("none", "directsync")
        elif k == "-T":
            if v not in CACHE_MODES:
                raise UsageError(f"Invalid source cache option: {v}")
            src_bypass = v in ("none", "directsync")
        elif k == "--bitmaps":
            bitmaps = True
        elif k == "-l":
            kw["snapshot"] = _snapshot_param(v)
        elif k == "--skip-broken-bitmaps":
            skip_broken = True
    if HELP in o:
        return _option_help(out_fmt)
    if len(args) < 2:
        raise UsageError("Must specify image file name")
    if skip_broken and not bitmaps:
        raise UsageError("Use of --skip-broken-bitmaps requires --bitmaps")
    sources, dst = args[:-1], args[-1]
    if bitmaps and len(sources) > 1:
        raise UsageError("Copying bitmaps only possible with single source")
    if image_opts:
        sources, kw["src_fmt"], kw["src_passphrase"] = _image_opts(sources, _secrets(objects))
    if out_fmt == "luks":
        sid = o.get("key-secret")
        if sid is None:
            raise UsageError("Parameter 'key-secret' is required for cipher")
        if sid not in (secrets := _secrets(objects)):
            raise UsageError(f"No secret with id '{sid}'")
        kw["dst_passphrase"] = secrets[sid]
    if any(k.startswith("encrypt.") for k in o):
        from pyvirt.image.options import parse_options

        enc = {k: v for k, v in o.items() if k.startswith("encrypt.")}
        kw["dst_passphrase"] = _encrypt_key(parse_options(enc, out_fmt), _secrets(objects))
        if kw.get("compress"):
            raise UsageError("Compression and encryption not supported at the same time")
    if kw.get("backing") and not kw.get("backing_fmt") and not kw.get("skip_create"):
        kw["backing_fmt"] = _probe_backing_fmt(dst, kw["backing"])
    if bitmaps:
        from pyvirt.image.opener import open_image
        from pyvirt.image.qcow2.bitmap_edit import check_copyable

        with open_image(
            sources[0], fmt=kw.get("src_fmt"), allow_backing_outside=True,
            force_share=kw.get("force_share", False), passphrase=kw.get("src_passphrase"),
        ) as src:  # fmt: skip
            check_copyable(src, out_fmt, o.get("compat"))
    show = progress and not quiet
    if show:
        sys.stdout.write("    (0.00/100%)\r")
    convert(
        sources[0] if len(sources) == 1 else sources,
        dst,
        out_fmt,
        options=o,
        sparse_size=sparse,
        allow_backing_outside=True,
        progress=_progress_printer(quiet) if show else None,
        bypass_cache=(src_bypass, out_bypass),
        **kw,
    )
    _progress_done(show)
    if bitmaps:
        _copy_bitmaps(sources[0], dst, kw, skip_broken)
    return 0


def _copy_bitmaps(src_path: str, dst: str, kw: dict[str, Any], skip_broken: bool) -> None:
    from pyvirt.image.opener import open_image
    from pyvirt.image.qcow2.bitmap_edit import copy_bitmaps
    from pyvirt.image.qcow2.image import Qcow2Image

    with (
        open_image(
            src_path, fmt=kw.get("src_fmt"), allow_backing_outside=True,
            force_share=kw.get("force_share", False), passphrase=kw.get("src_passphrase"),
        ) as src,
        open_image(
            dst, fmt="qcow2", readonly=False, allow_backing_outside=True, passphrase=kw.get("dst_passphrase")
        ) as out,
    ):  # fmt: skip
        assert isinstance(src, Qcow2Image) and isinstance(out, Qcow2Image)
        copy_bitmaps(src, out, skip_broken=skip_broken)


def _snapshot_param(text: str) -> tuple[str | None, str | None]:
    """``-l``: ``snapshot.id=ID,snapshot.name=NAME`` (either or both), or a plain id-or-name."""
    if not text.startswith("snapshot."):
        return text, text
    kv = _keyvals(text)
    ident, name = kv.pop("snapshot.id", None), kv.pop("snapshot.name", None)
    if kv:
        raise UsageError(f"Invalid parameter '{next(iter(kv))}'")
    return ident, name


def luks_options(kw: dict[str, object], secrets: dict[str, bytes]) -> dict[str, object]:
    """A luks container's parsed ``-o`` options with the passphrase of its ``key-secret``."""
    from pyvirt.image.options import luks_create_kwargs

    sid = kw.pop("key-secret", None)
    if sid is None:
        raise UsageError("Parameter 'key-secret' is required for cipher")
    if not isinstance(sid, str) or sid not in secrets:
        raise UsageError(f"No secret with id '{sid}'")
    return luks_create_kwargs(kw, secrets[sid])


def _encrypt_key(kw: dict[str, object], secrets: dict[str, bytes]) -> bytes | None:
    """Take ``encrypt.format``/``encrypt.key-secret`` out of parsed -o options: the passphrase."""
    fmt = kw.pop("encrypt_format", None)
    sid = kw.pop("encrypt_key_secret", None)
    if fmt is None:
        if sid is not None or any(
            k in kw for k in ("encrypt_iter_time", "encrypt_hash_alg", "encrypt_cipher")
        ):
            raise UsageError("encrypt.* options need encrypt.format=luks")
        return None
    if sid is None:
        raise UsageError("Parameter 'encrypt.key-secret' is required for cipher")
    if not isinstance(sid, str) or sid not in secrets:
        raise UsageError(f"No secret with id '{sid}'")
    return secrets[sid]


def _keyvals(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise UsageError(f"Invalid option list: {text}")
        out[k] = v
    return out


def _secrets(objects: list[str]) -> dict[str, bytes]:
    """qemu-img's ``--object secret,id=ID,data=...|file=...[,format=raw|base64]``: ID to bytes."""
    out: dict[str, bytes] = {}
    for text in objects:
        kind, _, rest = text.partition(",")
        if kind != "secret":
            raise UsageError(f"Invalid object type '{kind}' (pyvirt img takes secret objects)")
        kv = _keyvals(rest)
        sid = kv.pop("id", "")
        if not sid:
            raise UsageError("Parameter 'id' is missing")
        fmt = kv.pop("format", "raw")
        if ("data" in kv) == ("file" in kv):
            raise UsageError("Either 'data' or 'file' must be provided, but not both")
        if "data" in kv:
            value = kv.pop("data").encode()
        else:
            with open(kv.pop("file"), "rb") as f:
                value = f.read()
        if kv:
            raise UsageError(f"Invalid parameter '{next(iter(kv))}'")
        if fmt == "base64":
            import base64

            value = base64.b64decode(value)
        elif fmt != "raw":
            raise UsageError(f"Invalid parameter 'format': {fmt}")
        out[sid] = value
    return out


def _image_opts(
    specs: list[str], secrets: dict[str, bytes], *, need_secrets: bool = True
) -> tuple[list[str], str | None, bytes | None]:
    """``--image-opts`` sources: their file names, one format and one passphrase for them all."""
    names: list[str] = []
    fmts: set[str | None] = set()
    keys: set[bytes | None] = set()
    for spec in specs:
        kv = _keyvals(spec)
        name = kv.pop("file.filename", "")
        if not name:
            raise UsageError(f"Could not open '{spec}': A block device must be specified for \"file\"")
        driver = kv.pop("driver", None)
        fmts.add(driver)
        sid = kv.pop("key-secret" if driver == "luks" else "encrypt.key-secret", None)
        if not need_secrets:
            sid = None
        if sid is not None and sid not in secrets:
            raise UsageError(f"No secret with id '{sid}'")
        keys.add(secrets[sid] if sid is not None else None)
        if kv:
            raise UsageError(
                f"Invalid parameter '{next(iter(kv))}' "
                "(pyvirt img takes driver, file.filename, encrypt.key-secret; key-secret for luks)"
            )
        names.append(name)
    if len(fmts) > 1 or len(keys) > 1:
        raise UsageError("pyvirt img converts --image-opts sources of one driver and one secret only")
    return names, fmts.pop(), keys.pop()


def _one_image(
    path: str, fmt: str | None, objects: list[str], image_opts: bool
) -> tuple[str, str | None, bytes | None]:
    """(file name, format, LUKS passphrase) of a verb's one image: with ``--image-opts`` PATH is an
    option string whose ``encrypt.key-secret`` names one of the ``--object`` secrets (each checked)."""
    secrets = _secrets(objects)
    if not image_opts:
        return path, fmt, None
    if fmt is not None:
        raise UsageError("--image-opts and --format are mutually exclusive")
    names, fmt, passphrase = _image_opts([path], secrets)
    return names[0], fmt, passphrase


def _probe_backing_fmt(dst: str, backing: str) -> str:
    from pyvirt.image.opener import resolve_backing
    from pyvirt.image.probe import probe_file

    fmt = probe_file(resolve_backing(dst, backing, allow_outside=True))
    if fmt == "raw":
        raise UsageError("Backing file specified without backing format (-F); raw is never probed")
    return fmt


def cmd_resize(argv: list[str]) -> int:
    from pyvirt.image.api import resize

    # A leading "-1G" is a size, not an option: getopt must not see it.
    sizes = [a for a in argv if len(a) > 1 and a[0] == "-" and a[1].isdigit()]
    rest = [a for a in argv if a not in sizes]
    opts, args = _parse(rest, *_spec("resize"))
    fmt, shrink, quiet, prealloc = None, False, False, "off"
    objects: list[str] = []
    image_opts = False
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        elif k == "--shrink":
            shrink = True
        elif k == "-q":
            quiet = True
        elif k == "--preallocation":
            prealloc = v
    args += sizes
    if len(args) != 2:
        raise UsageError("Expecting image file name and size")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts)
    resize(path, args[1], fmt=fmt, shrink=shrink, preallocation=prealloc, passphrase=passphrase)
    if not quiet:
        print("Image resized.")
    return 0


def cmd_commit(argv: list[str]) -> int:
    from pyvirt.image.commit import commit

    opts, args = _parse(argv, *_spec("commit"))
    fmt, quiet, progress, drop = None, False, False, False
    base: str | None = None
    cache: str | None = None
    rate: int | None = None
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k == "-q":
            quiet = True
        elif k == "-p":
            progress = True
        elif k == "-d":
            drop = True
        elif k == "-b":
            base = v  # qemu-img: -b implies -d
        elif k == "-t":
            cache = v
        elif k == "-r":
            rate = _rate_limit(v)
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    if cache is not None:
        _check_cache(cache)
    from pyvirt.image.pagecache import bypasses

    bar = _ProgressLine(1.0) if progress and not quiet else None
    _run_with_progress(
        bar,
        lambda: commit(
            args[0],
            fmt=fmt,
            base=base,
            drop=drop,
            progress=bar,
            rate_limit=rate,
            bypass_cache=bypasses(cache),
        ),
    )
    if not quiet:
        print("Image committed.")
    return 0


def cmd_rebase(argv: list[str]) -> int:
    from pyvirt.image.rebase import rebase

    opts, args = _parse(argv, *_spec("rebase"))
    fmt, quiet, progress, unsafe, share = None, False, False, False, False
    backing: str | None = None
    bfmt: str | None = None
    caches: list[tuple[str, str]] = []
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k == "-q":
            quiet = True
        elif k == "-p":
            progress = True
        elif k == "-u":
            unsafe = True
        elif k == "-b":
            backing = v
        elif k == "-F":
            bfmt = v
        elif k in ("-t", "-T"):
            caches.append((k, v))
        elif k in ("-U", "--force-share"):
            share = True
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    if not unsafe and backing is None:
        raise UsageError("Must specify backing file (-b) or use unsafe mode (-u)")
    bar = _ProgressLine(2.0) if progress and not quiet else None

    def run() -> None:
        from pyvirt.image.pagecache import bypasses

        if bar is not None:
            bar(0.0)  # qemu-img starts the line before it checks or opens anything
        _check_caches(caches)
        modes = dict(caches)
        rebase(
            args[0], backing, bfmt, fmt=fmt, unsafe=unsafe, progress=bar, force_share=share,
            bypass_cache=(bypasses(modes.get("-T")), bypasses(modes.get("-t"))),
        )  # fmt: skip

    _run_with_progress(bar, run)
    return 0


def _check_caches(caches: list[tuple[str, str]]) -> None:
    for k, mode in caches:
        if mode not in CACHE_MODES:
            raise UsageError(f"Invalid {'source ' if k == '-T' else ''}cache option: {mode}")


def cmd_snapshot(argv: list[str]) -> int:
    from pyvirt.image.opener import open_image
    from pyvirt.image.qcow2 import snapshot as S
    from pyvirt.image.qcow2.image import Qcow2Image

    opts, args = _parse(argv, *_spec("snapshot"))
    fmt, action, name = None, "", ""
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k in ("-l", "-a", "-c", "-d"):
            if action:
                raise UsageError("Cannot mix snapshot actions")
            action, name = k, v
    if len(args) != 1 or not action:
        raise UsageError("Expecting one image file name and one of -l, -a, -c, -d")
    with open_image(args[0], fmt=fmt, readonly=action == "-l", backing=False) as img:
        if not isinstance(img, Qcow2Image):
            _err(f"Could not open '{args[0]}': snapshots need a qcow2 image")
            return 1
        if action == "-l":
            snaps = S.read_snapshots(img)
            if snaps:
                print("Snapshot list:")
                print("\n".join(S.snapshot_table_text([s.info() for s in snaps])))
        elif action == "-c":
            S.create_snapshot(img, name)
        elif action == "-a":
            try:
                S.apply_snapshot(img, name)
            except Exception as err:
                _err(f"Could not apply snapshot '{name}': {err}")
                return 1
        else:
            try:
                S.delete_snapshot(img, name)
            except Exception as err:
                msg = str(err)
                if msg.startswith("Could not find"):
                    msg = "snapshot not found"
                _err(f"Could not delete snapshot '{name}': {msg}")
                return 1
    return 0


def cmd_map(argv: list[str]) -> int:
    from pyvirt.image.ops import PartialMap, map_image
    from pyvirt.image.sizes import parse_size

    opts, args = _parse(argv, *_spec("map"))
    fmt, output, share = None, "human", False
    start, length = 0, None
    objects: list[str] = []
    image_opts = False
    for k, v in opts:
        if k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        elif k == "-f":
            fmt = v
        elif k == "--output":
            output = _output_fmt(v)
        elif k in ("-U", "--force-share"):
            share = True
        elif k == "--start-offset":
            start = parse_size(v, what="start offset")
        elif k == "--max-length":
            length = parse_size(v, what="max length")
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts)
    try:
        text = map_image(
            path,
            fmt=fmt,
            output=output,
            force_share=share,
            start=start,
            max_length=length,
            passphrase=passphrase,
        )
    except PartialMap as err:
        sys.stdout.write(err.text)
        sys.stdout.flush()
        _err(str(err))
        return 1
    sys.stdout.write(text)
    return 0


def cmd_compare(argv: list[str]) -> int:
    from pyvirt.image.ops import compare

    opts, args = _parse(argv, *_spec("compare"))
    f1 = f2 = None
    strict = quiet = share = progress = image_opts = False
    objects: list[str] = []
    for k, v in opts:
        if k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        elif k == "-p":
            progress = True
        elif k == "-f":
            f1 = v
        elif k == "-F":
            f2 = v
        elif k == "-s":
            strict = True
        elif k == "-q":
            quiet = True
        elif k in ("-U", "--force-share"):
            share = True
    if len(args) != 2:
        raise UsageError("Expecting two image file names")
    if image_opts and f2 is not None:
        raise UsageError("--image-opts and -F are mutually exclusive")
    path1, f1, key1 = _one_image(args[0], f1, objects, image_opts)
    path2, f2, key2 = _one_image(args[1], None if image_opts else f2, objects, image_opts)
    show = progress and not quiet
    if show:
        sys.stdout.write("    (0.00/100%)\r")
    code, msgs = compare(
        path1, path2, fmt1=f1, fmt2=f2 if f2 or image_opts else f1, strict=strict, force_share=share,
        progress=_progress_printer(quiet) if show else None, passphrases=(key1, key2),
    )  # fmt: skip
    if show and code == 0:  # a mismatch stops the walk where it is, as qemu-img's does
        sys.stdout.write("    (100.00/100%)\r")
    if not quiet:
        sys.stdout.write("".join(msgs) + ("\n" if show else ""))
    return code


def cmd_measure(argv: list[str]) -> int:
    from pyvirt.image.measure import measure, render
    from pyvirt.image.sizes import parse_size

    opts, args = _parse(argv, *_spec("measure"))
    fmt, out_fmt, output, o, size, share = None, "raw", "human", {}, None, False
    objects: list[str] = []
    image_opts = False
    for k, v in opts:
        if k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        if k == "-f":
            fmt = v
        elif k == "-O":
            out_fmt = v
        elif k == "-o":
            o.update(_options(v))
        elif k == "--output":
            output = _output_fmt(v)
        elif k == "--size":
            size = parse_size(v)
        elif k in ("-U", "--force-share"):
            share = True
    if HELP in o:
        return _option_help(out_fmt)
    if (size is None) == (len(args) != 1):
        raise UsageError("Either --size N or one filename must be specified.")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts) if args else (None, fmt, None)
    if any(k.startswith("encrypt.") for k in o):
        from pyvirt.image.options import parse_options

        enc = {k: v for k, v in o.items() if k.startswith("encrypt.")}
        _encrypt_key(parse_options(enc, out_fmt), _secrets(objects))  # the secret must exist
    if out_fmt == "luks":
        from pyvirt.image.options import parse_options

        luks_options(parse_options(o, out_fmt), _secrets(objects))  # key-secret named, the secret there
    res = measure(
        path, out_fmt=out_fmt, fmt=fmt, size=size, options=o, force_share=share, passphrase=passphrase
    )
    sys.stdout.write(render(res, output))
    return 0


def cmd_dd(argv: list[str]) -> int:
    from pyvirt.image.dd import dd
    from pyvirt.image.sizes import parse_size

    opts, args = _parse(argv, *_spec("dd"))
    kw: dict[str, Any] = {}
    objects: list[str] = []
    image_opts = False
    for k, v in opts:
        if k == "-f":
            kw["fmt"] = v
        elif k == "-O":
            kw["out_fmt"] = v
        elif k in ("-U", "--force-share"):
            kw["force_share"] = True
        elif k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
    operands: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or key not in ("bs", "count", "skip", "if", "of"):
            raise UsageError(f"unrecognized operand {key}")
        if key in operands and key in ("if", "of"):
            raise UsageError(f"Only one {key} may be specified")
        operands[key] = value
    if "if" not in operands or "of" not in operands:
        raise UsageError("Must specify both input and output files")
    for key in ("bs", "count", "skip"):
        if key in operands:
            try:
                kw[key] = parse_size(operands[key], what=key)
            except Exception:
                raise UsageError(
                    f"Invalid {key} specified. You may use k, M, G, T, P or E suffixes for "
                    "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."
                ) from None
    src, kw["fmt"], kw["passphrase"] = _one_image(operands["if"], kw.get("fmt"), objects, image_opts)
    warning = dd(src, operands["of"], **kw)
    if warning:
        sys.stderr.write(f"{PROG}: warning: {warning}\n")
    return 0


def cmd_bitmap(argv: list[str]) -> int:
    from pyvirt.errors import PyvirtError
    from pyvirt.image.opener import open_image
    from pyvirt.image.qcow2.bitmap_edit import BitmapEditor
    from pyvirt.image.qcow2.image import Qcow2Image
    from pyvirt.image.sizes import parse_size

    opts, args = _parse(argv, *_spec("bitmap"))
    actions: list[tuple[str, str]] = []
    fmt = src_file = src_fmt = None
    granularity: int | None = None
    objects: list[str] = []
    image_opts = False
    for k, v in opts:
        if k in ("--add", "--remove", "--clear", "--enable", "--disable", "--merge"):
            actions.append((k[2:], v))
        elif k == "-g":
            granularity = parse_size(v, what="granularity")
        elif k == "-b":
            src_file = v
        elif k == "-F":
            src_fmt = v
        elif k == "-f":
            fmt = v
        elif k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
    if not actions:
        raise UsageError("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge")
    if granularity is not None and not any(a == "add" for a, _ in actions):
        raise UsageError("granularity only supported with --add")
    if src_fmt is not None and src_file is None:
        raise UsageError("-F only supported with -b")
    if src_file is not None and not any(a == "merge" for a, _ in actions):
        raise UsageError("Merge bitmap source file only supported with --merge")
    if len(args) != 2:
        raise UsageError("Expecting filename and bitmap name")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts)
    name = args[1]
    with open_image(path, fmt=fmt, readonly=False, allow_backing_outside=True, passphrase=passphrase) as img:
        if not isinstance(img, Qcow2Image):
            _err(f"Operation {actions[0][0]} on bitmap {name} failed: Can't store persistent bitmaps to "
                 f"'{path}': Operation not supported")  # fmt: skip
            return 1
        editor = BitmapEditor(img)
        for action, value in actions:
            try:
                if action == "add":
                    editor.add(name, granularity)
                elif action == "remove":
                    editor.remove(name)
                elif action == "clear":
                    editor.clear(name)
                elif action in ("enable", "disable"):
                    editor.set_enabled(name, action == "enable")
                elif src_file is None:
                    editor.merge(name, None, value)
                else:
                    with open_image(src_file, fmt=src_fmt, allow_backing_outside=True) as source:
                        editor.merge(name, source, value)
            except PyvirtError as err:
                _err(f"Operation {action} on bitmap {name} failed: {err}")
                return 1
    return 0


def cmd_amend(argv: list[str]) -> int:
    from pyvirt.image.opener import open_image
    from pyvirt.image.qcow2 import amend
    from pyvirt.image.qcow2.image import Qcow2Image

    opts, args = _parse(argv, *_spec("amend"))
    fmt: str | None = None
    o: dict[str, str] = {}
    objects: list[str] = []
    image_opts = progress = quiet = False
    for k, v in opts:
        if k == "-f":
            fmt = v
        elif k == "-o":
            o.update(_options(v))
        elif k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
        elif k == "-p":
            progress = True
        elif k == "-q":
            quiet = True
    if not o:
        raise UsageError("Must specify options (-o)")
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    if HELP in o:
        return _option_help("qcow2")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts)
    bar = _ProgressLine(1.0) if progress and not quiet else None
    with open_image(path, fmt=fmt, readonly=False, allow_backing_outside=True, passphrase=passphrase) as img:
        if not isinstance(img, Qcow2Image):
            raise UsageError(f"Format driver '{img.format}' does not support option amendment")
        changes = amend.parse(o)
        if bar is not None:
            bar(0.0)
        _run_with_progress(bar, lambda: amend.amend(img, changes))
    return 0


def cmd_bench(argv: list[str]) -> int:
    from pyvirt.cli.img_bench import cmd_bench as bench

    return bench(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "create": cmd_create,
    "info": cmd_info,
    "check": cmd_check,
    "convert": cmd_convert,
    "resize": cmd_resize,
    "commit": cmd_commit,
    "rebase": cmd_rebase,
    "snapshot": cmd_snapshot,
    "map": cmd_map,
    "compare": cmd_compare,
    "measure": cmd_measure,
    "dd": cmd_dd,
    "bitmap": cmd_bitmap,
    "amend": cmd_amend,
    "bench": cmd_bench,
}


def main(argv: list[str], opts: GlobalOptions | None = None) -> int:
    """Run one ``pyvirt img`` verb; returns the exit status (qemu-img's).

    The global options reach here checked (:func:`pyvirt.cli.main.refuse_globals`): ``-c`` names
    this host, ``--json`` is already ``--output=json``, ``-r`` only with verbs that write nothing.
    """
    if not argv or argv[0] == "help":
        from pyvirt.cli.help import show

        return show(["img", *argv[1:2]]) if argv else show(["img"]) or 1
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        from pyvirt.cli.args import suggest

        _err(f"Command not found: {argv[0]}{suggest(argv[0], list(COMMANDS))}")
        return 1
    from pyvirt.errors import PyvirtError

    try:
        return cmd(argv[1:])
    except UsageError as err:
        _err(str(err))
        return 1
    except PyvirtError as err:
        _err(str(err))
        return 1
    except OSError as err:
        _err(f"{err.filename or ''}: {err.strerror}" if err.filename else str(err))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""qemu-img's ``-o`` creation options, as keyword arguments of :func:`pyvirt.image.api.create_image`.

A module of its own so that ``pyvirt img create`` does not load the converter (and its threads).
"""

from __future__ import annotations

from pyvirt.image.errors import ImageError
from pyvirt.image.sizes import parse_size

__all__ = ["formatting_line", "luks_create_kwargs", "option_help", "parse_options"]

#: Each format's creation options in qemu-img 7.2's order: name, kind, the default its
#: "Formatting ..." line shows (None: shown only when given). The file protocol's follow.
CREATE_OPTS: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "vmdk": (
        ("size", "size", None),
        ("adapter_type", "str", None),
        ("backing_file", "str", None),
        ("backing_fmt", "str", None),
        ("compat6", "bool", "off"),
        ("hwversion", "str", "undefined"),
        ("toolsversion", "str", None),
        ("subformat", "str", None),
        ("zeroed_grain", "bool", None),
    ),
    "vdi": (("size", "size", None), ("static", "bool", "off")),
    "vhdx": (
        ("size", "size", None),
        ("log_size", "size", "1048576"),
        ("block_size", "size", "0"),
        ("subformat", "str", None),
        ("block_state_zero", "bool", None),
    ),
    "vpc": (("size", "size", None), ("subformat", "str", None), ("force_size", "bool", None)),
    "luks": (
        ("size", "size", None),
        ("key-secret", "str", None),
        ("cipher-alg", "str", None),
        ("cipher-mode", "str", None),
        ("ivgen-alg", "str", None),
        ("ivgen-hash-alg", "str", None),
        ("hash-alg", "str", None),
        ("iter-time", "num", None),
    ),
}
PROTOCOL_OPTS = (("preallocation", "str", None), ("nocow", "bool", None), ("extent_size_hint", "size", None))


_CIPHER_KEYS = {
    "encrypt.cipher-alg": "alg",
    "encrypt.cipher-mode": "mode",
    "encrypt.ivgen-alg": "ivgen",
    "encrypt.ivgen-hash-alg": "ivgen_hash",
}


def parse_options(opts: dict[str, str], fmt: str = "qcow2") -> dict[str, object]:
    """qemu-img ``-o`` options to :func:`create_image` keyword arguments."""
    if fmt in CREATE_OPTS:
        return _parse_table(opts, fmt)
    out: dict[str, object] = {}
    cipher: dict[str, str] = {}
    for k, v in opts.items():
        if k == "cluster_size":
            out["cluster_size"] = parse_size(v, what="cluster size")
        elif k == "compat":
            out["compat"] = v
        elif k == "preallocation":
            out["preallocation"] = v
        elif k == "lazy_refcounts":
            out["lazy_refcounts"] = _onoff(k, v)
        elif k == "refcount_bits":
            out["refcount_bits"] = int(v)
        elif k in ("backing_file", "backing_fmt"):
            out["backing" if k == "backing_file" else "backing_fmt"] = v
        elif k == "size":
            out["size"] = parse_size(v)
        elif k == "compression_type":
            out["compression_type"] = v
        elif k == "data_file":
            out["data_file"] = v
        elif k == "data_file_raw":
            out["data_file_raw"] = _onoff(k, v)
        elif k == "extended_l2":
            out["extended_l2"] = _onoff(k, v)
        elif k == "encrypt.format":
            if v != "luks":
                raise ImageError(f"Option 'encrypt.format={v}' is not supported by pyvirt img (luks is)")
            out["encrypt_format"] = v
        elif k == "encrypt.key-secret":
            out["encrypt_key_secret"] = v
        elif k == "encrypt.iter-time":
            out["encrypt_iter_time"] = int(v)
        elif k == "encrypt.hash-alg":
            out["encrypt_hash_alg"] = cipher["hash_alg"] = v
        elif k in _CIPHER_KEYS:
            cipher[_CIPHER_KEYS[k]] = v
        elif k == "encryption" and v in ("off", "false"):
            continue
        elif k == "encryption" or k.startswith("encrypt."):
            raise ImageError(f"Option '{k}={v}' is not supported by pyvirt img")
        else:
            raise ImageError(f"Invalid parameter '{k}'")
    if cipher:
        from pyvirt.image.luks import CipherSpec, check_hash, check_names

        names = (
            cipher.get("alg", "aes-256"),
            cipher.get("mode", "xts"),
            cipher.get("ivgen", "plain64"),
            cipher.get("ivgen_hash"),
        )
        check_names(*names, cipher.get("hash_alg"))
        if "hash_alg" in cipher:
            check_hash(cipher.pop("hash_alg"))
        if cipher:
            out["encrypt_cipher"] = CipherSpec(*names)
    return out


def luks_create_kwargs(kw: dict[str, object], passphrase: bytes) -> dict[str, object]:
    """A luks container's parsed ``-o`` options (its ``key-secret`` taken out) as create_image's
    keyword arguments: the passphrase, the cipher, hash and PBKDF time."""
    from pyvirt.image.luks import CipherSpec, check_hash, check_names

    ivgen_hash = kw.pop("ivgen-hash-alg", None)
    hash_alg = kw.pop("hash-alg", None)
    names = (
        str(kw.pop("cipher-alg", "aes-256")),
        str(kw.pop("cipher-mode", "xts")),
        str(kw.pop("ivgen-alg", "plain64")),
        None if ivgen_hash is None else str(ivgen_hash),
    )
    check_names(*names, None if hash_alg is None else str(hash_alg))
    spec = CipherSpec(*names)
    out: dict[str, object] = {"encrypt_passphrase": passphrase, "encrypt_cipher": spec}
    if hash_alg is not None:
        check_hash(str(hash_alg))
        out["encrypt_hash_alg"] = hash_alg
    if "iter-time" in kw:
        out["encrypt_iter_time"] = kw.pop("iter-time")
    out.update(kw)
    return out


def _onoff(k: str, v: str) -> bool:
    if v in ("on", "yes", "true"):
        return True
    if v in ("off", "no", "false"):
        return False
    raise ImageError(f"Parameter '{k}' expects 'on' or 'off'")


def _parse_table(opts: dict[str, str], fmt: str) -> dict[str, object]:
    table = {name: kind for name, kind, _d in CREATE_OPTS[fmt] + PROTOCOL_OPTS}
    out: dict[str, object] = {}
    for k, v in opts.items():
        kind = table.get(k)
        if kind is None:
            raise ImageError(f"Invalid parameter '{k}'")
        if k in ("preallocation", "nocow", "extent_size_hint"):
            if (k, v) not in (("preallocation", "off"), ("nocow", "off"), ("nocow", "false")):
                raise ImageError(f"Option '{k}={v}' is not supported by pyvirt img for {fmt} images")
            continue
        if kind == "bool":
            out[k] = _onoff(k, v)
        elif kind == "size":
            out[k] = parse_size(v)
        elif k == "backing_file":
            out["backing"] = v
        elif kind == "num":
            try:
                out[k] = int(v)
            except ValueError:
                raise ImageError(f"Parameter '{k}' expects a number") from None
        else:
            out[k] = v
    return out


def formatting_line(
    path: str, fmt: str, size: int, opts: dict[str, str], backing: str | None, backing_fmt: str | None
) -> str:
    """qemu-img create's "Formatting ..." line for the formats of :data:`CREATE_OPTS`."""
    given = dict(opts)
    given["size"] = str(size)
    if backing:
        given["backing_file"] = backing
    if backing_fmt:
        given["backing_fmt"] = backing_fmt
    parts = [f"Formatting '{path}', fmt={fmt}"]
    for name, kind, default in CREATE_OPTS[fmt] + PROTOCOL_OPTS:
        v = given.get(name, default)
        if v is None:
            continue
        if kind == "size" and name in opts:
            v = str(parse_size(v))
        parts.append(f"{name}={v}")
    return " ".join(parts)


_SIZE_HELP = "Virtual disk size"
#: qemu-img's "-o help" lines (its words) for the options pyvirt takes, per format
_HELP: dict[str, tuple[tuple[str, str, str], ...]] = {
    "qcow2": (
        ("backing_file", "str", "File name of a base image"),
        ("backing_fmt", "str", "Image format of the base image"),
        ("cluster_size", "size", "qcow2 cluster size"),
        ("compat", "str", "Compatibility level (v2 [0.10] or v3 [1.1])"),
        ("compression_type", "str", "Compression method used for image cluster compression"),
        ("data_file", "str", "File name of an external data file"),
        ("data_file_raw", "bool (on/off)", "The external data file must stay valid as a raw image"),
        ("extended_l2", "bool (on/off)", "Extended L2 tables"),
        ("lazy_refcounts", "bool (on/off)", "Postpone refcount updates"),
        ("preallocation", "str", "Preallocation mode (allowed values: off, metadata, falloc, full)"),
        ("refcount_bits", "num", "Width of a reference count entry in bits"),
        ("size", "size", _SIZE_HELP),
    ),
    "raw": (
        ("preallocation", "str", "Preallocation mode (allowed values: off, falloc, full)"),
        ("size", "size", _SIZE_HELP),
    ),
    "vmdk": (
        (
            "adapter_type",
            "str",
            "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX",
        ),
        ("backing_file", "str", "File name of a base image"),
        ("backing_fmt", "str", "Must be 'vmdk' if present"),
        ("compat6", "bool (on/off)", "VMDK version 6 image"),
        ("hwversion", "str", "VMDK hardware version"),
        ("size", "size", _SIZE_HELP),
        (
            "subformat",
            "str",
            "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | "
            "twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} ",
        ),
        ("toolsversion", "str", "VMware guest tools version"),
        ("zeroed_grain", "bool (on/off)", "Enable efficient zero writes using the zeroed-grain GTE feature"),
    ),
    "vdi": (("size", "size", _SIZE_HELP), ("static", "bool (on/off)", "VDI static (pre-allocated) image")),
    "vpc": (
        (
            "force_size",
            "bool (on/off)",
            "Force disk size calculation to use the actual size specified, rather than using the "
            "nearest CHS-based calculation",
        ),
        ("size", "size", _SIZE_HELP),
        (
            "subformat",
            "str",
            "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ",
        ),
    ),
    "luks": (
        ("cipher-alg", "str", "Name of encryption cipher algorithm"),
        ("cipher-mode", "str", "Name of encryption cipher mode"),
        ("hash-alg", "str", "Name of encryption hash algorithm"),
        ("iter-time", "num", "Time to spend in PBKDF in milliseconds"),
        ("ivgen-alg", "str", "Name of IV generator algorithm"),
        ("ivgen-hash-alg", "str", "Name of IV generator hash algorithm"),
        ("key-secret", "str", "ID of the secret that provides the keyslot passphrase"),
        ("size", "size", _SIZE_HELP),
    ),
    "vhdx": (
        ("block_size", "size", "Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size."),
        (
            "block_state_zero",
            "bool (on/off)",
            "Force use of payload blocks of type 'ZERO'. Non-standard, but default.  Do not set to "
            "'off' when using 'qemu-img convert' with subformat=dynamic.",
        ),
        ("log_size", "size", "Log size; min 1MB."),
        ("size", "size", "Virtual disk size; max of 64TB."),
        (
            "subformat",
            "str",
            "VHDX format type, can be either 'dynamic' or 'fixed'. Default is 'dynamic'.",
        ),
    ),
}


def option_help(fmt: str) -> str:
    """``-o help`` as qemu-img prints it, for the options pyvirt img takes for ``fmt``."""
    if fmt not in _HELP:
        raise ImageError(f"Unknown file format '{fmt}'")
    lines = ["Supported options:"]
    for name, kind, text in _HELP[fmt]:
        lines.append(f"  {f'{name}=<{kind}>':<22} - {text}")
    return "\n".join(lines) + "\n"

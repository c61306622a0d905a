"""Names of domains, networks, templates, storage pools and volumes: the one name validator.

Three rule sets, picked by what is named. Networks and templates take object names (letters, digits
and ``_.+:-``, a letter or digit first, at most 200 characters, no ``..``): safe as file names and in
shells. Domains take what libvirt 9.0 takes (checked on its libvirtd: ``a=b,c``, ``a b``, ``x'y``,
``ünï``, ``.x``, ``-x``): anything but ``/`` and control characters (libvirt refuses only ``/`` and a
newline; a tab would also reach file names and tables), not ``.`` or ``..``, at most 200 bytes as
UTF-8 (libvirt's limit is its file names'). Everything that uses a domain's name takes it as it is:
file names under the daemon's folders, cgroup names, argv words, URL paths (quoted); QEMU's options
that embed the name or a path made of it escape ``,`` as ``,,``; no shell ever sees it. Storage pools
and volumes take file names, as in libvirt's directory pools (``disk 1.img`` is a fine volume): not
empty, no ``/``, no leading dot (hidden files are not volumes), no control characters, at most 255
bytes. Nothing here does I/O.
"""

from __future__ import annotations

import re

from pyvirt.errors import InvalidArgument

MAX_NAME_LENGTH = 200
MAX_FILE_NAME_BYTES = 255
FILE_NAMED = ("pool", "volume")
NAME_RULES = (
    "use letters, digits and '_.+:-' only, start with a letter or digit, "
    f"at most {MAX_NAME_LENGTH} characters, and no '..'"
)
DOMAIN_NAME_RULES = (
    "a domain name is not empty, '.' or '..', has no '/' and no control characters, "
    f"and is at most {MAX_NAME_LENGTH} bytes as UTF-8"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_name(name: str, what: str = "domain") -> str:
    """``name`` when it is a valid name of a ``what`` (domain, network, template, pool, volume).

    Raises :class:`InvalidArgument` saying what is wrong and what is allowed.
    """
    if what in FILE_NAMED:
        return _file_name(name, what)
    shown = f"{name[:40]}..." if len(name) > 60 else name
    if what == "domain":
        if not _domain_name_ok(name):
            raise InvalidArgument(f"invalid domain name {shown!r}: {DOMAIN_NAME_RULES}")
        return name
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument(f"invalid {what} name {shown!r}: {NAME_RULES}")
    return name


def _domain_name_ok(name: str) -> bool:
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no file can be named by it
        return False
    return (
        0 < size <= MAX_NAME_LENGTH
        and name not in (".", "..")
        and "/" not in name
        and not _CONTROL.search(name)
    )


def _file_name(name: str, what: str) -> str:
    if not name:
        raise InvalidArgument(f"{what} name must not be empty")
    if "/" in name:
        raise InvalidArgument(f"{what} name '{name}' cannot contain '/'")
    if name.startswith("."):
        raise InvalidArgument(f"{what} name '{name}' cannot start with '.'")
    if _CONTROL.search(name):
        raise InvalidArgument(f"{what} name {name!r} cannot contain control characters")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_FILE_NAME_BYTES:
        raise InvalidArgument(f"{what} name '{name[:40]}...' is longer than {MAX_FILE_NAME_BYTES} bytes")
    return name

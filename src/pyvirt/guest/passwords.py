"""Password selectors (virt-customize's ``password:X``, ``file:F``, ``random``...) and SHA-512 crypt.

The hash is glibc/libxcrypt's ``$6$`` scheme (Drepper's SHA-crypt), written out here because Python's
``crypt`` module is deprecated and leaves with 3.13. :func:`set_shadow_password` rewrites one user's
line of an ``/etc/shadow`` text.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import InvalidArgument

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The order in which SHA-crypt spreads the 64 digest bytes over the base-64 output.
_SHA512_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
)  # fmt: skip
DEFAULT_ROUNDS = 5000


def _repeat_to(block: bytes, length: int) -> bytes:
    return block * (length // len(block)) + block[: length % len(block)]


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def sha512_crypt(password: str, salt: str | None = None, rounds: int = DEFAULT_ROUNDS) -> str:
    """``crypt(3)`` with a ``$6$`` salt: the hash /etc/shadow holds on current Linux distributions."""
    if salt is None:
        salt = "".join(secrets.choice(_ITOA64) for _ in range(16))
    p = password.encode()
    s = salt.encode()[:16]
    rounds = max(1000, min(rounds, 999_999_999))
    sha = hashlib.sha512

    b = sha(p + s + p).digest()
    a = sha(p + s + _repeat_to(b, len(p)))
    n = len(p)
    while n:
        a.update(b if n & 1 else p)
        n >>= 1
    c = a.digest()
    p_seq = _repeat_to(sha(p * len(p)).digest(), len(p)) if p else b""
    s_seq = _repeat_to(sha(s * (16 + c[0])).digest(), len(s))
    for r in range(rounds):
        ctx = sha(p_seq if r & 1 else c)
        if r % 3:
            ctx.update(s_seq)
        if r % 7:
            ctx.update(p_seq)
        ctx.update(c if r & 1 else p_seq)
        c = ctx.digest()

    encoded = "".join(_b64_24(c[i], c[j], c[k], 4) for i, j, k in _SHA512_ORDER) + _b64_24(0, 0, c[63], 2)
    prefix = "$6$" if rounds == DEFAULT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{s.decode()}${encoded}"


@dataclass(frozen=True)
class PasswordSelector:
    """What to set a password to: a clear-text password, a random one, or disabled (``*``)."""

    kind: str  # "password", "random", "disabled", "locked"
    password: str = ""

    def resolve(self) -> str:
        """The clear-text password (a fresh one for ``random``); empty for disabled."""
        if self.kind == "random":
            alphabet = string.ascii_letters + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(16))
        return self.password


def parse_password_selector(text: str) -> PasswordSelector:
    """Parse a selector: ``password:X``, ``file:FILE``, ``random``, ``disabled``, ``locked:...``."""
    if text == "random":
        return PasswordSelector("random")
    if text == "disabled":
        return PasswordSelector("disabled")
    kind, sep, rest = text.partition(":")
    if sep and kind == "password":
        return PasswordSelector("password", rest)
    if sep and kind == "file":
        try:
            first = Path(rest).read_text().splitlines()
        except OSError as err:
            raise InvalidArgument(f"cannot read the password file {rest}: {err.strerror}") from err
        if not first or not first[0]:
            raise InvalidArgument(f"the password file {rest} is empty")
        return PasswordSelector("password", first[0])
    if sep and kind == "locked":
        inner = parse_password_selector(rest)
        return PasswordSelector("locked", inner.resolve() if inner.kind != "disabled" else "")
    raise InvalidArgument(
        f"invalid password selector {text!r}: use password:PASSWORD, file:FILENAME, random or disabled"
    )


def shadow_hash(selector: PasswordSelector, clear: str) -> str:
    """The second field of a shadow line for ``selector`` whose clear text is ``clear``."""
    if selector.kind == "disabled":
        return "*"
    hashed = sha512_crypt(clear)
    return "!" + hashed if selector.kind == "locked" else hashed


def set_shadow_password(shadow: str, user: str, hashed: str, today: int | None = None) -> str:
    """Return ``shadow`` with ``user``'s hash replaced and the last-change day set to today."""
    if today is None:
        today = int(time.time() // 86400)
    lines = shadow.splitlines()
    for index, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == user and len(fields) >= 3:
            fields[1] = hashed
            fields[2] = str(today)
            lines[index] = ":".join(fields)
            return "\n".join(lines) + "\n"
    raise InvalidArgument(f"user {user} has no entry in the guest's /etc/shadow")

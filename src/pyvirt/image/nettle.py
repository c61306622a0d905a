"""GNU Nettle (``libnettle.so.8``, Debian's libnettle8) through ctypes: the block ciphers the
``cryptography`` package lacks (Twofish, Serpent) and sector-at-a-time XTS, CBC and CTR for LUKS.

Only what LUKS needs is declared. A cipher is taken from Nettle's ``struct nettle_cipher`` table
(``nettle_twofish256`` ...): its context size and its C functions. Those function pointers are
handed to Nettle's generic ``xts_*_message``, ``cbc_*`` and ``ctr_crypt``, so each call runs a
whole sector (or, for ECB, a whole run) in C with no Python callback per block; ctypes lets go of
the GIL for the call. The library is loaded on first use, and a missing library or one older
than 3.5 (the first with XTS) is refused with the reason.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import CFUNCTYPE, Structure, c_char_p, c_size_t, c_uint, c_void_p
from functools import cache

from pyvirt.image.errors import UnsupportedImage

LIBRARY = "libnettle.so.8"
MIN_VERSION = (3, 5)
SECTOR = 512

_Func = Callable[..., None]
_SET_KEY = CFUNCTYPE(None, c_void_p, c_void_p)
_CIPHER_FUNC = CFUNCTYPE(None, c_void_p, c_size_t, c_void_p, c_void_p)


class _CipherMeta(Structure):
    """Nettle's ``struct nettle_cipher``."""

    _fields_ = [
        ("name", c_char_p),
        ("context_size", c_uint),
        ("block_size", c_uint),
        ("key_size", c_uint),
        ("set_encrypt_key", c_void_p),
        ("set_decrypt_key", c_void_p),
        ("encrypt", c_void_p),
        ("decrypt", c_void_p),
    ]


class Nettle:
    """The loaded library with the few functions declared."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError as err:
            raise UnsupportedImage(f"GNU Nettle is not available ({LIBRARY}: {err})") from err
        self.version = (int(lib.nettle_version_major()), int(lib.nettle_version_minor()))
        if self.version < MIN_VERSION:
            raise UnsupportedImage(
                f"GNU Nettle {self.version[0]}.{self.version[1]} is too old "
                f"({MIN_VERSION[0]}.{MIN_VERSION[1]} or later is needed, for XTS)"
            )
        self.lib = lib
        ptr, size = c_void_p, c_size_t
        self.xts_encrypt = self._declare("nettle_xts_encrypt_message", [ptr, ptr, ptr, ptr, size, ptr, ptr])
        self.xts_decrypt = self._declare(
            "nettle_xts_decrypt_message", [ptr, ptr, ptr, ptr, ptr, size, ptr, ptr]
        )
        self.cbc_encrypt = self._declare("nettle_cbc_encrypt", [ptr, ptr, size, ptr, size, ptr, ptr])
        self.ctr_crypt = self._declare("nettle_ctr_crypt", [ptr, ptr, size, ptr, size, ptr, ptr])

    def _declare(self, name: str, argtypes: list[type]) -> _Func:
        func = getattr(self.lib, name)
        func.argtypes, func.restype = argtypes, None
        return func  # type: ignore[no-any-return]

    def meta(self, name: str) -> _CipherMeta:
        """Nettle's table entry of cipher ``name`` (``aes256``, ``twofish128``, ``cast128`` ...)."""
        try:
            return _CipherMeta.in_dll(self.lib, f"nettle_{name}")
        except ValueError as err:
            raise UnsupportedImage(f"GNU Nettle has no cipher '{name}'") from err


@cache
def nettle() -> Nettle:
    """The library, loaded once (:class:`UnsupportedImage` saying why if it cannot be)."""
    return Nettle()


def available() -> bool:
    """Whether a usable Nettle is here."""
    try:
        nettle()
    except UnsupportedImage:
        return False
    return True


def _address(data: bytes) -> int:
    """Where the bytes of ``data`` lie (no copy: valid while the caller holds ``data``)."""
    return ctypes.cast(ctypes.c_char_p(data), c_void_p).value or 0


def _out(n: int) -> tuple[bytearray, ctypes.Array[ctypes.c_char], int]:
    out = bytearray(n)
    view = (ctypes.c_char * n).from_buffer(out)
    return out, view, ctypes.addressof(view)


class BlockCipher:
    """One of Nettle's block ciphers keyed for both directions; ``ecb`` runs whole blocks in one call,
    the ``*_sectors`` methods run each 512-byte sector from its own IV (one C call a sector)."""

    def __init__(self, name: str, key: bytes) -> None:
        lib = self.lib = nettle()
        meta = lib.meta(name)
        if len(key) != meta.key_size:
            raise UnsupportedImage(f"GNU Nettle's {name} takes a {meta.key_size}-byte key, not {len(key)}")
        self.name, self.block = name, int(meta.block_size)
        self._enc_ctx = ctypes.create_string_buffer(meta.context_size)
        self._dec_ctx = ctypes.create_string_buffer(meta.context_size)
        _SET_KEY(meta.set_encrypt_key)(self._enc_ctx, key)
        _SET_KEY(meta.set_decrypt_key)(self._dec_ctx, key)
        self.enc_ctx, self.dec_ctx = ctypes.addressof(self._enc_ctx), ctypes.addressof(self._dec_ctx)
        self.encf, self.decf = int(meta.encrypt), int(meta.decrypt)
        self._encrypt = _CIPHER_FUNC(meta.encrypt)
        self._decrypt = _CIPHER_FUNC(meta.decrypt)

    def ecb(self, data: bytes, *, decrypt: bool = False) -> bytes:
        """Whole blocks, each on its own."""
        n = len(data)
        out, view, dst = _out(n)
        (self._decrypt if decrypt else self._encrypt)(self.dec_ctx if decrypt else self.enc_ctx, n, dst, data)
        del view
        return bytes(out)

    def xts_sectors(self, tweak: BlockCipher, ivs: bytes, data: bytes, *, encrypt: bool) -> bytes:
        """XTS (IEEE P1619) over each sector, sector ``s``'s tweak ``ivs[16s:16s+16]`` (this cipher holds
        the data key, ``tweak`` the tweak key)."""
        lib, n = self.lib, len(data)
        data, ivs = bytes(data), bytes(ivs)
        src, iv = _address(data), _address(ivs)
        out, view, dst = _out(n)
        twk = tweak.enc_ctx
        if encrypt:
            f, ctx, encf = lib.xts_encrypt, self.enc_ctx, self.encf
            for at in range(0, n, SECTOR):
                f(ctx, twk, encf, iv, SECTOR, dst + at, src + at)
                iv += 16
        else:
            g, ctx, decf, twkf = lib.xts_decrypt, self.dec_ctx, self.decf, tweak.encf
            for at in range(0, n, SECTOR):
                g(ctx, twk, decf, twkf, iv, SECTOR, dst + at, src + at)
                iv += 16
        del view
        return bytes(out)

    def cbc_encrypt_sectors(self, ivs: bytes, data: bytes) -> bytes:
        """CBC encryption of each sector from its IV (Nettle updates the IV in place: a copy)."""
        return self._per_sector(self.lib.cbc_encrypt, ivs, data)

    def ctr_sectors(self, ivs: bytes, data: bytes) -> bytes:
        """CTR over each sector, its counter starting at the sector's IV read big-endian."""
        return self._per_sector(self.lib.ctr_crypt, ivs, data)

    def _per_sector(self, f: _Func, ivs: bytes, data: bytes) -> bytes:
        n, b = len(data), self.block
        data = bytes(data)
        src = _address(data)
        ivbuf = ctypes.create_string_buffer(ivs, len(ivs))  # a copy: Nettle moves each IV on in place
        iv = ctypes.addressof(ivbuf)
        out, view, dst = _out(n)
        ctx, encf = self.enc_ctx, self.encf
        for at in range(0, n, SECTOR):
            f(ctx, encf, b, iv, SECTOR, dst + at, src + at)
            iv += b
        del ivbuf, view
        return bytes(out)


__all__ = ["BlockCipher", "Nettle", "available", "nettle"]

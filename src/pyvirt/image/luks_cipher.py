"""LUKS sector encryption as QEMU does it, for every block cipher and mode qemu-img 7.2 takes
(aes, cast5, twofish, serpent in xts, cbc, ctr and ecb), over whole runs of 512-byte sectors.

QEMU encrypts each sector on its own: the IV generator gives the sector's IV, and the mode restarts
from it. Two engines run that, measured on whole runs (docs/BENCHMARKS.md):

- GNU Nettle (:mod:`pyvirt.image.nettle`), when it is here: XTS, CTR and CBC encryption one C call
  a sector (2-10x the other engine), ECB one call a run, and the only Twofish and Serpent.
- The ``cryptography`` package (AES, CAST5) with the modes built on the cipher's ECB over the whole
  run: the IVs of all sectors computed together, XTS's tweaks doubled lane-wise on one big integer
  (each sector's 128-bit tweak a lane), blocks moved between sectors with strided memoryview copies,
  XORs on big integers, CBC encryption block column by block column. It runs AES and CAST5 where
  Nettle is missing, and CBC decryption always (one OpenSSL CBC stream over the run, each
  sector's first block mended after: faster than a Nettle call a sector).
"""

from __future__ import annotations

import functools
import hashlib
import sys
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvirt.image.errors import ImageError, UnsupportedImage

if TYPE_CHECKING:
    from pyvirt.image.nettle import BlockCipher as NettleCipher

SECTOR = 512
#: a block cipher's name as LUKS and qemu-img write it -> (key bytes allowed, block bytes)
BLOCK_CIPHERS: dict[str, tuple[tuple[int, ...], int]] = {
    "aes": ((16, 24, 32), 16),
    "cast5": ((16,), 8),
    "twofish": ((16, 24, 32), 16),
    "serpent": ((16, 24, 32), 16),
}
#: ciphers only GNU Nettle runs here (cryptography and OpenSSL 3 have neither)
NETTLE_ONLY = ("twofish", "serpent")
MODES = ("xts", "cbc", "ctr", "ecb")
Ecb = Callable[[bytes], bytes]


def nettle_name(name: str, key: bytes) -> str:
    """Nettle's name of cipher ``name`` with ``key``: ``aes256``, ``twofish128``, ``cast128`` ..."""
    return "cast128" if name == "cast5" else f"{name}{len(key) * 8}"


def nettle_cipher(name: str, key: bytes) -> NettleCipher | None:
    """Nettle's ``name`` with ``key``; None where Nettle is missing and another engine runs the cipher
    (for Twofish and Serpent, the refusal saying why)."""
    from pyvirt.image import nettle

    try:
        return nettle.BlockCipher(nettle_name(name, key), key)
    except UnsupportedImage as err:
        if name in NETTLE_ONLY:
            raise UnsupportedImage(
                f"LUKS cipher '{name}-{len(key) * 8}' needs GNU Nettle {nettle.MIN_VERSION[0]}."
                f"{nettle.MIN_VERSION[1]} or later (Debian's libnettle8): {err}"
            ) from err
        return None


def block_cipher(name: str, key: bytes, *, decrypt: bool = False, cbc_iv: bytes | None = None) -> Ecb:
    """The ECB transform of ``name`` (``aes``, ``cast5``, ``twofish``, ``serpent``) with ``key``: bytes
    -> bytes, whole blocks (with ``cbc_iv``, a CBC stream from that IV instead: aes and cast5 only)."""
    if name in NETTLE_ONLY:
        assert cbc_iv is None
        nc = nettle_cipher(name, key)
        assert nc is not None
        return functools.partial(nc.ecb, decrypt=decrypt)
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    if name == "aes":
        from cryptography.hazmat.primitives.ciphers.algorithms import AES

        algorithm: object = AES(key)
    elif name == "cast5":
        try:
            from cryptography.hazmat.decrepit.ciphers.algorithms import CAST5
        except ImportError:  # cryptography < 43
            from cryptography.hazmat.primitives.ciphers.algorithms import CAST5  # type: ignore[attr-defined,no-redef]
        algorithm = CAST5(key)
    else:
        raise UnsupportedImage(f"LUKS cipher '{name}' is not supported by pyvirt img")
    c = Cipher(algorithm, modes.ECB() if cbc_iv is None else modes.CBC(cbc_iv))  # type: ignore[arg-type]
    ctx = c.decryptor() if decrypt else c.encryptor()
    return ctx.update


def xor(a: bytes, b: bytes) -> bytes:
    """``a ^ b`` byte by byte (equal lengths), on big integers: C speed without numpy."""
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")


def sector_numbers(first: int, count: int, width: int, *, plain32: bool = False) -> bytes:
    """``count`` little-endian sector numbers from ``first``, each in ``width`` bytes (zero-padded),
    as qemu's plain64 (``plain32``: plain, the number's low 32 bits) IV generators write them."""
    if plain32 and (first >> 32 or first + count > 1 << 32):
        numbers = array("Q", (s & 0xFFFFFFFF for s in range(first, first + count)))
    else:
        numbers = array("Q", range(first, first + count))
    if sys.byteorder == "big":
        numbers.byteswap()
    raw = numbers.tobytes()
    if width == 8:
        return raw
    out = bytearray(count * width)
    if width % 8 == 0:
        memoryview(out).cast("Q")[:: width // 8] = memoryview(raw).cast("Q")
        return bytes(out)
    raise ImageError(f"internal error: IV width {width}")


def scatter(dst: bytearray, lanes: bytes, block: int, index: int, stride: int) -> None:
    """Put lane ``s`` of ``lanes`` (``block`` bytes each) at ``dst[s * stride + index * block]``."""
    words = block // 8
    d = memoryview(dst).cast("Q")
    src = memoryview(lanes).cast("Q")
    step = stride // 8
    for w in range(words):
        d[index * words + w :: step] = src[w::words]


def gather(src: bytes | bytearray, block: int, index: int, stride: int) -> bytes:
    """The ``block``-byte piece at ``s * stride + index * block`` of every stride, concatenated."""
    words = block // 8
    s = memoryview(src).cast("Q")
    step = stride // 8
    count = len(src) // stride
    out = bytearray(count * block)
    o = memoryview(out).cast("Q")
    for w in range(words):
        o[w::words] = s[index * words + w :: step]
    return bytes(out)


class SectorCipher:
    """One LUKS cipher with its key: ``crypt(data, first_sector, encrypt)`` over whole sectors."""

    def __init__(
        self,
        name: str,
        mode: str,
        ivgen: str,
        ivgen_hash: str | None,
        key: bytes,
        block: int,
        *,
        per_sector: bool = True,
    ) -> None:
        """``per_sector=False`` builds every mode on the run's ECB even where Nettle is here (tests
        and benchmarks compare the two engines with it)."""
        self.name, self.mode, self.ivgen, self.block = name, mode, ivgen, block
        half = len(key) // 2 if mode == "xts" else len(key)
        data_key = self.data_key = key[:half]
        self.fast = nettle_cipher(name, data_key) if per_sector and mode != "ecb" else None
        self.fast_tweak = nettle_cipher(name, key[half:]) if mode == "xts" and self.fast else None
        self.enc = block_cipher(name, data_key)
        self.dec = block_cipher(name, data_key, decrypt=True)
        self.tweak = block_cipher(name, key[half:]) if mode == "xts" and not self.fast else None
        self.essiv: Ecb | None = None
        if ivgen == "essiv":
            assert ivgen_hash is not None
            self.essiv = block_cipher(name, hashlib.new(ivgen_hash, key).digest())

    def ivs(self, first: int, count: int) -> bytes:
        """The IVs of ``count`` sectors from ``first``, one block each."""
        ivs = sector_numbers(first, count, self.block, plain32=self.ivgen == "plain")
        return self.essiv(ivs) if self.essiv is not None else ivs

    def crypt(self, data: bytes, first: int, *, encrypt: bool) -> bytes:
        if len(data) % SECTOR:
            raise ImageError("internal error: LUKS data not a whole number of sectors")
        if not data:
            return b""
        if self.mode == "ecb":
            return self.enc(data) if encrypt else self.dec(data)
        count = len(data) // SECTOR
        ivs = self.ivs(first, count)
        fast = self.fast
        if fast is not None and (encrypt or self.mode != "cbc"):
            if self.mode == "xts":
                assert self.fast_tweak is not None
                return fast.xts_sectors(self.fast_tweak, ivs, data, encrypt=encrypt)
            if self.mode == "ctr":
                return fast.ctr_sectors(ivs, data)
            return fast.cbc_encrypt_sectors(ivs, data)
        if self.mode == "xts":
            n = len(data)
            tweaks = int.from_bytes(self._xts_tweaks(ivs, count), "big")
            inner = (int.from_bytes(data, "big") ^ tweaks).to_bytes(n, "big")
            outer = (self.enc if encrypt else self.dec)(inner)
            return (int.from_bytes(outer, "big") ^ tweaks).to_bytes(n, "big")
        if self.mode == "ctr":
            return xor(data, self.enc(self._counters(ivs, count)))
        return self._cbc_encrypt(data, ivs) if encrypt else self._cbc_decrypt(data, ivs)

    def _xts_tweaks(self, ivs: bytes, count: int) -> bytes:
        """Every block's XTS tweak, in the data's layout: sector ``s``'s block ``j`` gets
        E_k2(IV_s) times x^j in GF(2^128) (little-endian, reduced by 0x87, as QEMU's xts.c)."""
        assert self.tweak is not None
        lanes = self.tweak(ivs)
        n = len(lanes)
        t = int.from_bytes(lanes, "little")
        top = int.from_bytes((bytes(15) + b"\x80") * count, "little")
        out = bytearray(count * SECTOR)
        for j in range(SECTOR // 16):
            if j:
                hi = t & top
                t = ((t ^ hi) << 1) ^ ((hi >> 127) * 0x87)
            scatter(out, t.to_bytes(n, "little"), 16, j, SECTOR)
        return bytes(out)

    def _counters(self, ivs: bytes, count: int) -> bytes:
        """CTR's counter blocks: each sector's IV read big-endian, plus the block's index, wrapping
        within the block (nettle's ``ctr_crypt``). Lanes twice a block wide keep carries apart."""
        b = self.block
        wide = bytearray(count * 2 * b)
        scatter(wide, ivs, b, 1, 2 * b)  # the IV in each wide lane's low half (big-endian)
        base = int.from_bytes(wide, "big")
        ones = int.from_bytes((bytes(2 * b - 1) + b"\x01") * count, "big")
        out = bytearray(count * SECTOR)
        for j in range(SECTOR // b):
            lane = (base + j * ones).to_bytes(len(wide), "big") if j else bytes(wide)
            scatter(out, gather(lane, b, 1, 2 * b), b, j, SECTOR)
        return bytes(out)

    def _cbc_decrypt(self, data: bytes, ivs: bytes) -> bytes:
        """The run decrypted as one CBC stream (OpenSSL's speed), then each sector's first block
        mended: it was chained on the previous sector's last ciphertext block, not on its IV.
        (Twofish and Serpent: the run's ECB decryption XORed with the ciphertext one block on.)"""
        b = self.block
        if self.name in NETTLE_ONLY:
            chain = bytearray(ivs[:b] + data[:-b])
            scatter(chain, ivs, b, 0, SECTOR)
            return xor(self.dec(data), bytes(chain))
        plain = bytearray(block_cipher(self.name, self.data_key, decrypt=True, cbc_iv=ivs[:b])(data))
        chained = ivs[:b] + gather(data, b, SECTOR // b - 1, SECTOR)[:-b]
        firsts = gather(plain, b, 0, SECTOR)
        scatter(plain, xor(firsts, xor(chained, ivs)), b, 0, SECTOR)
        return bytes(plain)

    def _cbc_encrypt(self, data: bytes, ivs: bytes) -> bytes:
        """Block column by column: column ``j`` of every sector chained on column ``j - 1``."""
        b = self.block
        out = bytearray(len(data))
        chain = ivs
        for j in range(SECTOR // b):
            chain = self.enc(xor(gather(data, b, j, SECTOR), chain))
            scatter(out, chain, b, j, SECTOR)
        return bytes(out)

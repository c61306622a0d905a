"""LUKS version 1 headers, as qcow2 embeds them (``encrypt.format=luks``) and as a raw LUKS container
(qemu's ``luks`` driver) starts: parse, unlock, decrypt, create.

The header names the cipher (:class:`CipherSpec`: aes, twofish or serpent with 128, 192 or 256-bit
keys, or cast5-128, in xts, cbc, ctr or ecb mode with the plain, plain64 or essiv IV generator, run
by :mod:`pyvirt.image.luks_cipher`; qemu-img's default is aes-256 xts plain64), the hash (md5, sha1,
sha224, sha256, sha384, sha512 or ripemd160: PBKDF2 and the anti-forensic splitter use it) and
eight key slots. A slot is opened by deriving a key from the passphrase (PBKDF2), decrypting its
key material and merging its stripes (AF-merge); the master key is right if its PBKDF2 digest
matches the header's.
Sectors are 512 bytes; in qcow2 their IV is the sector's offset in the qcow2 file (QEMU's
"physical offset" for LUKS); in a raw container, their offset in the payload.
"""

from __future__ import annotations

import _thread
import hashlib
import hmac
import os
import struct
import time
import uuid

from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage

HEADER = struct.Struct(">6sH32s32s32sII20s32sI40s")
SLOT = struct.Struct(">II32sII")
MAGIC = b"LUKS\xba\xbe"
SLOT_ACTIVE = 0x00AC71F3
HEADER_SIZE = 592
MAX_STRIPES = 1 << 16
MAX_ITERATIONS = 1 << 28
#: qemu's QCryptoHashAlgorithm: hash-alg and ivgen-hash-alg take each
HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160")
CIPHER_ALGS = {
    "aes-128": 16,
    "aes-192": 24,
    "aes-256": 32,
    "cast5-128": 16,
    "serpent-128": 16,
    "serpent-192": 24,
    "serpent-256": 32,
    "twofish-128": 16,
    "twofish-192": 24,
    "twofish-256": 32,
}
#: qemu 7.2's QCryptoCipherAlgorithm as Debian builds it (no sm4): the rest LUKS refuses by name
QEMU_CIPHER_ALGS = (*CIPHER_ALGS, "des", "3des")
CIPHER_MODES = ("xts", "cbc", "ctr", "ecb")
IVGENS = ("plain", "plain64", "essiv")


def check_names(
    alg: str = "aes-256",
    mode: str = "xts",
    ivgen: str = "plain64",
    ivgen_hash: str | None = None,
    hash_alg: str | None = None,
) -> None:
    """qemu-img's refusal of a name outside its enumerations, in the order it parses the options."""
    for param, value, allowed in (
        ("cipher-alg", alg, QEMU_CIPHER_ALGS),
        ("cipher-mode", mode, CIPHER_MODES),
        ("ivgen-alg", ivgen, IVGENS),
        ("ivgen-hash-alg", ivgen_hash, HASHES),
        ("hash-alg", hash_alg, HASHES),
    ):
        if value is not None and value not in allowed:
            raise UnsupportedImage(f"Parameter '{param}' does not accept value '{value}'")


def check_hash(name: str) -> None:
    """A LUKS hash (PBKDF2 and the anti-forensic splitter use it) refused if unknown or absent here."""
    check_names(hash_alg=name)
    if name not in hashlib.algorithms_available:
        raise UnsupportedImage(f"Hash algorithm {name} not supported: this Python's OpenSSL lacks it")


_ESSIV_FAMILY = {"aes": "AES", "serpent": "Serpent", "twofish": "Twofish"}
STRIPES = 4000


class CipherSpec:
    """A LUKS cipher as qemu-img's ``cipher-alg``, ``cipher-mode``, ``ivgen-alg`` and ``ivgen-hash-alg``
    name it. What qemu-img 7.2 refuses is refused in its words (names outside its enumerations, des
    and 3des, cast5 in xts mode, essiv with a hash whose digest is no key size of the cipher); what
    it cannot open (192-bit keys outside xts: its key slots are not whole sectors, and it aborts) and
    an IV generator's hash it would ignore are refused in ours. ``source`` prefixes the words (the
    image a header was read from)."""

    def __init__(
        self,
        alg: str = "aes-256",
        mode: str = "xts",
        ivgen: str = "plain64",
        ivgen_hash: str | None = None,
        *,
        source: str = "",
    ) -> None:
        from pyvirt.image.luks_cipher import BLOCK_CIPHERS

        def refuse(words: str) -> UnsupportedImage:
            return UnsupportedImage(f"{source}: {words}" if source else words)

        try:
            check_names(alg, mode, ivgen, ivgen_hash)
        except UnsupportedImage as err:
            raise refuse(str(err)) from None
        if alg not in CIPHER_ALGS:
            raise refuse(f"Algorithm '{alg}' not supported")
        family = alg.split("-")[0]
        block = BLOCK_CIPHERS[family][1]
        if ivgen == "essiv":  # QEMU's words (block-luks.c): the digest is the key of the IVs' cipher
            ivgen_hash = ivgen_hash or "sha256"
            check_hash(ivgen_hash)
            digest = hashlib.new(ivgen_hash).digest_size
            if digest not in BLOCK_CIPHERS[family][0]:
                if family in _ESSIV_FAMILY:
                    raise refuse(f"No {_ESSIV_FAMILY[family]} cipher with key size {digest} available")
                raise refuse(f"Cipher {alg} not supported with essiv")
        elif ivgen_hash is not None:
            raise refuse(
                f"IV generator '{ivgen}' takes no hash ('{ivgen_hash}' given): pyvirt img refuses it"
            )
        if mode == "xts" and block != 16:
            raise refuse(f"Unsupported cipher mode {mode}")
        key_bytes = CIPHER_ALGS[alg] * (2 if mode == "xts" else 1)
        if key_bytes * STRIPES % 512:
            # QEMU 7.2 asserts that key material is whole sectors, and aborts (qemu-img create too)
            raise refuse(
                f"cipher algorithm '{alg}' is not supported in {mode} mode: QEMU cannot open "
                f"its LUKS key slots ({key_bytes} x {STRIPES} bytes are not whole sectors)"
            )
        self.alg, self.mode, self.ivgen, self.ivgen_hash = alg, mode, ivgen, ivgen_hash
        self.family, self.block = family, block
        self.key_bytes = key_bytes
        self._ciphers: dict[tuple[bytes, int], object] = {}

    @property
    def mode_string(self) -> str:
        """The header's cipher mode field: ``xts-plain64``, ``cbc-essiv:sha256`` ..."""
        ivgen = f"{self.ivgen}:{self.ivgen_hash}" if self.ivgen_hash else self.ivgen
        return f"{self.mode}-{ivgen}"

    def crypt(self, key: bytes, data: bytes, first_sector: int, *, encrypt: bool) -> bytes:
        """Whole 512-byte sectors numbered from ``first_sector``, each with its generated IV."""
        from pyvirt.image.luks_cipher import SectorCipher

        if len(key) != self.key_bytes:
            raise CorruptImage(f"LUKS master key of {len(key)} bytes for {self.alg}-{self.mode}")
        # One per thread (an OpenSSL context is not to be shared) and key (each key slot has one).
        ident = (key, _thread.get_ident())
        cipher = self._ciphers.get(ident)
        if cipher is None:
            if len(self._ciphers) > 8:
                self._ciphers.clear()
            cipher = self._ciphers[ident] = SectorCipher(
                self.family, self.mode, self.ivgen, self.ivgen_hash, key, self.block
            )
        assert isinstance(cipher, SectorCipher)
        return cipher.crypt(data, first_sector, encrypt=encrypt)


DEFAULT_CIPHER = CipherSpec()


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("ascii", "replace")


class LuksHeader:
    """A parsed LUKS1 header; ``base`` is where it lies in the file (key material is relative)."""

    def __init__(self, raw: bytes, base: int, length: int, source: str) -> None:
        if len(raw) < HEADER_SIZE:
            raise CorruptImage(f"{source}: the LUKS header is truncated")
        magic, version, cipher, mode, hash_spec, payload, key_bytes, digest, dsalt, diters, uuid = (
            HEADER.unpack_from(raw)
        )
        if magic != MAGIC or version != 1:
            raise CorruptImage(f"{source}: the LUKS header is not a LUKS version 1 header")
        self.source, self.base, self.length = source, base, length
        self.cipher, self.hash = _text(cipher), _text(hash_spec)
        self.mode_field = _text(mode)
        self.cipher_mode, _, ivgen = self.mode_field.partition("-")
        self.ivgen, _, self.ivgen_hash = ivgen.partition(":")
        self.payload_offset, self.key_bytes = payload * 512, key_bytes
        self.digest, self.digest_salt, self.digest_iters = digest, dsalt, diters
        self.uuid = _text(uuid)
        self.source_name = source
        self.slots = [SLOT.unpack_from(raw, 208 + 48 * i) for i in range(8)]

    def info(self) -> dict[str, object]:
        """qemu-img info's ``encrypt`` fields, in its order."""
        bits = self.key_bytes * 8 // (2 if self.cipher_mode == "xts" else 1)
        out: dict[str, object] = {
            "ivgen-alg": self.ivgen,
            "hash-alg": self.hash,
            "cipher-alg": f"{self.cipher}-{bits}",
            "uuid": self.uuid,
        }
        if self.ivgen_hash:
            out["ivgen-hash-alg"] = self.ivgen_hash
        out.update({"format": "luks", "cipher-mode": self.cipher_mode})
        slots: list[dict[str, object]] = []
        for active, iters, _salt, key_off, stripes in self.slots:
            if active == SLOT_ACTIVE:
                slots.append(
                    {"active": True, "iters": iters, "key-offset": key_off * 512, "stripes": stripes}
                )
            else:
                slots.append({"active": False, "key-offset": key_off * 512})
        out["slots"] = slots
        out["payload-offset"] = self.payload_offset
        out["master-key-iters"] = self.digest_iters
        return out

    def spec(self) -> CipherSpec:
        """The header's cipher, or its refusal in qemu-img's words when it opens such an image (an
        IV generator's hash is ignored but by essiv, as QEMU ignores it)."""

        def refuse(words: str) -> UnsupportedImage:
            return UnsupportedImage(f"Could not open '{self.source}': {words}")

        if not self.mode_field.count("-"):
            raise refuse(f"Unexpected cipher mode string format '{self.mode_field}'")
        if self.ivgen_hash and self.ivgen_hash not in HASHES:
            raise refuse(f"Hash algorithm '{self.ivgen_hash}' not supported")
        if self.cipher_mode not in CIPHER_MODES:
            raise refuse(f"Cipher mode '{self.cipher_mode}' not supported")
        per_key = self.key_bytes // (2 if self.cipher_mode == "xts" else 1)
        if f"{self.cipher}-{per_key * 8}" not in CIPHER_ALGS:
            raise refuse(f"Algorithm '{self.cipher}' with key size {per_key} bytes not supported")
        if self.hash not in HASHES:
            raise refuse(f"Hash algorithm '{self.hash}' not supported")
        if self.ivgen not in IVGENS:
            raise refuse(f"IV generator '{self.ivgen}' not supported")
        if self.ivgen == "essiv" and not self.ivgen_hash:
            raise refuse("Missing IV generator hash specification")
        try:
            check_hash(self.hash)
        except UnsupportedImage as err:
            raise refuse(str(err)) from None
        return CipherSpec(
            f"{self.cipher}-{per_key * 8}",
            self.cipher_mode,
            self.ivgen,
            self.ivgen_hash if self.ivgen == "essiv" else None,
            source=f"Could not open '{self.source}'",
        )

    def unlock(self, passphrase: bytes, read_at: object) -> bytes:
        """The master key, from the first active slot the passphrase opens.

        ``read_at(offset, length)`` reads the file (the key material lies within the header area).
        """
        spec = self.spec()
        assert callable(read_at)
        if self.digest_iters > MAX_ITERATIONS:
            raise CorruptImage(f"{self.source}: LUKS master key digest iterations out of range")
        for active, iters, salt, key_off, stripes in self.slots:
            if active != SLOT_ACTIVE:
                continue
            if not 0 < stripes <= MAX_STRIPES or iters > MAX_ITERATIONS:
                raise CorruptImage(f"{self.source}: LUKS key slot out of range")
            size = self.key_bytes * stripes
            start = key_off * 512
            if start + size > self.length:
                raise CorruptImage(f"{self.source}: LUKS key material lies outside the LUKS header")
            slot_key = hashlib.pbkdf2_hmac(self.hash, passphrase, salt, iters, self.key_bytes)
            material = read_at(self.base + start, -(-size // 512) * 512)
            assert isinstance(material, bytes | bytearray)
            split = spec.crypt(slot_key, bytes(material), 0, encrypt=False)[:size]
            master = af_merge(split, self.key_bytes, stripes, self.hash)
            check = hashlib.pbkdf2_hmac(self.hash, master, self.digest_salt, self.digest_iters, 20)
            if hmac.compare_digest(check, self.digest):
                return master
        raise ImageError(f"Could not open '{self.source}': Invalid password, cannot unlock any keyslot")


class _Diffuser:
    """LUKS's diffusion of ``n``-byte blocks with ``hash_name``: each digest-sized piece hashed
    behind its big-endian index. The pieces' hashes start from copies of hashes already fed their
    index (``hashlib.new`` a call cost more than the hashing), and blocks are XORed as integers:
    unlocking a key slot diffuses 4000 blocks (its stripes), which took a third of a second."""

    def __init__(self, n: int, hash_name: str) -> None:
        size = hashlib.new(hash_name).digest_size
        self.n = n
        self.pieces: list[tuple[int, int, hashlib._Hash]] = []
        for i in range(0, n, size):
            h = hashlib.new(hash_name)
            h.update(struct.pack(">I", i // size))
            self.pieces.append((i, min(size, n - i), h))

    def __call__(self, block: bytes) -> bytes:
        out = bytearray()
        for i, m, h in self.pieces:
            c = h.copy()
            c.update(block[i : i + m])
            out += c.digest()[:m]
        return bytes(out)

    def xor(self, a: bytes, b: bytes) -> bytes:
        return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(self.n, "little")


def af_merge(split: bytes, key_bytes: int, stripes: int, hash_name: str) -> bytes:
    """LUKS's anti-forensic merge of ``stripes`` blocks of ``key_bytes`` into the key."""
    diffuse = _Diffuser(key_bytes, hash_name)
    d = bytes(key_bytes)
    for i in range(stripes - 1):
        d = diffuse(diffuse.xor(d, split[i * key_bytes : (i + 1) * key_bytes]))
    return diffuse.xor(d, split[(stripes - 1) * key_bytes : stripes * key_bytes])


def decrypt_sectors(key: bytes, data: bytes, first_sector: int, spec: CipherSpec | None = None) -> bytes:
    """Whole 512-byte sectors, numbered from ``first_sector``, decrypted (by default aes-256-xts-plain64;
    the key's length picks aes-128 in xts mode, as the header's key size does)."""
    return _spec_for(key, spec).crypt(key, data, first_sector, encrypt=False)


def encrypt_sectors(key: bytes, data: bytes, first_sector: int, spec: CipherSpec | None = None) -> bytes:
    """The inverse of :func:`decrypt_sectors`."""
    return _spec_for(key, spec).crypt(key, data, first_sector, encrypt=True)


def _spec_for(key: bytes, spec: CipherSpec | None) -> CipherSpec:
    if spec is not None:
        return spec
    return DEFAULT_CIPHER if len(key) == 64 else CipherSpec("aes-128")


def af_split(key: bytes, stripes: int, hash_name: str) -> bytes:
    """LUKS's anti-forensic split: ``stripes - 1`` random blocks, the last one making the key."""
    n = len(key)
    diffuse = _Diffuser(n, hash_name)
    blocks = os.urandom(n * (stripes - 1))
    d = bytes(n)
    for i in range(stripes - 1):
        d = diffuse(diffuse.xor(d, blocks[i * n : (i + 1) * n]))
    return blocks + diffuse.xor(d, key)


KEY_BYTES = 64  # aes-256 in xts mode: two 256-bit keys
MIN_ITERS = 1000


def _iterations(hash_name: str, secret: bytes, out_len: int, iter_time_ms: int) -> int:
    """As QEMU: PBKDF2 iterations that take ``iter_time_ms`` here (counted on this CPU)."""
    n = 1 << 14
    while True:
        t = time.process_time()
        hashlib.pbkdf2_hmac(hash_name, secret, bytes(32), n, out_len)
        spent = time.process_time() - t
        if spent >= 0.05 or n >= 1 << 26:
            break
        n *= 4
    per_second = n / max(spent, 1e-6)
    return int(per_second * iter_time_ms / 1000)


def header_area_size(key_bytes: int = KEY_BYTES) -> int:
    """Bytes of the LUKS area :func:`create_header` makes: the header, then eight key slots."""
    return 4096 + 8 * -(-key_bytes * STRIPES // 4096) * 4096


def create_header(
    passphrase: bytes,
    *,
    iter_time_ms: int = 2000,
    hash_name: str = "sha256",
    spec: CipherSpec = DEFAULT_CIPHER,
) -> tuple[bytes, bytes]:
    """A new LUKS1 header area (header and eight key slots, slot 0 opened by ``passphrase``) for
    ``spec``, laid out as QEMU lays it out; returns (area, master key)."""
    check_hash(hash_name)
    key_bytes = spec.key_bytes
    master = os.urandom(key_bytes)
    material = -(-key_bytes * STRIPES // 4096) * 4096
    payload = header_area_size(key_bytes)
    mk_salt = os.urandom(32)
    mk_iters = max(MIN_ITERS, _iterations(hash_name, master, 20, iter_time_ms) // 8)
    digest = hashlib.pbkdf2_hmac(hash_name, master, mk_salt, mk_iters, 20)
    area = bytearray(payload)
    HEADER.pack_into(
        area,
        0,
        MAGIC,
        1,
        spec.alg.split("-")[0].encode(),
        spec.mode_string.encode(),
        hash_name.encode(),
        payload // 512,
        key_bytes,
        digest,
        mk_salt,
        mk_iters,
        str(uuid.uuid4()).encode(),
    )
    for i in range(8):
        key_off = (4096 + i * material) // 512
        if i:
            SLOT.pack_into(area, 208 + 48 * i, 0x0000DEAD, 0, bytes(32), key_off, STRIPES)
            continue
        salt = os.urandom(32)
        iters = max(MIN_ITERS, _iterations(hash_name, passphrase, key_bytes, iter_time_ms))
        slot_key = hashlib.pbkdf2_hmac(hash_name, passphrase, salt, iters, key_bytes)
        split = af_split(master, STRIPES, hash_name)
        padded = split + bytes(-len(split) % 512)
        area[key_off * 512 : key_off * 512 + len(padded)] = spec.crypt(slot_key, padded, 0, encrypt=True)
        SLOT.pack_into(area, 208 + 48 * i, SLOT_ACTIVE, iters, salt, key_off, STRIPES)
    return bytes(area), master

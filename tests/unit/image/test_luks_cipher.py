"""LUKS's sector ciphers: GNU Nettle's through ctypes against published vectors, its per-sector modes
against the modes built on the run's ECB (two engines, one answer), the names qemu-img refuses in
its words, and the hashes it takes running PBKDF2 and the anti-forensic split."""

from __future__ import annotations

import os

import pytest

from pyvirt.image import nettle
from pyvirt.image.errors import UnsupportedImage
from pyvirt.image.luks import CipherSpec, LuksHeader, check_names, create_header
from pyvirt.image.luks_cipher import SectorCipher

needs_nettle = pytest.mark.skipif(not nettle.available(), reason="GNU Nettle (libnettle8) is not installed")


@needs_nettle
@pytest.mark.parametrize(
    ("name", "key", "plain", "cipher"),
    [  # Twofish: its paper's appendix and Schneier's ecb_ival.txt; Serpent: the all-zero vector
        ("twofish128", "00" * 16, "00" * 16, "9f589f5cf6122c32b6bfec2f2ae8c35a"),
        ("twofish128", "bca724a54533c6987e14aa827952f921", "6b459286f3ffd28d49f15b1581b08e42",
         "5d9d4eeffa9151575524f115815a12e0"),
        ("twofish256", "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff", "00" * 16,
         "37527be0052334b89f0cfccae87cfa20"),
        ("serpent128", "00" * 16, "00" * 16, "3620b17ae6a993d09618b8768266bae9"),
    ],
)  # fmt: skip
def test_nettle_block_ciphers_match_published_vectors(name: str, key: str, plain: str, cipher: str) -> None:
    c = nettle.BlockCipher(name, bytes.fromhex(key))
    assert c.ecb(bytes.fromhex(plain)).hex() == cipher
    assert c.ecb(bytes.fromhex(cipher), decrypt=True).hex() == plain


@needs_nettle
@pytest.mark.parametrize(
    ("alg", "mode", "ivgen", "ivgen_hash"),
    [
        ("aes-256", "xts", "plain64", None),
        ("aes-192", "xts", "plain", None),
        ("aes-128", "cbc", "essiv", "sha256"),
        ("aes-256", "ctr", "essiv", "sha256"),
        ("cast5-128", "ctr", "essiv", "md5"),
        ("twofish-256", "xts", "plain64", None),
        ("twofish-128", "cbc", "plain64", None),
        ("serpent-128", "ctr", "essiv", "md5"),
        ("serpent-256", "cbc", "essiv", "sha256"),
    ],
)
def test_nettle_per_sector_modes_agree_with_the_modes_built_on_ecb(
    alg: str, mode: str, ivgen: str, ivgen_hash: str | None
) -> None:
    spec = CipherSpec(alg, mode, ivgen, ivgen_hash)
    key = os.urandom(spec.key_bytes)
    data = os.urandom(9 * 512)
    first = (1 << 32) - 4  # plain's 32-bit sector numbers wrap inside the run
    args = (spec.family, mode, ivgen, spec.ivgen_hash, key, spec.block)
    fast, ecb = SectorCipher(*args), SectorCipher(*args, per_sector=False)
    assert fast.fast is not None and ecb.fast is None
    sealed = fast.crypt(data, first, encrypt=True)
    assert sealed == ecb.crypt(data, first, encrypt=True) != data
    assert fast.crypt(sealed, first, encrypt=False) == ecb.crypt(sealed, first, encrypt=False) == data
    # each sector on its own, as QEMU runs it: the same as the run
    one = b"".join(
        fast.crypt(data[i : i + 512], first + i // 512, encrypt=True) for i in range(0, len(data), 512)
    )
    assert one == sealed


def test_without_nettle_aes_runs_and_twofish_is_refused_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> nettle.Nettle:
        raise UnsupportedImage("GNU Nettle is not available (libnettle.so.8: cannot open shared object file)")

    monkeypatch.setattr(nettle, "nettle", missing)
    key = os.urandom(64)
    aes = SectorCipher("aes", "xts", "plain64", None, key, 16)
    sealed = aes.crypt(bytes(1024), 3, encrypt=True)
    assert aes.fast is None and aes.crypt(sealed, 3, encrypt=False) == bytes(1024)
    words = r"LUKS cipher 'twofish-256' needs GNU Nettle 3\.5 or later.*cannot open"
    with pytest.raises(UnsupportedImage, match=words):
        CipherSpec("twofish-256").crypt(key, bytes(512), 0, encrypt=True)


@pytest.mark.parametrize(
    ("args", "words"),
    [  # qemu-img 7.2's words (Debian's build has no sm4), in the order it parses the options
        (("sm4", "cfb"), "Parameter 'cipher-alg' does not accept value 'sm4'"),
        (("3des", "cfb"), "Parameter 'cipher-mode' does not accept value 'cfb'"),
        (("aes-256", "xts", "foo"), "Parameter 'ivgen-alg' does not accept value 'foo'"),
        (("aes-256", "cbc", "essiv", "sm3"), "Parameter 'ivgen-hash-alg' does not accept value 'sm3'"),
        (("aes-256", "xts", "plain64", None, "sm3"), "Parameter 'hash-alg' does not accept value 'sm3'"),
    ],
)  # fmt: skip
def test_names_outside_qemus_enumerations(args: tuple[str, ...], words: str) -> None:
    with pytest.raises(UnsupportedImage) as err:
        check_names(*args)
    assert str(err.value) == words


@pytest.mark.parametrize("hash_alg", ["md5", "sha224", "sha384", "ripemd160"])
def test_header_with_each_hash_unlocks(hash_alg: str) -> None:
    spec = CipherSpec("aes-128", "cbc", "essiv", "md5")
    area, master = create_header(b"pass", iter_time_ms=1, hash_name=hash_alg, spec=spec)
    header = LuksHeader(area[:592], 0, len(area), "x.luks")
    assert header.hash == hash_alg and header.info()["ivgen-hash-alg"] == "md5"
    assert header.unlock(b"pass", lambda at, n: area[at : at + n]) == master


def test_a_nettle_older_than_3_5_is_refused_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class Old:
        def nettle_version_major(self) -> int:
            return 3

        def nettle_version_minor(self) -> int:
            return 4

    monkeypatch.setattr(nettle.ctypes, "CDLL", lambda name: Old())
    words = r"GNU Nettle 3\.4 is too old \(3\.5 or later is needed, for XTS\)"
    with pytest.raises(UnsupportedImage, match=words):
        nettle.Nettle()

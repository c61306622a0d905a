"""Raw LUKS containers (qemu's ``luks`` driver) made and read by :mod:`pyvirt.image.luks_raw` for every
cipher it takes, with qemu-img and qemu-io as the judges: what we write qemu reads, what qemu writes we
read; what qemu refuses is refused in its words, what it cannot open (192-bit keys outside xts) in
ours."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image.luks import CipherSpec
from pyvirt.image.luks_raw import LuksContainer, create_luks, read_header

from .conftest import pyvirt_img, qemu_img

PASSPHRASE = b"raw luks passphrase"
SECRET = "secret,id=s0,data=raw luks passphrase"
SIZE = 3 * (1 << 20) + 512  # not a whole MiB: the last sector counts


@pytest.mark.parametrize(
    ("alg", "mode", "ivgen", "ivgen_hash", "hash_alg"),
    [
        ("aes-256", "xts", "plain64", None, "sha256"),
        ("aes-128", "xts", "plain", None, "sha1"),
        ("aes-128", "cbc", "essiv", "sha256", "sha256"),
        ("aes-256", "cbc", "plain64", None, "sha512"),
        ("aes-192", "xts", "plain64", None, "sha256"),  # no XTS-AES-192 in OpenSSL: built on ECB
        ("aes-256", "ctr", "essiv", "sha256", "sha256"),  # counters from essiv IVs: carries wrap
        ("aes-128", "ecb", "plain64", None, "sha1"),
        ("cast5-128", "cbc", "essiv", "md5", "sha256"),  # a 64-bit block
        ("cast5-128", "ctr", "plain", None, "sha256"),
        # GNU Nettle's ciphers, and every hash qemu-img takes
        ("twofish-128", "xts", "plain64", None, "md5"),
        ("twofish-192", "xts", "plain", None, "sha224"),
        ("twofish-256", "cbc", "essiv", "sha256", "sha384"),
        ("twofish-256", "ctr", "plain64", None, "ripemd160"),
        ("twofish-256", "ecb", "plain64", None, "sha1"),
        ("serpent-256", "xts", "plain64", None, "sha512"),
        ("serpent-128", "cbc", "essiv", "md5", "ripemd160"),
        ("serpent-256", "ctr", "essiv", "sha256", "sha256"),
        ("serpent-128", "ecb", "plain64", None, "md5"),
    ],
)
def test_containers_qemu_reads_and_writes(
    tmp_path: Path, alg: str, mode: str, ivgen: str, ivgen_hash: str | None, hash_alg: str
) -> None:
    path = tmp_path / "c.luks"
    create_luks(
        str(path),
        SIZE,
        PASSPHRASE,
        spec=CipherSpec(alg, mode, ivgen, ivgen_hash),
        hash_alg=hash_alg,
        iter_time=10,
    )
    with LuksContainer(str(path), PASSPHRASE, readonly=False) as c:
        c.write(1000, b"PYVIRT" * 200)  # not sector-aligned: the edges read back
        c.write(SIZE - 4, b"END!")
    info = qemu_img("info", "--output", "json", str(path)).stdout
    assert (
        '"format": "luks"' in info and f'"cipher-alg": "{alg}"' in info and f'"cipher-mode": "{mode}"' in info
    )
    spec = f"driver=luks,file.filename={path},key-secret=s0"
    out = tmp_path / "plain.raw"
    qemu_img("convert", "--object", SECRET, "--image-opts", spec, "-O", "raw", str(out))
    data = out.read_bytes()
    assert len(data) == SIZE and data[1000:2200] == b"PYVIRT" * 200 and data[-4:] == b"END!"
    subprocess.run(
        ["qemu-io", "--object", SECRET, "--image-opts", "-c", "write -P 0x5a 4096 8192", spec],
        check=True, capture_output=True,
    )  # fmt: skip
    with LuksContainer(str(path), PASSPHRASE) as c:
        assert c.read(4096, 8192) == b"\x5a" * 8192 and c.read(1000, 6) == b"PYVIRT"
    with pytest.raises(ImageError, match="Invalid password"):
        LuksContainer(str(path), b"wrong")
    header = read_header(str(path))
    assert header is not None and header.payload_offset + SIZE == path.stat().st_size


def test_qemu_img_made_container_opens(tmp_path: Path) -> None:
    path = tmp_path / "q.luks"
    made = qemu_img(
        "create",
        "-q",
        "--object",
        SECRET,
        "-f",
        "luks",
        "-o",
        "key-secret=s0,iter-time=10,cipher-mode=cbc,ivgen-alg=essiv",
        str(path),
        "1M",
        check=False,
    )
    assert made.returncode == 0, made.stderr
    with LuksContainer(str(path), PASSPHRASE, readonly=False) as c:
        assert c.size == 1 << 20
        c.write(0, b"MBR!")
    out = tmp_path / "o.raw"
    qemu_img(
        "convert",
        "--object",
        SECRET,
        "--image-opts",
        f"driver=luks,file.filename={path},key-secret=s0",
        "-O",
        "raw",
        str(out),
    )
    assert out.read_bytes()[:4] == b"MBR!"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("aes-192", "cbc"), "'aes-192' is not supported in cbc mode: QEMU cannot open"),
        (("twofish-192", "ctr"), "'twofish-192' is not supported in ctr mode: QEMU cannot open"),
        (("serpent-192", "ecb"), "'serpent-192' is not supported in ecb mode: QEMU cannot open"),
        (("aes-256", "xts", "plain64", "sha256"), "takes no hash"),
    ],
)
def test_what_cannot_be_made_is_refused(args: tuple[str, ...], words: str) -> None:
    with pytest.raises(ImageError, match=words):
        CipherSpec(*args)


@pytest.mark.parametrize(
    "opts",
    [
        "cipher-alg=sm4",  # not in Debian's qemu 7.2 build
        "cipher-alg=des-rfb",
        "cipher-alg=3des",
        "cipher-alg=des",
        "cipher-mode=cfb",
        "cipher-alg=3des,cipher-mode=ofb",  # the mode's name is parsed before the algorithm is looked up
        "ivgen-alg=plain65",
        "hash-alg=sm3",
        "cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha1",
        "cipher-alg=twofish-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha384",
        "cipher-alg=serpent-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=ripemd160",
        "cipher-alg=cast5-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256",
        "cipher-alg=cast5-128,cipher-mode=xts",
    ],
)
@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_refusals_in_qemu_img_words(tmp_path: Path, opts: str, fmt: str) -> None:
    prefix = "" if fmt == "luks" else "encrypt."
    full = f"{prefix}key-secret=s0,{prefix}iter-time=10," + ",".join(prefix + o for o in opts.split(","))
    if fmt == "qcow2":
        full = "encrypt.format=luks," + full
    argv = ["create", "-q", "-f", fmt, "--object", SECRET, "-o", full, str(tmp_path / "x.img"), "1M"]
    mine = pyvirt_img(*argv)
    assert not (tmp_path / "x.img").exists()
    qemu = qemu_img(*argv, check=False)
    assert mine.returncode == qemu.returncode == 1, qemu.stderr
    assert mine.stderr.split("error: ")[-1] == qemu.stderr.split("qemu-img: ")[-1]


@pytest.mark.parametrize(
    ("field", "text"),
    [  # the header's cipher name (8), cipher mode string (40), hash (72)
        (8, b"sm4"),
        (8, b"des"),
        (40, b"cfb-plain64"),
        (40, b"xts-foo"),
        (40, b"xts-essiv:sha1"),
        (40, b"xts-essiv"),
        (40, b"xts-essiv:md4"),
        (40, b"xtsplain64"),
        (72, b"md4"),
    ],
)
def test_headers_qemu_cannot_open_refused_in_its_words(tmp_path: Path, field: int, text: bytes) -> None:
    path = tmp_path / "h.luks"
    create_luks(str(path), 1 << 20, PASSPHRASE, iter_time=10)
    data = bytearray(path.read_bytes())
    data[field : field + 32] = text.ljust(32, b"\0")
    path.write_bytes(bytes(data))
    argv = ["convert", "--object", SECRET, "--image-opts", f"driver=luks,file.filename={path},key-secret=s0"]
    mine = pyvirt_img(*argv, "-O", "raw", str(tmp_path / "o.raw"))
    qemu = qemu_img(*argv, "-O", "raw", str(tmp_path / "q.raw"), check=False)
    assert mine.returncode == qemu.returncode == 1
    assert mine.stderr.split("': ", 1)[-1] == qemu.stderr.split("': ", 1)[-1], qemu.stderr
    assert not (tmp_path / "o.raw").exists()


def test_img_create_info_convert_check_as_qemu_img(tmp_path: Path) -> None:
    """``pyvirt img`` with ``-f luks`` as qemu-img 7.2 has it: the Formatting line, info (no key needed),
    convert in and out with ``key-secret``, check's answers."""
    opts = (
        "key-secret=s0,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,iter-time=10"
    )
    ours, theirs = tmp_path / "ours.luks", tmp_path / "theirs.luks"
    made = pyvirt_img("create", "-f", "luks", "--object", SECRET, "-o", opts, str(ours), "1M")
    assert made.returncode == 0, made.stderr
    theirs_made = qemu_img("create", "-f", "luks", "--object", SECRET, "-o", opts, str(theirs), "1M")
    assert made.stdout == theirs_made.stdout.replace("theirs.luks", "ours.luks")
    for path in (ours, theirs):  # info: the same fields (the uuid and PBKDF counts are each image's)
        mine = pyvirt_img("info", str(path)).stdout.splitlines()
        qemu = qemu_img("info", str(path)).stdout.splitlines()
        assert [line.split(":")[0] for line in mine] == [line.split(":")[0] for line in qemu]
        assert [line for line in mine if "disk size" not in line] == [
            line for line in qemu if "disk size" not in line
        ]
    refused = pyvirt_img("create", "-f", "luks", str(tmp_path / "nokey.luks"), "1M")
    assert refused.returncode == 1 and "Parameter 'key-secret' is required for cipher" in refused.stderr

    data = tmp_path / "in.raw"
    data.write_bytes(bytes(range(256)) * 4096)
    into = tmp_path / "into.luks"
    done = pyvirt_img(
        "convert", "-O", "luks", "--object", SECRET, "-o", "key-secret=s0,iter-time=10", str(data), str(into)
    )
    assert done.returncode == 0, done.stderr
    back = tmp_path / "back.raw"
    qemu_img(
        "convert",
        "--object",
        SECRET,
        "--image-opts",
        f"driver=luks,file.filename={into},key-secret=s0",
        "-O",
        "raw",
        str(back),
    )
    assert back.read_bytes() == data.read_bytes()
    ours_back = tmp_path / "ours-back.raw"
    done = pyvirt_img(
        "convert",
        "--object",
        SECRET,
        "--image-opts",
        f"driver=luks,file.filename={into},key-secret=s0",
        "-O",
        "raw",
        str(ours_back),
    )
    assert done.returncode == 0, done.stderr
    assert ours_back.read_bytes() == data.read_bytes()

    for args in (
        (str(into),),
        ("--object", SECRET, "--image-opts", f"driver=luks,file.filename={into},key-secret=s0"),
    ):
        mine_check, qemu_check = pyvirt_img("check", *args), qemu_img("check", *args, check=False)
        assert mine_check.returncode == qemu_check.returncode, (mine_check.stderr, qemu_check.stderr)
        assert mine_check.stderr.split("error: ")[-1] == qemu_check.stderr.split("qemu-img: ")[-1]


def test_qcow2_encrypt_cipher_options_as_qemu_img(tmp_path: Path) -> None:
    """qcow2's ``encrypt.cipher-alg``/``-mode``/``ivgen-alg``/``ivgen-hash-alg`` taken as qemu-img takes
    them: the same Formatting line and info; qemu writes into ours, we read it."""
    opts = (
        "encrypt.format=luks,encrypt.key-secret=s0,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,"
        "encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1,encrypt.iter-time=10"
    )
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    made = pyvirt_img("create", "-f", "qcow2", "--object", SECRET, "-o", opts, str(ours), "1M")
    assert made.returncode == 0, made.stderr
    theirs_made = qemu_img("create", "-f", "qcow2", "--object", SECRET, "-o", opts, str(theirs), "1M")
    assert made.stdout == theirs_made.stdout.replace("theirs.qcow2", "ours.qcow2")
    mine = [line for line in pyvirt_img("info", str(ours)).stdout.splitlines() if "uuid" not in line]
    qemu = [line for line in qemu_img("info", str(ours)).stdout.splitlines() if "uuid" not in line]
    assert mine == qemu
    spec = f"driver=qcow2,file.filename={ours},encrypt.key-secret=s0"
    subprocess.run(
        ["qemu-io", "--object", SECRET, "--image-opts", "-c", "write -P 0x41 512 4096", spec],
        check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "out.raw"
    done = pyvirt_img("convert", "--object", SECRET, "--image-opts", spec, "-O", "raw", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[512:4608] == b"A" * 4096 and not out.read_bytes()[:512].strip(b"\0")
    refused = pyvirt_img(
        "create", "-f", "qcow2", "-o", "encrypt.cipher-alg=aes-128", str(tmp_path / "x"), "1M"
    )
    assert refused.returncode == 1 and "need encrypt.format=luks" in refused.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("-f", "luks", "IMG", "1M"),  # no key-secret: the Formatting line first, as qemu-img
        ("-f", "luks", "--object", SECRET, "-o", "key-secret=nope", "IMG", "1M"),
        ("-f", "qcow2", "-o", "encrypt.format=luks", "IMG", "1M"),
        ("-f", "qcow2", "--object", SECRET, "-o", "encrypt.format=luks,encrypt.key-secret=nope", "IMG", "1M"),
        ("-f", "luks", "-o", "key-secret=s0", "IMG"),  # no size: refused before the Formatting line
        ("-f", "luks", "-b", "base", "-F", "raw", "IMG", "1M"),
        ("-f", "raw", "-b", "base", "IMG"),
        ("-f", "vpc", "-o", "backing_fmt=raw", "IMG", "1M"),
        ("-f", "raw", "-o", "backing_file=base,backing_fmt=raw", "IMG", "1M"),
    ],
)
def test_create_refusals_in_qemu_img_order(tmp_path: Path, args: tuple[str, ...]) -> None:
    """What ``img create`` prints before refusing (the Formatting line or not) and its error, as qemu-img."""
    argv = [str(tmp_path / "x.img") if a == "IMG" else a for a in args]
    mine, qemu = pyvirt_img("create", *argv), qemu_img("create", *argv, check=False)
    assert (mine.returncode, mine.stdout) == (qemu.returncode, qemu.stdout) and qemu.returncode == 1
    assert mine.stderr.split("error: ")[-1] == qemu.stderr.split("qemu-img: ")[-1]
    assert not (tmp_path / "x.img").exists()


@pytest.mark.parametrize(
    "cipher",
    [
        "cipher-alg=aes-192,cipher-mode=xts",
        "cipher-alg=aes-256,cipher-mode=ctr,ivgen-alg=essiv",
        "cipher-alg=aes-256,cipher-mode=ecb",
        "cipher-alg=cast5-128,cipher-mode=cbc,ivgen-alg=plain",
        "cipher-alg=twofish-256,cipher-mode=xts,hash-alg=ripemd160",
        "cipher-alg=serpent-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=md5,hash-alg=sha384",
    ],
)
def test_qcow2_new_ciphers_both_ways(tmp_path: Path, cipher: str) -> None:
    """An encrypted qcow2 with each cipher built on ECB: pyvirt's copy of random data opens in qemu-img
    with the same secret (compare), and qemu-img's copy, written by QEMU, opens in pyvirt."""
    source = tmp_path / "in.raw"
    with source.open("wb") as f:  # data, a hole, data across a cluster edge, data at the end
        f.write(os.urandom(300_000))
        f.seek(1 << 20)
        f.write(os.urandom(70_000))
        f.seek((3 << 20) - 5000)
        f.write(os.urandom(5000))
    opts = "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10," + ",".join(
        f"encrypt.{o}" for o in cipher.split(",")
    )
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    made = pyvirt_img("convert", "--object", SECRET, "-O", "qcow2", "-o", opts, str(source), str(ours))
    assert made.returncode == 0, made.stderr
    alg, mode = (o.split("=")[1] for o in cipher.split(",")[:2])
    info = qemu_img("info", "--output", "json", str(ours)).stdout
    assert f'"cipher-alg": "{alg}"' in info and f'"cipher-mode": "{mode}"' in info
    spec = "driver=qcow2,file.filename={},encrypt.key-secret=s0"
    raw = f"driver=raw,file.filename={source}"
    judged = qemu_img("compare", "--object", SECRET, "--image-opts", spec.format(ours), raw, check=False)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    qemu_img("convert", "--object", SECRET, "-O", "qcow2", "-o", opts, str(source), str(theirs))
    back = tmp_path / "back.raw"
    read = pyvirt_img(
        "convert", "--object", SECRET, "--image-opts", spec.format(theirs), "-O", "raw", str(back)
    )
    assert read.returncode == 0, read.stderr
    assert back.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ("-o", "key-secret=s0,cipher-alg=aes-128,cipher-mode=cbc", "--size", "1000"),
        ("-o", "key-secret=s0", "--size", "1M", "--output", "json"),
        ("-o", "key-secret=s0", "IN"),
        ("--size", "1M"),
        ("-o", "key-secret=nope", "--size", "1M"),
    ],
)
def test_measure_luks_as_qemu_img(tmp_path: Path, args: tuple[str, ...]) -> None:
    """measure -O luks: the header area for the cipher asked for plus the payload; a missing or unknown
    key-secret refused as qemu-img refuses it."""
    source = tmp_path / "in.raw"
    source.write_bytes(b"x" * 70000)
    argv = ["measure", "-O", "luks", "--object", SECRET, *(str(source) if a == "IN" else a for a in args)]
    mine, qemu = pyvirt_img(*argv), qemu_img(*argv, check=False)
    assert (mine.returncode, mine.stdout) == (qemu.returncode, qemu.stdout)
    assert mine.stderr.split("error: ")[-1] == qemu.stderr.split("qemu-img: ")[-1]


def test_resize_and_compare_a_container_as_qemu_img(tmp_path: Path) -> None:
    path = tmp_path / "r.luks"
    made = pyvirt_img(
        "create", "-q", "-f", "luks", "--object", SECRET, "-o", "key-secret=s0,iter-time=10", str(path), "1M"
    )
    assert made.returncode == 0, made.stderr
    spec = f"driver=luks,file.filename={path},key-secret=s0"
    grown = pyvirt_img("resize", "--object", SECRET, "--image-opts", spec, "3M")
    assert grown.returncode == 0 and grown.stdout == "Image resized.\n", grown.stderr
    assert '"virtual-size": 3145728' in qemu_img("info", "--output", "json", str(path)).stdout
    same = pyvirt_img("compare", "--object", SECRET, "--image-opts", spec, spec)
    assert same.returncode == 0 and same.stdout == "Images are identical.\n"

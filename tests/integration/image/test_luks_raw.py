"""Raw LUKS containers (qemu's ``luks`` driver) made and read by :mod:`pyvirt.image.luks_raw` for every
cipher it takes, with qemu-img and qemu-io as the judges: what we write qemu reads, what qemu writes we
read; what qemu cannot open (aes-192) or we cannot run (twofish) is refused by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image.luks import CipherSpec
from pyvirt.image.luks_raw import LuksContainer, create_luks, read_header

from .conftest import qemu_img

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
        (("twofish-256",), "cipher algorithm 'twofish-256' is not supported"),
        (("aes-192", "cbc"), "'aes-192' is not supported: QEMU cannot open"),
        (("aes-256", "ecb"), "cipher mode 'ecb' is not supported"),
        (("aes-256", "xts", "essiv", "sha1"), "essiv hash 'sha1' is not supported"),
        (("aes-256", "xts", "plain64", "sha256"), "takes no hash"),
    ],
)
def test_what_cannot_be_made_is_refused(args: tuple[str, ...], words: str) -> None:
    with pytest.raises(ImageError, match=words):
        CipherSpec(*args)

"""LUKS-encrypted qcow2: qemu-img's read with the secret as qemu-img reads them, ours read by qemu."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import open_image

from .conftest import luks_qcow2, pyvirt_img, qemu_img

SECRET = "secret,id=s0,data=correct horse"


def _encrypted(path: Path, size: int = 8 << 20) -> None:
    luks_qcow2(path, size, SECRET)
    spec = f"driver=qcow2,file.filename={path},encrypt.key-secret=s0"
    subprocess.run(
        ["qemu-io", "--object", SECRET, "--image-opts", "-c", "write -P 0x5a 0 70000",
         "-c", "write -P 0x33 100000 4096", "-c", f"write -P 0x77 {size - 512} 512", spec],
        check=True, capture_output=True,
    )  # fmt: skip


def test_convert_with_the_secret_as_qemu_img(tmp_path: Path) -> None:
    img = tmp_path / "e.qcow2"
    _encrypted(img)
    spec = f"driver=qcow2,file.filename={img},encrypt.key-secret=s0"
    ours, theirs = tmp_path / "ours.raw", tmp_path / "theirs.raw"
    r = pyvirt_img("convert", "--object", SECRET, "--image-opts", "-O", "raw", spec, str(ours))
    assert r.returncode == 0, r.stderr
    qemu_img("convert", "--object", SECRET, "--image-opts", "-O", "raw", spec, str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()
    data = ours.read_bytes()
    assert data[:70000] == b"\x5a" * 70000 and data[100000:104096] == b"\x33" * 4096
    with open_image(str(img), passphrase=b"correct horse") as i:
        assert i.read(i.size - 512, 512) == b"\x77" * 512
        assert i.encrypted
    with pytest.raises(ImageError, match="Invalid password"):
        open_image(str(img), readonly=False, passphrase=b"wrong horse")
    # info takes the image as an option list too, and needs no key.
    opts_spec = f"driver=qcow2,file.filename={img.name}"
    r = pyvirt_img("info", "--image-opts", opts_spec, cwd=tmp_path)
    assert r.stdout == qemu_img("info", "--image-opts", opts_spec, cwd=tmp_path).stdout, r.stderr


WRONG_KEY = ["--object", "secret,id=s0,data=wrong", "--image-opts"]
SPEC = "driver=qcow2,file.filename=e.qcow2,encrypt.key-secret=s0"


@pytest.mark.parametrize("args", [[*WRONG_KEY, SPEC], ["e.qcow2"]])
def test_no_key_or_a_wrong_one_as_qemu_img(tmp_path: Path, args: list[str]) -> None:
    _encrypted(tmp_path / "e.qcow2", 1 << 20)
    r = pyvirt_img("convert", "-O", "raw", *args, "out.raw", cwd=tmp_path)
    q = qemu_img("convert", "-O", "raw", *args, "out2.raw", check=False, cwd=tmp_path)
    assert (r.returncode, q.returncode) == (1, 1)
    assert (
        r.stderr.split("error: ", 1)[1].split(": ")[-1] == q.stderr.split("qemu-img: ", 1)[1].split(": ")[-1]
    )
    assert not (tmp_path / "out.raw").exists()


def test_hostile_luks_header_fields(tmp_path: Path) -> None:
    img = tmp_path / "e.qcow2"
    _encrypted(img, 1 << 20)
    data = bytearray(img.read_bytes())
    off = data.find(b"LUKS\xba\xbe")
    assert off > 0
    good = bytes(data)
    for field, value, message in (
        (208 + 44, 1 << 30, "key slot out of range"),  # slot 0's stripes
        (208 + 40, 1 << 24, "outside the LUKS header"),  # slot 0's key material offset
        (8, 0, "Algorithm '' with key size 32 bytes not supported"),  # cipher name, as qemu-img says
    ):
        data = bytearray(good)
        struct.pack_into(">I", data, off + field, value)
        img.write_bytes(bytes(data))
        with pytest.raises(ImageError, match=message):
            open_image(str(img), passphrase=b"correct horse")


def test_created_and_written_by_us_opened_by_qemu(tmp_path: Path) -> None:
    key = "secret,id=k,data=our secret"
    opts = "encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10"
    r = pyvirt_img("create", "--object", key, "-f", "qcow2", "-o", opts, "ours.qcow2", "4M", cwd=tmp_path)
    q = qemu_img("create", "--object", key, "-f", "qcow2", "-o", opts, "theirs.qcow2", "4M", cwd=tmp_path)
    assert r.stdout == q.stdout.replace("theirs", "ours"), r.stderr
    assert (tmp_path / "ours.qcow2").stat().st_size == (tmp_path / "theirs.qcow2").stat().st_size

    def masked(name: str) -> str:
        text = qemu_img("info", name, cwd=tmp_path).stdout.replace(name, "X")
        return "\n".join(line for line in text.splitlines() if "uuid" not in line and "iters" not in line)

    assert masked("ours.qcow2") == masked("theirs.qcow2")
    src = tmp_path / "src.raw"
    src.write_bytes(b"".join(b"secret line %d\n" % i for i in range(300000))[: 3 << 20] + bytes(1 << 20))
    out = tmp_path / "conv.qcow2"
    r = pyvirt_img("convert", "--object", key, "-O", "qcow2", "-o", opts, str(src), str(out))
    assert r.returncode == 0, r.stderr
    spec = f"driver=qcow2,file.filename={out},encrypt.key-secret=k"
    qemu_img("check", "--object", key, "--image-opts", spec)
    qemu_img("compare", "--object", key, "--image-opts", f"driver=raw,file.filename={src}", spec)
    assert b"secret line" not in out.read_bytes()  # stored encrypted
    # A partial write in place (sector edges read back and re-encrypted), then qemu-io reads it.
    with open_image(str(out), readonly=False, passphrase=b"our secret") as img:
        img.write(1000, b"\x99" * 3000)
    reads = ["-c", "read -P 0x99 1000 3000", "-c", "read -P 0 3145728 65536"]
    subprocess.run(
        ["qemu-io", "--object", key, "--image-opts", *reads, spec], check=True, capture_output=True
    )
    r = pyvirt_img(
        "convert", "-c", "--object", key, "-O", "qcow2", "-o", opts, str(src), str(tmp_path / "c.qcow2")
    )
    assert r.returncode == 1 and "Compression and encryption" in r.stderr


def test_resize_through_image_opts_with_the_secret(tmp_path: Path) -> None:
    img = tmp_path / "e.qcow2"
    _encrypted(img)
    spec = f"driver=qcow2,file.filename={img},encrypt.key-secret=s0"
    before = subprocess.run(
        [
            "qemu-img",
            "convert",
            "--object",
            SECRET,
            "--image-opts",
            spec,
            "-O",
            "raw",
            str(tmp_path / "b.raw"),
        ],
        check=True,
    )
    assert before.returncode == 0
    plain = pyvirt_img("resize", str(img), "+1M")
    assert plain.returncode == 1 and "encrypt.key-secret" in plain.stderr
    grown = pyvirt_img("resize", "--object", SECRET, "--image-opts", spec, "+1M")
    assert grown.returncode == 0, grown.stderr
    assert qemu_img("info", "--output=json", str(img)).stdout.count(str(9 << 20)) == 1
    check = qemu_img("check", "--object", SECRET, "--image-opts", spec, check=False)
    assert check.returncode == 0, check.stdout
    compare = qemu_img(
        "compare", "--object", SECRET, "--image-opts", spec,
        f"driver=raw,file.filename={tmp_path / 'b.raw'}",
    )  # fmt: skip
    assert "Images are identical" in compare.stdout  # the old data, and zeroes after it
    wrong = pyvirt_img("resize", "--object", "secret,id=s0,data=nope", "--image-opts", spec, "+1M")
    assert wrong.returncode == 1


@pytest.mark.parametrize("cluster", ["64k", "4k"])
def test_measure_counts_the_luks_header_as_qemu_img(tmp_path: Path, cluster: str) -> None:
    img = tmp_path / "e.qcow2"
    _encrypted(img)
    spec = f"driver=qcow2,file.filename={img},encrypt.key-secret=s0"
    for args in (
        [
            "-O",
            "qcow2",
            "-o",
            f"cluster_size={cluster},encrypt.format=luks,encrypt.key-secret=s0",
            "--size",
            "10M",
        ],
        ["-O", "qcow2", "-o", f"cluster_size={cluster}", "--image-opts", spec],
        [
            "-O",
            "qcow2",
            "-o",
            f"cluster_size={cluster},encrypt.format=luks,encrypt.key-secret=s0",
            "--image-opts",
            spec,
        ],
    ):
        mine = pyvirt_img("measure", "--object", SECRET, *args)
        assert mine.returncode == 0, mine.stderr
        assert mine.stdout == qemu_img("measure", "--object", SECRET, *args).stdout
    missing = pyvirt_img("measure", "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=s1",
                         "--object", SECRET, "--size", "1M")  # fmt: skip
    assert missing.returncode == 1 and "No secret with id 's1'" in missing.stderr


def test_compare_shows_progress_as_qemu_img(tmp_path: Path) -> None:
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    for p in (a, b):
        qemu_img("create", "-q", "-f", "qcow2", str(p), "64M")
        subprocess.run(["qemu-io", "-c", "write -P 9 0 40M", str(p)], check=True, capture_output=True)
    subprocess.run(["qemu-io", "-c", "write -P 1 40M 4k", str(b)], check=True, capture_output=True)
    mine = pyvirt_img("compare", "-p", str(a), str(b))
    ref = qemu_img("compare", "-p", str(a), str(b), check=False)
    assert mine.returncode == ref.returncode == 1
    for out in (mine.stdout, ref.stdout):  # each \r reads as \n here (text mode)
        assert out.startswith("    (0.00/100%)") and out.endswith("Content mismatch at offset 41943040!\n\n")
        assert "    (100.00/100%)" not in out  # it stopped at the mismatch
    assert mine.stdout.count("/100%)") > 3  # it moves as it reads
    assert pyvirt_img("compare", "-p", "-q", str(a), str(b)).stdout == ""
    same = pyvirt_img("compare", "-p", str(a), str(a))
    assert same.returncode == 0 and same.stdout.endswith("    (100.00/100%)\nImages are identical.\n\n")


def test_check_map_compare_open_an_encrypted_image_with_its_secret(tmp_path: Path) -> None:
    img = tmp_path / "e.qcow2"
    _encrypted(img)
    spec = f"driver=qcow2,file.filename={img},encrypt.key-secret=s0"
    for verb in (["check"], ["map", "--output=json"]):
        without = pyvirt_img(*verb, str(img))
        assert without.returncode == 1 and "encrypt.key-secret" in without.stderr
        mine = pyvirt_img(*verb, "--object", SECRET, "--image-opts", spec)
        ref = qemu_img(*verb, "--object", SECRET, "--image-opts", spec)
        assert mine.returncode == 0, mine.stderr
        assert mine.stdout == ref.stdout
    # ciphertext has no place a reader could copy from: the human map stops there, as qemu-img's
    mine = pyvirt_img("map", "--object", SECRET, "--image-opts", spec)
    ref = qemu_img("map", "--object", SECRET, "--image-opts", spec, check=False)
    assert mine.returncode == ref.returncode == 1 and mine.stdout == ref.stdout
    assert "File contains external, encrypted or compressed clusters." in mine.stderr
    plain = tmp_path / "plain.raw"
    qemu_img("convert", "--object", SECRET, "--image-opts", spec, "-O", "raw", str(plain))
    args = ["--object", SECRET, "--image-opts", spec, f"driver=raw,file.filename={plain}"]
    mine = pyvirt_img("compare", *args)
    assert (
        mine.returncode == 0 and mine.stdout == qemu_img("compare", *args).stdout == "Images are identical.\n"
    )
    with plain.open("r+b") as f:
        f.seek(100000)
        f.write(b"changed")
    mine = pyvirt_img("compare", *args)
    ref = qemu_img("compare", *args, check=False)
    assert mine.returncode == ref.returncode == 1 and mine.stdout == ref.stdout


def test_info_takes_object_as_qemu_img(tmp_path: Path) -> None:
    """``info --object secret,... --image-opts driver=,file.filename=,encrypt.key-secret=``: the
    secret is checked, not needed (info reads no encrypted data: a wrong one is no error, as in
    qemu-img), and the image is named by its options as qemu-img names it."""
    spec = luks_qcow2(tmp_path / "e.qcow2", "3M", SECRET)
    for obj in (SECRET, "secret,id=s0,data=wrong", "secret,id=s0,data=eHl6,format=base64"):
        for out in ([], ["--output=json"], ["--backing-chain"]):
            for target in (["--image-opts", spec], [str(tmp_path / "e.qcow2")]):
                args = ["info", "--object", obj, *out, *target]
                ours, theirs = pyvirt_img(*args), qemu_img(*args)
                assert (ours.returncode, ours.stdout) == (0, theirs.stdout), ours.stderr
    named = pyvirt_img("info", "--object", SECRET, "--image-opts", spec).stdout.splitlines()[0]
    assert (
        named == f'image: json:{{"encrypt.key-secret": "s0", "driver": "qcow2", "file": {{"driver": "file", '
        f'"filename": "{tmp_path / "e.qcow2"}"}}}}'
    )
    bad = pyvirt_img("info", "--object", "secret,id=s0", str(tmp_path / "e.qcow2"))
    assert bad.returncode == 1 and bad.stderr.startswith("pyvirt img: error: ")
    assert (
        qemu_img("info", "--object", "secret,id=s0", str(tmp_path / "e.qcow2"), check=False).returncode == 1
    )

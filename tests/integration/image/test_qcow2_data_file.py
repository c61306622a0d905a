"""qcow2 with an external data file (``-o data_file=NAME,data_file_raw=on|off``): qemu-img checks, maps
and compares what pyvirt writes, pyvirt reads, checks and maps what qemu writes, each as qemu-img says
it; amend, snapshot and compression refused as qemu-img refuses them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.integration.image.conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io


def _pattern(path: Path, size: int, seed: int) -> None:
    """Random data, holes, zero runs and data at both ends (a size not a multiple of a cluster)."""
    rnd = random.Random(seed)
    buf = bytearray(size)
    for _ in range(12):
        at = rnd.randrange(0, size)
        n = min(size - at, rnd.choice([512, 4096, 65536, 200000, 3 << 20]))
        buf[at : at + n] = rnd.randbytes(n) if rnd.random() < 0.8 else bytes(n)
    buf[:1000] = rnd.randbytes(1000)
    buf[-777:] = rnd.randbytes(777)
    path.write_bytes(bytes(buf))


def _same_out(ours: object, theirs: object) -> None:
    assert ours == theirs, f"\nours:   {ours}\ntheirs: {theirs}"


CREATE = [
    "data_file={d}",
    "data_file={d},data_file_raw=on",
    "data_file={d},data_file_raw=off,cluster_size=4096",
    "data_file={d},preallocation=metadata",
    "data_file={d},data_file_raw=on,cluster_size=2M,lazy_refcounts=on",
]


@pytest.mark.parametrize("opts", CREATE)
def test_create_info_map_check_as_qemu_img(tmp_path: Path, opts: str) -> None:
    size = "5000K"
    mine = pyvirt_img("create", "-f", "qcow2", "-o", opts.format(d="d.raw"), "i.qcow2", size, cwd=tmp_path)
    assert mine.returncode == 0, mine.stderr
    (tmp_path / "ref").mkdir()
    ref = qemu_img(
        "create", "-f", "qcow2", "-o", opts.format(d="d.raw"), "i.qcow2", size, cwd=tmp_path / "ref"
    )
    _same_out(mine.stdout, ref.stdout)
    assert (tmp_path / "d.raw").stat().st_size == (tmp_path / "ref" / "d.raw").stat().st_size
    for verb in (["info"], ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"],
                 ["check", "--output=json"]):  # fmt: skip
        theirs = qemu_img(*verb, "i.qcow2", cwd=tmp_path / "ref", check=False)
        ours = pyvirt_img(*verb, "i.qcow2", cwd=tmp_path)
        _same_out((ours.returncode, ours.stdout), (theirs.returncode, theirs.stdout))
    assert qemu_img("check", "i.qcow2", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("raw", ["off", "on"])
@pytest.mark.parametrize("cluster", ["65536", "4096", "1048576"])
def test_convert_into_a_data_file_qemu_img_reads_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str, cluster: str
) -> None:
    src = tmp_path / "src.raw"
    _pattern(src, 9 * (1 << 20) + 1536, seed=int(cluster) + len(raw))
    opts = f"data_file=out.data,data_file_raw={raw},cluster_size={cluster}"
    r = pyvirt_img("convert", "-O", "qcow2", "-o", opts, "src.raw", "out.qcow2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.qcow2"
    monkeypatch.chdir(tmp_path)  # qemu opens the data file by its name, from the current folder
    assert_clean(out)
    assert_same(src, out)
    if raw == "on":  # the data file is the guest's raw image
        assert (tmp_path / "out.data").read_bytes()[: src.stat().st_size] == src.read_bytes()
    for verb in (["map", "--output=json"], ["map"], ["check"], ["info", "--output=json"]):
        theirs = qemu_img(*verb, "out.qcow2", cwd=tmp_path, check=False)
        ours = pyvirt_img(*verb, "out.qcow2", cwd=tmp_path)
        _same_out((ours.returncode, ours.stdout), (theirs.returncode, theirs.stdout))
    # Back out again, both ways.
    assert pyvirt_img("convert", "-O", "raw", "out.qcow2", "back.raw", cwd=tmp_path).returncode == 0
    assert (tmp_path / "back.raw").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("raw", ["off", "on"])
def test_pyvirt_reads_and_writes_what_qemu_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str
) -> None:
    monkeypatch.chdir(tmp_path)
    img = tmp_path / "q.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file=q.data,data_file_raw={raw}", "q.qcow2", "6M",
             cwd=tmp_path)  # fmt: skip
    qemu_io(img, "write -P 0x11 0 100k", "write -P 0x22 1M 64k", "write -z 1040k 8k",
            "write -P 0x33 6140k 4k", "discard 0 64k")  # fmt: skip
    for verb in (["map", "--output=json"], ["check", "--output=json"], ["info"]):
        theirs = qemu_img(*verb, "q.qcow2", cwd=tmp_path, check=False)
        ours = pyvirt_img(*verb, "q.qcow2", cwd=tmp_path)
        _same_out((ours.returncode, ours.stdout), (theirs.returncode, theirs.stdout))
    want = tmp_path / "want.raw"
    qemu_img("convert", "-O", "raw", "q.qcow2", "want.raw", cwd=tmp_path)
    assert pyvirt_img("convert", "-O", "raw", "q.qcow2", "got.raw", cwd=tmp_path).returncode == 0
    assert (tmp_path / "got.raw").read_bytes() == want.read_bytes()
    # pyvirt writes over it (-n: into the existing image), qemu-img checks and compares.
    src = tmp_path / "src.raw"
    _pattern(src, 6 << 20, seed=7 + len(raw))
    r = pyvirt_img("convert", "-n", "-O", "qcow2", "src.raw", "q.qcow2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_clean(img)
    assert_same(src, img)
    r = pyvirt_img(
        "bench", "-w", "-c", "40", "-s", "3000", "-S", "70000", "--pattern=9", "q.qcow2", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert_clean(img)


def test_resize_grows_the_data_file_and_qemu_reads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert pyvirt_img("create", "-q", "-f", "qcow2", "-o", "data_file=r.data", "r.qcow2", "1M",
                      cwd=tmp_path).returncode == 0  # fmt: skip
    qemu_io(tmp_path / "r.qcow2", "write -P 5 512k 512k")
    r = pyvirt_img("resize", "r.qcow2", "3M", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.data").stat().st_size == 3 << 20
    assert json.loads(qemu_img("info", "--output=json", "r.qcow2").stdout)["virtual-size"] == 3 << 20
    qemu_io(tmp_path / "r.qcow2", "read -P 5 512k 512k", "read -P 0 1M 2M")
    assert_clean(tmp_path / "r.qcow2")


def test_amend_snapshot_and_compression_as_qemu_img(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for d in (tmp_path / "ours", tmp_path / "theirs"):
        d.mkdir()
        qemu_img(
            "create", "-q", "-f", "qcow2", "-o", "data_file=a.data,data_file_raw=on", "a.qcow2", "1M", cwd=d
        )
        qemu_img("create", "-q", "-f", "qcow2", "plain.qcow2", "1M", cwd=d)
    steps = [
        ["amend", "-o", "data_file_raw=off", "a.qcow2"],
        ["amend", "-o", "data_file_raw=on", "a.qcow2"],
        ["amend", "-o", "compat=0.10", "a.qcow2"],
        ["amend", "-o", "data_file=b.data", "a.qcow2"],
        ["amend", "-o", "data_file=a.data,data_file_raw=off", "a.qcow2"],
        ["amend", "-o", "data_file=x.data", "plain.qcow2"],
        ["snapshot", "-c", "s1", "a.qcow2"],
        ["create", "-f", "qcow2", "-o", "data_file_raw=on", "n.qcow2", "1M"],
        ["create", "-f", "qcow2", "-o", "data_file=v.data,compat=0.10", "v.qcow2", "1M"],
    ]
    for step in steps:
        theirs = qemu_img(*step, cwd=tmp_path / "theirs", check=False)
        ours = pyvirt_img(*step, cwd=tmp_path / "ours")
        assert ours.returncode == theirs.returncode, (step, ours.stderr, theirs.stderr)
        if theirs.returncode:
            want = theirs.stderr.splitlines()[0].split("qemu-img: ", 1)[1]
            assert want.split(": ")[-1] in ours.stderr, (step, ours.stderr, want)
        t = qemu_img("info", "a.qcow2", cwd=tmp_path / "theirs", check=False)
        o = pyvirt_img("info", "a.qcow2", cwd=tmp_path / "ours")
        _same_out((o.returncode, o.stdout), (t.returncode, t.stdout))
    src = tmp_path / "ours" / "s.raw"
    src.write_bytes(b"compressible" * 100000)
    r = pyvirt_img(
        "convert", "-c", "-O", "qcow2", "-o", "data_file=c.data", "s.raw", "c.qcow2", cwd=src.parent
    )
    assert r.returncode == 1 and "Operation not supported" in r.stderr


def test_a_data_file_feature_without_its_name_or_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=m.data", "m.qcow2", "1M", cwd=tmp_path)
    (tmp_path / "m.data").unlink()
    theirs = qemu_img("info", "m.qcow2", cwd=tmp_path, check=False)
    ours = pyvirt_img("map", "m.qcow2", cwd=tmp_path)
    assert ours.returncode == 1 and "Could not open 'm.data': No such file or directory" in ours.stderr
    # info reads only the header, as qemu-img's does not need the data file to describe it
    assert theirs.returncode == 1 or "data file: m.data" in pyvirt_img("info", "m.qcow2", cwd=tmp_path).stdout
    # The feature bit without the extension naming the file.
    data = bytearray((tmp_path / "m.qcow2").read_bytes())
    at = data.index(b"DATA")
    data[at : at + 4] = b"XXXX"
    (tmp_path / "m.qcow2").write_bytes(bytes(data))
    ours = pyvirt_img("map", "m.qcow2", cwd=tmp_path)
    assert ours.returncode == 1 and "'data-file' is required for this image" in ours.stderr

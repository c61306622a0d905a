"""`pyvirt img` options that narrow or tune a verb, judged against qemu-img 7.2 on the same images."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import assert_clean, make_layer, pyvirt_img, qemu_img, qemu_io, qinfo


@pytest.fixture
def mapped(tmp_path: Path) -> Path:
    p = tmp_path / "m.qcow2"
    make_layer(
        p, "4M", None, "cluster_size=65536", ["write 64k 128k", "write -P 7 1M 64k", "write -z 2M 64k"]
    )
    return p


@pytest.mark.parametrize(
    "window",
    [
        ["--start-offset", "100000", "--max-length", "1000000"],
        ["--start-offset", "1M"],
        ["--max-length", "70k"],
        ["--start-offset", "3M", "--max-length", "9M"],
        ["--start-offset", "9M"],
        ["--start-offset=65536", "--max-length=0"],
    ],
)
@pytest.mark.parametrize("output", ["json", "human"])
def test_map_start_offset_and_max_length_as_qemu_img(mapped: Path, window: list[str], output: str) -> None:
    args = ["map", f"--output={output}", *window, mapped.name]
    want = qemu_img(*args, cwd=mapped.parent)
    got = pyvirt_img(*args, cwd=mapped.parent)
    assert got.returncode == 0, got.stderr
    assert got.stdout == want.stdout
    if window != ["--start-offset", "9M"]:  # a window past the end maps nothing, as the whole can't
        whole = pyvirt_img("map", f"--output={output}", mapped.name, cwd=mapped.parent).stdout
        assert whole != want.stdout or output == "human"


@pytest.mark.parametrize("bad", [["--start-offset", "x"], ["--max-length", "-1"]])
def test_map_bad_window_refused_as_qemu_img(mapped: Path, bad: list[str]) -> None:
    assert qemu_img("map", *bad, str(mapped), check=False).returncode == 1
    r = pyvirt_img("map", *bad, str(mapped))
    assert r.returncode == 1 and r.stdout == ""
    assert "Invalid " + ("start offset" if "start" in bad[0] else "max length") in r.stderr


def test_info_limits_refused_as_qemu_img_7_2(mapped: Path) -> None:
    want = qemu_img("info", "--limits", str(mapped), check=False)
    got = pyvirt_img("info", "--limits", str(mapped))
    assert want.returncode == got.returncode == 1
    assert "unrecognized option '--limits'" in want.stderr and "unrecognized option '--limits'" in got.stderr


@pytest.mark.parametrize(
    ("flag", "message"), [("-t", "Invalid cache option"), ("-T", "Invalid source cache option")]
)
def test_convert_cache_modes_checked_as_qemu_img(mapped: Path, flag: str, message: str) -> None:
    out = mapped.parent / "o.raw"
    want = qemu_img("convert", flag, "bogus", "-O", "raw", str(mapped), str(out) + ".q", check=False)
    assert want.returncode == 1 and f"{message}: bogus" in want.stderr
    got = pyvirt_img("convert", flag, "bogus", "-O", "raw", str(mapped), str(out))
    assert got.returncode == 1 and f"{message}: bogus" in got.stderr
    assert not out.exists()  # (qemu-img leaves an empty output behind for -t)
    for mode in ("none", "writeback", "writethrough", "directsync", "unsafe"):
        got = pyvirt_img("convert", flag, mode, "-O", "qcow2", str(mapped), str(out))
        assert got.returncode == 0, got.stderr
        assert qemu_img("compare", str(mapped), str(out)).returncode == 0


def test_convert_out_of_order_writes_give_qemu_imgs_image(mapped: Path) -> None:
    ours, theirs = mapped.parent / "ours.qcow2", mapped.parent / "theirs.qcow2"
    qemu_img("convert", "-W", "-m", "2", "-O", "qcow2", str(mapped), str(theirs))
    r = pyvirt_img("convert", "-W", "-m", "2", "-O", "qcow2", str(mapped), str(ours))
    assert r.returncode == 0, r.stderr
    assert qemu_img("compare", "-s", str(ours), str(theirs)).returncode == 0
    assert qemu_img("map", "--output=json", str(ours)).stdout.count("data") == qemu_img(
        "map", "--output=json", str(theirs)
    ).stdout.count("data")


def _map_flags(path: Path) -> list[tuple[int, int, bool, bool, bool]]:
    import json

    out = json.loads(qemu_img("map", "--output=json", str(path)).stdout)
    return [(x["start"], x["length"], x["present"], x["zero"], x["data"]) for x in out]


@pytest.mark.parametrize("mode", ["off", "metadata", "falloc", "full"])
@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_resize_preallocation_as_qemu_img(tmp_path: Path, fmt: str, mode: str) -> None:
    ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
    for p in (ours, theirs):
        qemu_img("create", "-q", "-f", fmt, str(p), "1M")
    args = ["resize", "-f", fmt, f"--preallocation={mode}"]
    want = qemu_img(*args, str(theirs), "3M", check=False)
    got = pyvirt_img(*args, str(ours), "3M")
    assert got.returncode == want.returncode, got.stderr
    if want.returncode:  # raw has no metadata mode
        assert want.stderr.removeprefix("qemu-img: ") == got.stderr.removeprefix("pyvirt img: error: ")
        assert ours.stat().st_size == 1 << 20
        return
    used = ours.stat().st_blocks * 512
    assert (used >= 2 << 20) == (mode in ("falloc", "full"))
    assert (used >= 2 << 20) == (theirs.stat().st_blocks * 512 >= 2 << 20)
    assert ours.stat().st_size == theirs.stat().st_size
    if fmt == "qcow2":
        assert _map_flags(ours) == _map_flags(theirs)
        assert_clean(ours)
    assert qemu_img("compare", str(ours), str(theirs)).returncode == 0


@pytest.mark.parametrize(
    ("opts", "size", "written", "new", "mode"),
    [
        ("cluster_size=64k", "1M", "1M", "3M", "full"),  # the table moves to the old end, data after it
        ("cluster_size=4k", "1M", "1M", "9M", "falloc"),  # new L2 tables, one in the old table
        ("cluster_size=4k,refcount_bits=1", "1M", "1M", "200M", "falloc"),  # new refcount blocks too
        ("cluster_size=64k", "1000k", "1000k", "3M", "falloc"),  # the cut cluster moves, head copied
    ],
)  # fmt: skip
def test_resize_falloc_full_lays_out_the_file_as_qemu_img(
    tmp_path: Path, opts: str, size: str, written: str, new: str, mode: str
) -> None:
    """QEMU 7.2's qcow2 truncate with falloc/full: the same file, byte for byte."""
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", opts, str(ours), size)
    qemu_io(ours, f"write -P 0x5a 0 {written}")
    theirs.write_bytes(ours.read_bytes())
    qemu_img("resize", "-q", f"--preallocation={mode}", str(theirs), new)
    got = pyvirt_img("resize", "-q", f"--preallocation={mode}", str(ours), new)
    assert got.returncode == 0, got.stderr
    assert_clean(ours)
    assert ours.read_bytes() == theirs.read_bytes()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--preallocation=bogus", "F", "3M"], "Invalid preallocation mode 'bogus'"),
        (
            ["--shrink", "--preallocation=full", "F", "512k"],
            "Preallocation can only be used for growing images",
        ),
    ],
)
def test_resize_preallocation_refused_as_qemu_img(tmp_path: Path, args: list[str], error: str) -> None:
    p = tmp_path / "i.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(p), "1M")
    argv = ["resize", *[str(p) if a == "F" else a for a in args]]
    want = qemu_img(*argv, check=False)
    got = pyvirt_img(*argv)
    assert want.returncode == got.returncode == 1 and error in want.stderr and error in got.stderr
    assert qinfo(p)["virtual-size"] == 1 << 20

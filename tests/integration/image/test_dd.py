"""``pyvirt img dd`` against ``qemu-img dd``: the same output size and contents for the same operands,
from each input format, through a backing chain, into each output format; the same refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.image.conftest import (
    LUKS_SECRET,
    assert_clean,
    assert_same,
    luks_qcow2,
    make_layer,
    pyvirt_img,
    qemu_img,
    qemu_io,
    qinfo,
)


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """A qcow2 over a qcow2: data at the start, the end and across a cluster edge, some of it in the base."""
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    make_layer(base, "10M", None, "cluster_size=65536", ["write -P 0x11 0 1M", "write -P 0x22 9M 1M"])
    make_layer(
        top, "10M", "base.qcow2", "cluster_size=65536", ["write -P 0x33 65000 200000", "write -z 9M 4k"]
    )
    return top


OPERANDS = [
    [],
    ["bs=1M"],
    ["bs=1M", "skip=2", "count=5"],
    ["bs=1k", "count=3", "skip=1"],
    ["bs=4096", "skip=2500"],
    ["bs=1M", "count=100"],
    ["bs=1M", "skip=20"],
    ["bs=7", "skip=9287", "count=100000"],
]


@pytest.mark.parametrize("operands", OPERANDS, ids=lambda o: " ".join(o) or "defaults")
@pytest.mark.parametrize("out_fmt", ["raw", "qcow2", "vmdk"])
def test_dd_matches_qemu_img(tmp_path: Path, chain: Path, operands: list[str], out_fmt: str) -> None:
    if out_fmt == "vmdk" and "skip=20" in operands:
        pytest.skip("qemu-img dd cannot open the empty vmdk it creates (it fails, pyvirt does not)")
    ours, theirs = tmp_path / f"ours.{out_fmt}", tmp_path / f"theirs.{out_fmt}"
    mine = pyvirt_img("dd", "-f", "qcow2", "-O", out_fmt, *operands, f"if={chain}", f"of={ours}")
    ref = qemu_img("dd", "-f", "qcow2", "-O", out_fmt, *operands, f"if={chain}", f"of={theirs}")
    assert mine.returncode == ref.returncode == 0, mine.stderr
    assert ("cannot skip to specified offset" in mine.stderr) == ("cannot skip" in ref.stderr)
    opens = qemu_img("info", str(theirs), check=False)
    if opens.returncode:  # qemu opens no empty monolithicSparse vmdk, its own or ours
        assert qemu_img("info", str(ours), check=False).stderr == opens.stderr.replace("theirs", "ours")
        return
    assert_same(ours, theirs, fmt_a=out_fmt, fmt_b=out_fmt)
    assert qinfo(ours)["virtual-size"] == qinfo(theirs)["virtual-size"]
    if out_fmt != "raw":
        assert_clean(ours)


def test_dd_reads_a_vdi_and_writes_what_qemu_reads(tmp_path: Path) -> None:
    src = tmp_path / "in.vdi"
    qemu_img("create", "-f", "vdi", str(src), "3M")
    qemu_io(src, "write -P 0x5a 1M 512k", fmt="vdi")
    out = tmp_path / "out.raw"
    assert pyvirt_img("dd", "bs=64k", "skip=16", f"if={src}", f"of={out}").returncode == 0
    assert out.read_bytes()[: 512 * 1024] == b"\x5a" * 512 * 1024
    assert out.stat().st_size == 2 << 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bs=0"], "Invalid bs specified. Must be between 1 and 2147483647."),
        (["bs=x"], "Invalid bs specified. You may use k, M, G, T, P or E suffixes"),
        (["foo=1"], "unrecognized operand foo"),
        (["count=x"], "Invalid count specified. You may use k, M, G, T, P or E suffixes"),
        (["skip=-1"], "Invalid skip specified. You may use k, M, G, T, P or E suffixes"),
    ],
)
def test_dd_refuses_what_qemu_img_refuses(tmp_path: Path, chain: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.raw"
    mine = pyvirt_img("dd", *args, f"if={chain}", f"of={out}")
    ref = qemu_img("dd", *args, f"if={chain}", f"of={tmp_path / 'ref.raw'}", check=False)
    assert mine.returncode == ref.returncode == 1
    assert message in mine.stderr and message.split(" You")[0] in ref.stderr
    assert not out.exists()


def test_dd_needs_both_files_and_a_readable_input(tmp_path: Path) -> None:
    assert "Must specify both input and output files" in pyvirt_img("dd", "if=x").stderr
    missing = pyvirt_img("dd", f"if={tmp_path / 'nope'}", f"of={tmp_path / 'out.raw'}")
    assert missing.returncode == 1 and "Could not open" in missing.stderr
    assert not (tmp_path / "out.raw").exists()


def test_dd_force_share_reads_an_image_a_vm_writes(tmp_path: Path, chain: Path) -> None:
    from tests.integration.image.test_locking import qemu_holding

    out = tmp_path / "out.raw"
    with qemu_holding(chain, readonly=False):
        locked = pyvirt_img("dd", f"if={chain}", f"of={out}")
        assert locked.returncode == 1 and "lock" in locked.stderr
        assert pyvirt_img("dd", "-U", "bs=1M", f"if={chain}", f"of={out}").returncode == 0
    assert_same(out, chain, fmt_a="raw", fmt_b="qcow2")


def test_dd_image_opts_with_a_secret_reads_a_luks_qcow2(tmp_path: Path) -> None:
    secret = LUKS_SECRET
    src = tmp_path / "enc.qcow2"
    luks_qcow2(src, "2M")
    spec = f"driver=qcow2,file.filename={src},encrypt.key-secret=s0"
    subprocess.run(
        ["qemu-io", "--object", secret, "--image-opts", "-c", "write -P 0x42 4096 8192", spec],
        check=True, capture_output=True,
    )  # fmt: skip
    ours, theirs = tmp_path / "ours.raw", tmp_path / "theirs.raw"
    mine = pyvirt_img("dd", "--object", secret, "--image-opts", "bs=4k", "skip=1", f"if={spec}", f"of={ours}")
    assert mine.returncode == 0, mine.stderr
    qemu_img("dd", "--object", secret, "--image-opts", "bs=4k", "skip=1", f"if={spec}", f"of={theirs}")
    assert ours.read_bytes() == theirs.read_bytes()
    assert ours.read_bytes()[:8192] == b"\x42" * 8192
    wrong = pyvirt_img(
        "dd", "--object", "secret,id=s0,data=wrong", "--image-opts", f"if={spec}", f"of={tmp_path / 'x.raw'}"
    )
    assert wrong.returncode == 1 and not (tmp_path / "x.raw").exists()

"""virsh's block job output, without a daemon: the progress line, the event lines, blockresize's size."""

from __future__ import annotations

import pytest

from pyvirt.cli.blockjob import _size, event_lines, io_error_lines, pretty, progress
from pyvirt.errors import InvalidArgument


@pytest.mark.parametrize(
    ("remaining", "total", "shown"),
    [(0, 0, "100"), (0, 5, "100"), (58, 100, " 42"), (1, 1000, " 99"), (100, 100, "  0")],
)
def test_progress_is_virsh_s(
    capsys: pytest.CaptureFixture[str], remaining: int, total: int, shown: str
) -> None:
    progress("Block Commit", remaining, total)
    assert capsys.readouterr().err == f"\rBlock Commit: [{shown} %]"


def test_event_lines_name_the_disk_by_path_or_target() -> None:
    event = {
        "kind": "block-job",
        "name": "web",
        "event": "completed",
        "detail": "active_commit:vda:/i/a:b.qcow2",
    }
    assert event_lines(event, "block-job", False) == [
        "event 'block-job' for domain 'web': Active Block Commit for /i/a:b.qcow2 completed\n"
    ]
    assert event_lines(event, "block-job-2", False) == [
        "event 'block-job-2' for domain 'web': Active Block Commit for vda completed\n"
    ]
    assert len(event_lines(event, None, True)) == 2


def test_io_error_lines_are_virsh_s() -> None:
    detail = '{"path": "/i/d.raw", "alias": "virtio-disk1", "action": "report", "reason": ""}'
    event = {"kind": "domain", "name": "web", "event": "io-error", "detail": detail}
    assert io_error_lines(event, None, False) == [
        "event 'io-error' for domain 'web': /i/d.raw (virtio-disk1) report\n"
    ]
    assert io_error_lines(event, "io-error-reason", False) == [
        "event 'io-error-reason' for domain 'web': /i/d.raw (virtio-disk1) report due to \n"
    ]
    kinds = [line.split("'")[1] for line in io_error_lines(event, None, True)]
    assert kinds == ["io-error", "io-error-reason"]


def test_blockresize_size_is_kib_without_a_unit() -> None:
    assert _size("1024") == 1024 * 1024
    assert _size("1G") == 1 << 30
    assert _size("512M") == 512 << 20
    with pytest.raises(InvalidArgument, match="<--size>"):
        _size("1.5G")


def test_pretty_capacity() -> None:
    assert pretty(1) == (1.0, "B")
    assert pretty(3 << 20) == (3.0, "MiB")

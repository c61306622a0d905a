"""pyvirt domxml-from-native qemu-argv FILE: the installed command, no daemon needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYVIRT = str(Path(sys.executable).with_name("pyvirt"))


def test_from_native_prints_xml_define_accepts(tmp_path: Path) -> None:
    argv = tmp_path / "guest.args"
    argv.write_text(
        "LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=cli1 -m 256 -smp 1 "
        "-drive file=/srv/cli1.qcow2,if=virtio,format=qcow2 -rtc base=utc\n"
    )
    result = subprocess.run(
        [PYVIRT, "domxml-from-native", "qemu-argv", str(argv)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "<name>cli1</name>" in result.stdout and "<source file='/srv/cli1.qcow2'/>" in result.stdout
    argv.write_text("/usr/bin/qemu-system-x86_64 -device ivshmem-plain\n")
    result = subprocess.run(
        [PYVIRT, "domxml-from-native", "qemu-argv", str(argv)], capture_output=True, text=True
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "error: unsupported configuration: QEMU device 'ivshmem-plain' has no domain XML here\n"
    ), result.stderr

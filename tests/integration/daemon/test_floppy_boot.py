"""i440fx + IDE + floppy, as libvirt writes it, booted for real under TCG: SeaBIOS boots the floppy
(``<boot dev='fd'/>`` reaches the floppy controller's boot index), whose boot sector writes to COM1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon

pytestmark = pytest.mark.slow
MARKER = b"pyvirt-floppy-boot\n"


def boot_floppy(path: Path) -> None:
    """A 1.44 MB floppy whose boot sector prints MARKER on the first serial port and halts."""
    code = bytes.fromhex(
        "fa31c08ed8"  # cli; xor ax,ax; mov ds,ax
        "baf803"  # mov dx,0x3f8
        "be167c"  # mov si,0x7c16 (the message)
        "ac84c07403eeebf8"  # next: lodsb; test al,al; jz done; out dx,al; jmp next
        "f4ebfd"  # done: hlt; jmp done
    )
    sector = (code + MARKER + b"\0").ljust(510, b"\0") + b"\x55\xaa"
    path.write_bytes(sector.ljust(1474560, b"\0"))


DOMAIN = """<domain type='qemu'>
  <name>floppy1</name>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='fd'/>
    <boot dev='hd'/>
  </os>
  <devices>
    <disk type='file' device='floppy'>
      <driver name='qemu' type='raw'/>
      <source file='{floppy}'/>
      <target dev='fda' bus='fdc'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <controller type='fdc' index='0'/>
    <controller type='ide' index='0'/>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def test_i440fx_ide_floppy_boots_from_the_floppy(daemon: Daemon, tmp_path: Path) -> None:
    floppy, disk = tmp_path / "boot.img", tmp_path / "hda.qcow2"
    boot_floppy(floppy)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    path = tmp_path / "floppy1.xml"
    path.write_text(DOMAIN.format(floppy=floppy, disk=disk))
    daemon.cli("define", str(path)).ok()
    out = daemon.cli("domblklist", "floppy1").ok().out
    assert f" fda      {floppy}" in out and f" hda      {disk}" in out, out
    daemon.cli("start", "floppy1").ok()
    console = Console(daemon, "floppy1")
    console.expect(MARKER.decode().strip(), 120)
    console.close()
    daemon.cli("destroy", "floppy1").ok()

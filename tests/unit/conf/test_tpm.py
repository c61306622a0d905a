"""<tpm> (pyvirt.conf.tpm): emulator, passthrough and external backends on the command line, written
back, refused by name."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>t</name><memory>65536</memory><os><type machine='q35'>hvm</type></os>
<devices>{devices}</devices></domain>"""


def tpm_options(xml: str) -> list[str]:
    ctx = RuntimeContext(accel="tcg", monitor_path="/x", tpm_socket="/run/t/swtpm.sock")
    argv = build_argv(load_domain_xml(xml), ctx)
    pairs = itertools.pairwise(argv)
    return [f"{a} {b}" for a, b in pairs if a in ("-chardev", "-tpmdev", "-device") and "tpm" in b]


@pytest.mark.parametrize(
    ("tpm", "expected"),
    [
        (
            "<tpm model='tpm-tis'><backend type='emulator' version='2.0'/></tpm>",
            [
                "-chardev socket,id=chrtpm,path=/run/t/swtpm.sock",
                "-tpmdev emulator,id=tpm-tpm0,chardev=chrtpm",
                "-device tpm-tis,tpmdev=tpm-tpm0,id=tpm0",
            ],
        ),
        (
            "<tpm model='tpm-crb'><backend type='passthrough'><device path='/dev/tpm1'/></backend></tpm>",
            [
                "-tpmdev passthrough,id=tpm-tpm0,path=/dev/tpm1,"
                "cancel-path=/sys/class/tpm/tpm1/device/cancel",
                "-device tpm-crb,tpmdev=tpm-tpm0,id=tpm0",
            ],
        ),
        (
            "<tpm model='tpm-crb'><backend type='external'>"
            "<source type='unix' mode='connect' path='/srv/tpm/ctrl.sock'/></backend></tpm>",
            [
                "-chardev socket,id=chrtpm,path=/srv/tpm/ctrl.sock",
                "-tpmdev emulator,id=tpm-tpm0,chardev=chrtpm",
                "-device tpm-crb,tpmdev=tpm-tpm0,id=tpm0",
            ],
        ),
    ],
)
def test_tpm_on_the_command_line_and_back(tpm: str, expected: list[str]) -> None:
    xml = XML.format(devices=tpm)
    assert tpm_options(xml) == expected
    assert tpm_options(format_domain(load_domain_xml(xml))) == expected


@pytest.mark.parametrize(
    ("tpm", "reason"),
    [
        ("<tpm model='tpm-crb'><backend type='emulator' version='1.2'/></tpm>", "needs TPM 2.0"),
        ("<tpm model='tpm-spapr'><backend type='emulator'/></tpm>", "'model' = 'tpm-spapr'"),
        ("<tpm model='tpm-tis'/>", "needs a <backend>"),
        ("<tpm><backend type='external'/></tpm>", "missing element 'source'"),
        ("<tpm><backend type='external'><source type='tcp' path='/s'/></backend></tpm>", "'type' = 'tcp'"),
        (
            "<tpm><backend type='external'><source type='unix' mode='bind' path='/s'/></backend></tpm>",
            "'mode' = 'bind'",
        ),
        ("<tpm><backend type='external'><source type='unix' path='s'/></backend></tpm>", "absolute path"),
        (
            "<tpm><backend type='external' version='2.0'><source type='unix' path='/s'/></backend></tpm>",
            "'version' = '2.0'",
        ),
        ("<tpm><backend type='bogus'/></tpm>", "'type' = 'bogus'"),
        ("<tpm><backend type='emulator' version='3.0'/></tpm>", "'version' = '3.0'"),
        ("<tpm><backend type='emulator' persistent_state='maybe'/></tpm>", "'persistent_state' = 'maybe'"),
        ("<tpm><backend type='emulator' version='2.0'><encryption/></backend></tpm>", "'secret'"),
        ("<tpm><backend type='emulator' version='2.0'><encryption secret='x'/></backend></tpm>", "malformed"),
        (
            "<tpm><backend type='emulator' version='2.0'><active_pcr_banks><md5/></active_pcr_banks>"
            "</backend></tpm>",
            "'devices/tpm/backend/active_pcr_banks/md5' is not supported",
        ),
        (
            "<tpm><backend type='emulator' version='1.2'><active_pcr_banks><sha1/></active_pcr_banks>"
            "</backend></tpm>",
            "only a TPM 2.0 has PCR banks",
        ),
        ("<tpm><backend type='emulator' version='2.0'><profile name='x'/></backend></tpm>", "profile"),
        ("<tpm><backend type='passthrough'><device path='/tmp/x'/></backend></tpm>", "must be under /dev"),
    ],
)
def test_refused_by_name(tpm: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(devices=tpm))


@pytest.mark.parametrize(
    ("tpm", "written"),
    [
        ("<tpm><backend type='emulator'/></tpm>", "<backend type='emulator' version='1.2'/>"),
        ("<tpm model='tpm-crb'><backend type='emulator'/></tpm>", "<backend type='emulator' version='2.0'/>"),
        (
            "<tpm><backend type='emulator' version='2.0' persistent_state='yes'>"
            "<encryption secret='6DD3E4A51D7644CE961FF119F5AAD935'/>"
            "<active_pcr_banks><sha512/><sha1/><sha512/></active_pcr_banks></backend></tpm>",
            "<backend type='emulator' version='2.0' persistent_state='yes'>\n"
            "        <encryption secret='6dd3e4a5-1d76-44ce-961f-f119f5aad935'/>\n"
            "        <active_pcr_banks>\n          <sha1/>\n          <sha512/>\n        </active_pcr_banks>",
        ),
    ],
)
def test_emulator_settings_written_back_as_libvirt_does(tpm: str, written: str) -> None:
    """libvirt 9.0's defaults (1.2 behind TIS, 2.0 behind CRB), the secret's canonical UUID, the banks
    once each in libvirt's order; a second round trip changes nothing."""
    text = format_domain(load_domain_xml(XML.format(devices=tpm)))
    assert written in text, text
    assert format_domain(load_domain_xml(text)) == text


def test_an_external_tpm_needs_its_socket(tmp_path: Path) -> None:
    """A start is refused by name while nobody serves the socket (a plain file is no socket)."""
    from pyvirt.conf import tpm

    path = tmp_path / "ctrl.sock"
    xml = f"<tpm><backend type='external'><source type='unix' mode='connect' path='{path}'/></backend></tpm>"
    dom = load_domain_xml(XML.format(devices=xml))
    with pytest.raises(PyvirtError, match=f"no emulator's socket at '{path}'"):
        tpm.require_host(dom)
    path.write_text("")
    with pytest.raises(PyvirtError, match="no emulator's socket"):
        tpm.require_host(dom)
    path.unlink()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        tpm.require_host(dom)

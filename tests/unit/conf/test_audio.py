"""Audio backends (pyvirt.conf.audio): <audio> with its streams, written back, as QEMU's -audiodev."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf import audio
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>a</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices><sound model='sb16'><audio id='2'/></sound>{audio}<controller type='usb' model='none'/>
<memballoon model='none'/></devices></domain>"""
OSS = """<audio id='2' type='oss' tryMMap='yes' dspPolicy='3'>
<input mixingEngine='yes' fixedSettings='yes' dev='/dev/dsp0' bufferCount='50' tryPoll='yes'>
<settings frequency='44100' channels='2' format='s16'/></input><output dev='/dev/dsp,1'/></audio>"""
PULSE = """<audio id='2' type='pulseaudio' serverName='pa.example.org'>
<output name='fish' streamName='food' latency='200'/></audio>"""


def audiodevs(xml: str) -> list[str]:
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    return [argv[i + 1] for i, arg in enumerate(argv) if arg in ("-audiodev", "-device")]


def test_backends_become_audiodev_properties_and_round_trip() -> None:
    xml = XML.format(audio=OSS)
    out = audiodevs(xml)
    assert out[0] == (
        "oss,id=audio2,try-mmap=on,dsp-policy=3,in.mixing-engine=on,in.fixed-settings=on,in.dev=/dev/dsp0,"
        "in.buffer-count=50,in.try-poll=on,in.frequency=44100,in.channels=2,in.format=s16,out.dev=/dev/dsp,,1"
    )
    assert "sb16,id=sound0,audiodev=audio2" in out
    again = format_domain(load_domain_xml(xml))
    assert "<settings frequency='44100' channels='2' format='s16'/>" in again
    assert audiodevs(again) == out
    pulse = audiodevs(XML.format(audio=PULSE))[0]
    assert pulse == "pa,id=audio2,server=pa.example.org,out.name=fish,out.stream-name=food,out.latency=200"


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<audio id='2' type='coreaudio'/>", "macOS"),
        ("<audio id='2' type='sdl' driver='directsound'/>", "'driver' = 'directsound'"),
        ("<audio id='2' type='alsa'><output fixedSettings='yes'/></audio>", "need mixingEngine='yes'"),
        (
            "<audio id='2' type='alsa'><output><settings channels='2'/></output></audio>",
            "fixedSettings='yes'",
        ),
        ("<audio id='2' type='alsa'><output latency='3'/></audio>", "attribute 'latency'"),
        ("<audio id='2' type='none'><input><settings format='s24'/></input></audio>", "'format' = 's24'"),
    ],
)
def test_refused_by_name(xml: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(audio=xml))


def test_a_backend_whose_module_the_host_lacks_is_refused_at_start(tmp_path: Path) -> None:
    dom = load_domain_xml(XML.format(audio=PULSE))
    with pytest.raises(PyvirtError, match=r"audio-pa\.so module, which this host lacks.*qemu-system-gui"):
        audio.require_host_backends(dom, tmp_path)
    (tmp_path / "audio-pa.so").write_bytes(b"")
    audio.require_host_backends(dom, tmp_path)
    audio.require_host_backends(load_domain_xml(XML.format(audio=OSS)), tmp_path)  # built into QEMU


def test_a_display_names_an_audio_that_exists() -> None:
    xml = XML.format(audio="<audio id='2' type='none'/>").replace(
        "<devices>", "<devices><graphics type='vnc' port='5901' autoport='no'><audio id='7'/></graphics>"
    )
    with pytest.raises(PyvirtError, match="graphics names no <audio id='7'>"):
        audiodevs(xml)


def test_sdl_audio_driver_is_qemus_environment() -> None:
    dom = load_domain_xml(
        format_domain(
            load_domain_xml(
                XML.format(audio="<audio id='2' type='sdl' driver='pulseaudio' timerPeriod='50'/>")
            )
        )
    )
    assert audio.environment(dom) == {"SDL_AUDIODRIVER": "pulseaudio"}
    assert "driver='pulseaudio'" in format_domain(dom)
    assert audio.audiodev(dom.devices.audios[0]) == "sdl,id=audio2,timer-period=50"  # no driver option
    assert audio.environment(load_domain_xml(XML.format(audio="<audio id='2' type='sdl'/>"))) == {}

"""Audio backends: ``<audio id type>`` with its ``<input>``/``<output>`` streams, as QEMU's ``-audiodev``.

libvirt (≥ 7.2) writes an ``<audio>`` into every x86 guest it defines, and each sound card, VNC or
SPICE display plays to one of them. The backends of QEMU 7.2 on Linux are modelled: ``none``, ``alsa``,
``oss``, ``pulseaudio`` (QEMU's ``pa``), ``sdl``, ``jack``, ``spice`` and ``file`` (QEMU's ``wav``),
with libvirt's attributes of each (common stream settings, and the backend's own). A ``file`` backend
without a ``path`` is ``-audiodev wav`` without one, as libvirt gives it: QEMU's default ``qemu.wav`` in
its working directory, which the confined QEMU cannot create (it logs that and plays nowhere).
``coreaudio`` is macOS's, refused by name. ``sdl``'s ``driver`` is no QEMU option but SDL's choice of
output, ``SDL_AUDIODRIVER`` in QEMU's environment (:func:`environment`), as libvirt sets it.

Debian ships the PulseAudio, SDL and JACK backends in the ``qemu-system-gui`` package as loadable
modules: a domain using one is defined anywhere, and refused at start on a host without the module
(:func:`require_host_backends`), naming the package, rather than left for QEMU to fail on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import UnsupportedConfig, XMLError
from pyvirt.qemu import keyval

if TYPE_CHECKING:
    from pyvirt.conf.domain import AudioConfig, Domain

TYPES = ("none", "alsa", "oss", "pulseaudio", "sdl", "jack", "spice", "file")
# libvirt's type → QEMU's -audiodev driver
DRIVERS = {"pulseaudio": "pa", "file": "wav"}
QEMU_MODULE_DIR = Path("/usr/lib/x86_64-linux-gnu/qemu")
MODULES = {"pulseaudio": "audio-pa.so", "sdl": "audio-sdl.so", "jack": "audio-jack.so"}
FORMATS = ("s8", "u8", "s16", "u16", "s32", "u32", "f32")

_YES_NO = ("yes", "no")
_UINT = "uint"
_TEXT = "text"
_ENV = ""  # no QEMU property: an environment variable of QEMU's process (environment())
# attribute → (QEMU property, kind: a tuple of allowed values, _UINT or _TEXT)
_Spec = dict[str, tuple[str, tuple[str, ...] | str]]
_COMMON_TOP: _Spec = {"timerPeriod": ("timer-period", _UINT)}
_TOP: dict[str, _Spec] = {
    "oss": {
        "tryMMap": ("try-mmap", _YES_NO),
        "exclusive": ("exclusive", _YES_NO),
        "dspPolicy": ("dsp-policy", _UINT),
    },
    "pulseaudio": {"serverName": ("server", _TEXT)},
    "sdl": {"driver": (_ENV, ("esd", "alsa", "arts", "pulseaudio"))},  # SDL_AUDIODRIVER
    "file": {"path": ("path", _TEXT)},
}
_COMMON_STREAM: _Spec = {
    "mixingEngine": ("mixing-engine", _YES_NO),
    "fixedSettings": ("fixed-settings", _YES_NO),
    "voices": ("voices", _UINT),
    "bufferLength": ("buffer-length", _UINT),
}
_SETTINGS: _Spec = {
    "frequency": ("frequency", _UINT),
    "channels": ("channels", _UINT),
    "format": ("format", FORMATS),
}
_STREAM: dict[str, _Spec] = {
    "alsa": {"dev": ("dev", _TEXT)},
    "oss": {"dev": ("dev", _TEXT), "bufferCount": ("buffer-count", _UINT), "tryPoll": ("try-poll", _YES_NO)},
    "pulseaudio": {
        "name": ("name", _TEXT),
        "streamName": ("stream-name", _TEXT),
        "latency": ("latency", _UINT),
    },
    "sdl": {"bufferCount": ("buffer-count", _UINT)},
    "jack": {
        "serverName": ("server-name", _TEXT),
        "clientName": ("client-name", _TEXT),
        "connectPorts": ("connect-ports", _TEXT),
        "exactName": ("exact-name", _YES_NO),
    },
}
STREAMS = ("input", "output")
_QEMU_STREAM = {"input": "in", "output": "out"}


def _read(e: Elem, spec: _Spec) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, (_prop, kind) in spec.items():
        if kind == _UINT:
            number = e.integer(name, minimum=0)
            if number is not None:
                out[name] = str(number)
        elif kind == _TEXT:
            if (value := e.attr(name)) is not None:
                out[name] = value
        elif (value := e.choice(name, kind)) is not None:
            out[name] = value
    return out


def parse(e: Elem, audio: AudioConfig) -> None:
    """Fill ``audio`` from ``<audio>`` (its id and type already read)."""
    if audio.type == "coreaudio":
        raise unsupported(f"audio type 'coreaudio' of '{e.path}': macOS's backend, not in QEMU on Linux")
    audio.options = _read(e, {**_COMMON_TOP, **_TOP.get(audio.type, {})})
    for tag in STREAMS:
        if (stream := e.child(tag)) is None:
            continue
        values = _read(stream, {**_COMMON_STREAM, **_STREAM.get(audio.type, {})})
        if (settings := stream.child("settings")) is not None:
            values.update({f"settings.{k}": v for k, v in _read(settings, _SETTINGS).items()})
            settings.done()
        stream.done()
        fixed = values.get("fixedSettings") == "yes"
        if fixed and values.get("mixingEngine") != "yes":  # libvirt's rules: QEMU ignores them otherwise
            raise XMLError(
                f"'{stream.path}': fixed audio settings (fixedSettings='yes') need mixingEngine='yes'"
            )
        if not fixed and any(key.startswith("settings.") for key in values):
            raise XMLError(f"'{stream.path}': <settings> take effect only with fixedSettings='yes'")
        audio.streams[tag] = values


def write(audio: AudioConfig) -> XNode:
    node = x("audio", {"id": audio.id, "type": audio.type, **audio.options})
    for tag in STREAMS:
        if (values := audio.streams.get(tag)) is None:
            continue
        stream = x(tag, {k: v for k, v in values.items() if not k.startswith("settings.")})
        settings = {k[9:]: v for k, v in values.items() if k.startswith("settings.")}
        node.add(stream.add(x("settings", settings) if settings else None))
    return node


def _qemu_value(value: str, kind: tuple[str, ...] | str) -> str:
    if kind == _YES_NO:
        return "on" if value == "yes" else "off"
    return keyval.escape(value)


def audiodev(audio: AudioConfig) -> str:
    """The ``-audiodev`` value (key=value, nested streams as ``in.``/``out.`` keys)."""
    parts = [DRIVERS.get(audio.type, audio.type), f"id=audio{audio.id}"]
    top = {**_COMMON_TOP, **_TOP.get(audio.type, {})}
    parts += [f"{top[k][0]}={_qemu_value(v, top[k][1])}" for k, v in audio.options.items() if top[k][0]]
    stream_spec = {**_COMMON_STREAM, **_STREAM.get(audio.type, {})}
    stream_spec.update({f"settings.{k}": v for k, v in _SETTINGS.items()})
    for tag in STREAMS:
        for key, value in audio.streams.get(tag, {}).items():
            prop, kind = stream_spec[key]
            parts.append(f"{_QEMU_STREAM[tag]}.{prop}={_qemu_value(value, kind)}")
    return ",".join(parts)


def environment(dom: Domain) -> dict[str, str]:
    """QEMU's environment for the domain's audio: SDL's driver (libvirt takes the first SDL backend's)."""
    for audio in dom.devices.audios:
        if audio.type == "sdl" and "driver" in audio.options:
            return {"SDL_AUDIODRIVER": audio.options["driver"]}
    return {}


def require_host_backends(dom: Domain, module_dir: Path = QEMU_MODULE_DIR) -> None:
    """Refuse a backend whose QEMU module this host lacks (Debian's ``qemu-system-gui`` has them)."""
    for audio in dom.devices.audios:
        module = MODULES.get(audio.type)
        if module is not None and module_dir.is_dir() and not (module_dir / module).exists():
            raise UnsupportedConfig(
                f"unsupported configuration: audio type '{audio.type}' needs QEMU's {module} module, "
                "which this host lacks (Debian's qemu-system-gui package)"
            )

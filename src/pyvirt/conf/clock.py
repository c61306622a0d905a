"""The guest's clock: ``<clock offset=...>`` and its ``<timer>``s, as libvirt 9.0 reads them and runs them.

Offsets (``-rtc base=``): ``utc`` and ``localtime`` as such; ``absolute start='EPOCH'`` the given
instant; ``timezone timezone='Europe/Paris'`` the wall time of that zone when QEMU starts (what libvirt's
``TZ=`` with ``base=localtime`` makes QEMU compute); ``variable adjustment='N' basis='utc|localtime'``
the basis's time at start plus N seconds. QEMU keeps the RTC running from there with the host's clock.

Timers: ``rtc`` with ``tickpolicy='catchup'`` (``driftfix=slew``; ``delay`` is QEMU's own behaviour;
``merge``/``discard`` refused at define, as QEMU's RTC has neither) and ``track='guest|wall|realtime'``
(``clock=vm|host|rt``); ``pit`` with a tickpolicy (``kvm-pit.lost_tick_policy`` under KVM); ``hpet``
present or not (the machine's ``hpet``); ``kvmclock``/``hypervclock``/``tsc`` present (``-cpu`` flags),
``tsc frequency`` (``-cpu tsc-frequency``); ``tsc mode='auto'`` (QEMU's default; other modes refused as
libvirt does for QEMU). ``<catchup threshold slew limit/>`` is refused at define, naming the attributes:
QEMU's ``driftfix=slew`` has no such settings (libvirt accepts them and passes nothing to QEMU).
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyvirt.conf.domain import ClockConfig, Timer
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x, yes_no
from pyvirt.errors import UnsupportedConfig, XMLError

OFFSETS = ("utc", "localtime", "absolute", "timezone", "variable")
TIMER_NAMES = ("rtc", "pit", "hpet", "kvmclock", "tsc", "hypervclock")
TICK_POLICIES = ("delay", "catchup", "merge", "discard")
TRACKS = {"guest": "vm", "wall": "host", "realtime": "rt"}
TSC_MODES = ("auto", "native", "emulate", "paravirt", "smpsafe")
CATCHUP_ATTRS = ("threshold", "slew", "limit")


def parse(e: Elem) -> ClockConfig:
    clock = ClockConfig(offset=e.choice("offset", OFFSETS) or "utc")
    if clock.offset == "absolute":
        clock.start = e.integer("start", minimum=0, maximum=253402300799)  # up to 9999-12-31T23:59:59
        if clock.start is None:
            raise XMLError("missing attribute 'start' of 'clock' (offset='absolute')")
    elif clock.offset == "timezone":
        clock.timezone = e.require("timezone")
        try:
            ZoneInfo(clock.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise XMLError(f"unknown timezone '{clock.timezone}' of 'clock'") from None
    elif clock.offset == "variable":
        clock.adjustment = e.integer("adjustment") or 0
        clock.basis = e.choice("basis", ("utc", "localtime")) or "utc"
    for node in e.children("timer"):
        clock.timers.append(_timer(node))
    e.done()
    return clock


def _timer(node: Elem) -> Timer:
    name = node.choice("name", TIMER_NAMES, required=True) or ""
    timer = Timer(name=name, tickpolicy=node.choice("tickpolicy", TICK_POLICIES))
    timer.present = node.flag("present")
    if name == "rtc":
        timer.track = node.choice("track", tuple(TRACKS))
    if name == "tsc":
        timer.frequency = node.integer("frequency", minimum=1)
        timer.mode = node.choice("mode", TSC_MODES)
        if timer.mode not in (None, "auto"):
            raise unsupported(f"attribute 'mode' = '{timer.mode}' of '{node.path}': QEMU has no TSC modes")
    if (catchup := node.child("catchup")) is not None:
        if timer.tickpolicy != "catchup":
            raise XMLError(f"'{catchup.path}' needs tickpolicy='catchup'")
        given = [attr for attr in CATCHUP_ATTRS if catchup.attr(attr) is not None]
        if given:
            raise unsupported(
                f"attribute{'s' if len(given) > 1 else ''} {', '.join(repr(a) for a in given)} of "
                f"'{catchup.path}': QEMU has no such setting (its catch-up is driftfix=slew, which takes "
                "no threshold, slew or limit)"
            )
        catchup.done()
    node.done()
    return timer


def write(clock: ClockConfig) -> XNode:
    attrs: dict[str, str | int | None] = {"offset": clock.offset}
    if clock.offset == "absolute":
        attrs["start"] = clock.start
    elif clock.offset == "timezone":
        attrs["timezone"] = clock.timezone
    elif clock.offset == "variable":
        attrs.update(adjustment=clock.adjustment or 0, basis=clock.basis)
    node = x("clock", attrs)
    for timer in clock.timers:
        tattrs = {
            "name": timer.name,
            "tickpolicy": timer.tickpolicy,
            "track": timer.track,
            "frequency": timer.frequency,
            "mode": timer.mode,
            "present": yes_no(timer.present),
        }
        node.add(x("timer", tattrs))
    return node


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def rtc(clock: ClockConfig | None, now: float) -> str:
    """The ``-rtc`` value; ``now`` is the start's time (seconds since the epoch)."""
    if clock is None:
        return "base=utc"
    utc = datetime.UTC
    if clock.offset in ("utc", "localtime"):
        base = clock.offset
    elif clock.offset == "absolute":
        base = _stamp(datetime.datetime.fromtimestamp(clock.start or 0, utc))
    elif clock.offset == "timezone":
        base = _stamp(datetime.datetime.fromtimestamp(now, ZoneInfo(clock.timezone or "UTC")))
    elif clock.offset == "variable":
        at = now + (clock.adjustment or 0)
        local = clock.basis == "localtime"
        moment = datetime.datetime.fromtimestamp(at) if local else datetime.datetime.fromtimestamp(at, utc)
        base = _stamp(moment)
    else:
        raise UnsupportedConfig(f"unsupported configuration: clock offset '{clock.offset}'")
    out = f"base={base}"
    for timer in clock.timers:
        if timer.name != "rtc":
            continue
        if timer.track is not None:
            out += f",clock={TRACKS[timer.track]}"
        if timer.tickpolicy == "catchup":
            out += ",driftfix=slew"
    return out


def tsc_frequency(clock: ClockConfig | None) -> list[str]:
    """``-cpu`` properties of the TSC timer's frequency."""
    for timer in clock.timers if clock else []:
        if timer.name == "tsc" and timer.frequency:
            return [f"tsc-frequency={timer.frequency}"]
    return []

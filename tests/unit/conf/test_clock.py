"""The guest's clock (pyvirt.conf.clock): offsets as -rtc base, timers, what is refused and why."""

from __future__ import annotations

import calendar
import time

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>c</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
{clock}</domain>"""
NOW = calendar.timegm((2024, 7, 1, 12, 0, 0))  # the start's time: summer in Paris (UTC+2)


def option(clock: str, name: str) -> str:
    """The value of ``name`` on the command line of a domain with ``clock``, the same after dumpxml."""
    xml = XML.format(clock=clock)
    values = []
    for text in (xml, format_domain(load_domain_xml(xml))):
        argv = build_argv(load_domain_xml(text), RuntimeContext(accel="tcg", monitor_path="/x", now=NOW))
        values.append(argv[argv.index(name) + 1])
    assert values[0] == values[1]
    return values[0]


@pytest.mark.parametrize(
    ("clock", "rtc"),
    [
        ("<clock offset='utc'/>", "base=utc"),
        ("<clock offset='localtime'/>", "base=localtime"),
        ("<clock offset='absolute' start='253402300799'/>", "base=9999-12-31T23:59:59"),
        ("<clock offset='timezone' timezone='Europe/Paris'/>", "base=2024-07-01T14:00:00"),
        ("<clock offset='variable' adjustment='-3600' basis='utc'/>", "base=2024-07-01T11:00:00"),
        ("<clock offset='variable' adjustment='86400'/>", "base=2024-07-02T12:00:00"),
        (
            "<clock offset='utc'><timer name='rtc' tickpolicy='catchup' track='wall'>"
            "<catchup/></timer></clock>",
            "base=utc,clock=host,driftfix=slew",
        ),
        ("<clock offset='utc'><timer name='rtc' track='realtime'/></clock>", "base=utc,clock=rt"),
    ],
)
def test_offsets_and_rtc_timer(clock: str, rtc: str) -> None:
    assert option(clock, "-rtc") == rtc


def test_variable_on_localtime_is_the_hosts_local_time_plus_the_adjustment() -> None:
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(NOW + 60))
    assert option("<clock offset='variable' adjustment='60' basis='localtime'/>", "-rtc") == f"base={local}"


def test_tsc_frequency_and_timers_on_cpu_and_machine() -> None:
    clock = (
        "<clock offset='utc'><timer name='tsc' frequency='2000000000' mode='auto'/>"
        "<timer name='hpet' present='no'/><timer name='kvmclock' present='no'/></clock>"
    )
    assert option(clock, "-cpu") == "qemu64,kvmclock=off,tsc-frequency=2000000000"
    assert "hpet=off" in option(clock, "-machine")
    again = format_domain(load_domain_xml(XML.format(clock=clock)))
    assert "<timer name='tsc' frequency='2000000000' mode='auto'/>" in again


@pytest.mark.parametrize(
    ("clock", "reason"),
    [
        ("<clock offset='absolute'/>", "missing attribute 'start'"),
        ("<clock offset='timezone' timezone='Mars/Olympus'/>", "unknown timezone"),
        ("<clock offset='timezone'/>", "missing attribute 'timezone'"),
        ("<clock offset='utc'><timer name='rtc' tickpolicy='merge'/></clock>", "tickpolicy 'merge' of timer"),
        ("<clock offset='utc'><timer name='rtc' track='boot'/></clock>", "'track' = 'boot'"),
        ("<clock offset='utc'><timer name='tsc' mode='native'/></clock>", "QEMU has no TSC modes"),
        ("<clock offset='utc'><timer name='rtc'><catchup slew='1'/></timer></clock>", "tickpolicy='catchup'"),
        (
            "<clock offset='utc'><timer name='rtc' tickpolicy='catchup'>"
            "<catchup slew='4636'/></timer></clock>",
            "attribute 'slew' of 'clock/timer/catchup': QEMU has no such setting",
        ),
        (
            "<clock offset='utc'><timer name='pit' tickpolicy='catchup'>"
            "<catchup threshold='123' limit='2342'/></timer></clock>",
            "attributes 'threshold', 'limit' of 'clock/timer/catchup': QEMU has no such setting",
        ),
        ("<clock offset='utc' adjustment='reset'/>", "'adjustment'"),
    ],
)
def test_refused_by_name(clock: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(clock=clock))

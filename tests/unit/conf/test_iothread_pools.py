"""thread_pool_min/max of <iothread> and <defaultiothread> (pyvirt.conf.iothread_pools)."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>p</name><memory>65536</memory><iothreads>2</iothreads>
<iothreadids><iothread id='3' {pool}/></iothreadids>{default}<os><type>hvm</type></os></domain>"""


def objects(pool: str = "", default: str = "") -> list[str]:
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(pool=pool, default=default))))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-object"]


def test_pools_round_trip_onto_the_iothread_and_main_loop_objects() -> None:
    default = "<defaultiothread thread_pool_min='2' thread_pool_max='8'/>"
    dom = load_domain_xml(XML.format(pool="thread_pool_min='0' thread_pool_max='4'", default=default))
    assert dom.iothread_pools == {3: {"min": 0, "max": 4}, 0: {"min": 2, "max": 8}}
    text = format_domain(dom)
    assert "<iothread id='3' thread_pool_min='0' thread_pool_max='4'/>" in text and default in text
    assert objects("thread_pool_min='0' thread_pool_max='4'", default) == [
        '{"qom-type":"iothread","id":"iothread3","thread-pool-min":0,"thread-pool-max":4}',
        '{"qom-type":"iothread","id":"iothread1"}',
        '{"qom-type":"main-loop","id":"main-loop","thread-pool-min":2,"thread-pool-max":8}',
    ]
    assert objects("thread_pool_max='-1'") == [  # -1: QEMU's default, as libvirt reads it
        '{"qom-type":"iothread","id":"iothread3"}',
        '{"qom-type":"iothread","id":"iothread1"}',
    ]


@pytest.mark.parametrize(
    ("pool", "default", "reason"),
    [
        ("thread_pool_max='0'", "", "thread_pool_max of 'iothreadids/iothread' must be a positive"),
        ("thread_pool_min='5' thread_pool_max='4'", "", "must not be greater than thread_pool_max"),
        ("", "<defaultiothread thread_pool_min='-2'/>", "thread_pool_min"),
        ("", "<defaultiothread stack='1'/>", "'stack'"),
    ],
)
def test_refused_by_name(pool: str, default: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        objects(pool, default)

"""The worker pools of I/O threads: ``thread_pool_min``/``thread_pool_max`` of an ``<iothreadids>``
``<iothread>`` and of ``<defaultiothread>`` (QEMU's main loop), as libvirt 9.0 writes them.

QEMU 7.2's ``iothread`` and ``main-loop`` objects take them as ``thread-pool-min``/``thread-pool-max``:
the bounds of the pool of threads that run the blocking work (file I/O without ``io='native'``) of the
disks attached to that thread. Kept in ``Domain.iothread_pools``, I/O thread id → ``{"min", "max"}``
(id 0: the default I/O thread); libvirt's rules: max at least 1, min at most max.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain

DEFAULT = 0  # the key of <defaultiothread>
_ATTRS = (("min", "thread_pool_min"), ("max", "thread_pool_max"))


def parse(e: Elem) -> dict[str, int]:
    """The pool bounds on an ``<iothread>`` or ``<defaultiothread>``."""
    pool = {key: value for key, attr in _ATTRS if (value := e.integer(attr, minimum=-1)) is not None}
    pool = {key: value for key, value in pool.items() if value != -1}  # -1: QEMU's default, as libvirt
    if pool.get("max") == 0:
        raise InvalidArgument(f"thread_pool_max of '{e.path}' must be a positive integer")
    if "min" in pool and "max" in pool and pool["min"] > pool["max"]:
        raise InvalidArgument(f"thread_pool_min of '{e.path}' must not be greater than thread_pool_max")
    return pool


def attrs(pool: dict[str, int] | None) -> dict[str, int]:
    return {attr: pool[key] for key, attr in _ATTRS if pool and key in pool}


def default_node(dom: Domain) -> XNode | None:
    pool = dom.iothread_pools.get(DEFAULT)
    return x("defaultiothread", attrs(pool)) if pool else None


def props(pool: dict[str, int] | None) -> dict[str, int]:
    """``thread-pool-min``/``-max`` of an ``iothread`` or ``main-loop`` object."""
    return {f"thread-pool-{key}": pool[key] for key in ("min", "max") if pool and key in pool}


def main_loop(dom: Domain) -> dict[str, object] | None:
    """The ``-object main-loop`` of ``<defaultiothread>``, when it sets a pool."""
    pool = dom.iothread_pools.get(DEFAULT)
    return {"qom-type": "main-loop", "id": "main-loop", **props(pool)} if pool else None

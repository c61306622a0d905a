"""The integration tests' order, and how they are shared out when they run side by side
(``PYVIRT_TEST_WORKERS=N make test``: N pytest-xdist workers).

* A test file is a unit of work: all its tests run in one worker, in their order, so a module
  fixture (a booted guest, a built template) is made once. Files that use one thing of the host that
  only one of them may use at a time are one unit together (:data:`GROUPS`).
* The longest units are handed out first (:data:`SECONDS`, figures of a run on a quiet 2-core
  machine), the others in collection order: the last unit a worker gets is a short one, so that no
  worker sits idle while the other still has minutes to go. A file missing from the table is just
  handed out later; the figures decide the order only, never what a test checks.

The same order is used without pytest-xdist (a plain ``pytest tests/integration``).
"""

from __future__ import annotations

from typing import Any

import pytest

#: Files sharing something of the host that two tests may not use at once: one work unit a group.
GROUPS: dict[str, str] = {}

#: Seconds a file took (set-up included), the longest ones: ``--durations`` of a two-worker run
#: (session 10, 1193 tests in 24 min 53 s).
SECONDS: dict[str, float] = {
    "tests/integration/template/test_template.py": 430,
    "tests/integration/guest/test_customize.py": 145,
    "tests/integration/daemon/test_guest_agent.py": 120,
    "tests/integration/guest/test_sysprep.py": 115,
    "tests/integration/guest/test_mount.py": 100,
    "tests/integration/install/test_install_netboot.py": 65,
    "tests/integration/storage/test_luks_volumes.py": 50,
    "tests/integration/guest/test_domain_disks.py": 46,
}


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its file, or the group the file belongs to."""
    path = nodeid.split("::", 1)[0]
    return GROUPS.get(path, path)


def weight(unit: str) -> float:
    """A unit's expected seconds: those of its files."""
    return sum(s for path, s in SECONDS.items() if path == unit or GROUPS.get(path) == unit)


def longest_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: units by falling weight, each unit's tests together and in their
    order, units of equal weight in the order they were collected."""
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(unit_of(item.nodeid), index)
    key = {unit: (-weight(unit), index) for unit, index in first.items()}
    items.sort(key=lambda item: key[unit_of(item.nodeid)])


class Distribution:
    """The pytest-xdist side, for ``--dist loadfile``: a scheduler whose work units are
    :func:`unit_of`, handed out in the collection's order (which :func:`longest_first` made)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadfile":
            return None  # another --dist asked for: xdist's own
        from xdist.scheduler import LoadScopeScheduling

        class ByUnit(LoadScopeScheduling):  # type: ignore[misc]
            def _split_scope(self, nodeid: str) -> str:
                return unit_of(nodeid)

        config.option.loadscopereorder = False  # xdist's own order (most tests first) is not ours
        return ByUnit(config, log)

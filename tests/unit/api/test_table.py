"""The API table: every action well formed, its types resolvable, no route shadowing another."""

from __future__ import annotations

import re
import subprocess
import sys

from pyvirt.api import validate
from pyvirt.api.table import ACTIONS, BY_NAME, QUERY_TYPES, STREAMS, error_codes
from pyvirt.errors import ERRORS_BY_CODE


def test_names_and_routes_are_unique() -> None:
    assert len(BY_NAME) == len(ACTIONS)
    routes = [(a.method, re.sub(r"\{\w+\}", "{}", a.path)) for a in ACTIONS]
    assert len(set(routes)) == len(routes)


def test_every_action_is_well_formed() -> None:
    for action in ACTIONS:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", action.name), action
        assert action.method in ("GET", "POST", "DELETE"), action
        assert action.path.startswith("/v1/"), action
        assert action.summary, action
        assert set(action.query.values()) <= set(QUERY_TYPES), action
        assert action.stream is None or action.stream in STREAMS, action
        assert (action.response is None) == (action.stream is not None), action
        if action.method in ("GET", "DELETE"):
            assert action.request is None, action
        if action.method != "GET":
            assert action.mutating, action
        if isinstance(action.secret, str):
            assert action.query.get(action.secret) == "bool", action
        for code in error_codes(action):
            assert code in ERRORS_BY_CODE, (action, code)


def test_types_resolve() -> None:
    for action in ACTIONS:
        for name in (action.request, action.response):
            if name is not None:
                validate.resolve(name)


def test_readonly_refusal() -> None:
    assert BY_NAME["domain.start"].refused_readonly({})
    assert BY_NAME["volume.download"].refused_readonly({})
    assert not BY_NAME["domain.xml"].refused_readonly({"inactive": "1"})
    assert BY_NAME["domain.xml"].refused_readonly({"security_info": "1"})
    assert not BY_NAME["domain.xml"].refused_readonly({"security_info": "0"})


def test_table_imports_nothing_heavy() -> None:
    probe = (
        "import sys; import pyvirt.api.table; "
        "print(' '.join(m for m in ('typing', 'enum', 'dataclasses', 're') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path[1:])},
    )
    assert out.stdout.split() == []

"""The daemon's router, built from the API table (:mod:`pyvirt.api.table`) and the handlers bound to it.

Each handler is bound to an action's name; every action must have exactly one handler and every
handler an action, or the daemon refuses to start. Each route checks its request against the
action's declared types before the handler runs, and refuses a read-only peer what the action marks
``mutating`` or ``secret``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pyvirt.api import validate
from pyvirt.api.table import ACTIONS, ALIASES, BY_NAME, Action
from pyvirt.daemon.http import Handler, Request, Router, StreamHandler

Handlers = Mapping[str, Callable[..., Awaitable[Any]]]


class RouteTableError(Exception):
    """The handlers do not match the API table one for one (a programming error: pyvirtd won't start)."""


def _checker(action: Action) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        request.args = validate.check_query(action, request.query)
        request.data = validate.check_body(action, request.json() if request.body else None)

    return check


def build_router(handlers: Handlers) -> Router:
    """A router serving every action of the table with its handler from ``handlers``."""
    unknown = sorted(set(handlers) - set(BY_NAME))
    missing = [action.name for action in ACTIONS if action.name not in handlers]
    if unknown or missing:
        problems = []
        if missing:
            problems.append("actions without a handler: " + ", ".join(missing))
        if unknown:
            problems.append("handlers of no action: " + ", ".join(unknown))
        raise RouteTableError("the daemon's handlers do not match the API table: " + "; ".join(problems))
    router = Router()
    for action in ACTIONS:
        handler = handlers[action.name]
        stream: StreamHandler | None = handler if action.stream else None
        plain: Handler | None = None if action.stream else handler
        router.add(
            action.method,
            action.path,
            plain,
            stream=stream,
            mutating=action.mutating,
            secret=action.secret,
            check=_checker(action),
            action=action.name,
        )
    for name, path in ALIASES.items():
        action = BY_NAME[name]
        router.add(action.method, path, handlers[name], check=_checker(action), action=name)
    return router


def metrics_router(handler: Callable[..., Awaitable[Any]]) -> Router:
    """The router of the plain HTTP metrics listener: the metrics action alone, at /metrics and its
    /v1 path."""
    action = BY_NAME["host.metrics"]
    router = Router()
    for path in (ALIASES[action.name], action.path):
        router.add(action.method, path, handler, check=_checker(action), action=action.name)
    return router

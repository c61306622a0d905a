"""The undo helper of multi-step operations, after Incus's ``revert`` package.

A :class:`Revert` collects one undo callback per step done so far. If the operation ends without
:meth:`Revert.success` (an exception, a cancellation, an early return), the callbacks run newest first;
a failing callback is logged and the others still run, so the operation's own error is the one raised::

    with Revert() as revert:
        make_bridge()
        revert.add(delete_bridge, "delete the bridge")
        add_rules()
        revert.add(remove_rules, "remove the rules")
        revert.success()

Without ``with``: call :meth:`fail` in a ``finally`` (it does nothing after :meth:`success`).
:meth:`clone` hands the steps to a longer-lived owner (Incus's ``Clone``), which runs them later, for
instance when a started object is torn down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger("pyvirt.revert")


class Revert:
    """Undo callbacks of the steps done so far, run in reverse unless :meth:`success` was called."""

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[[], object], str]] = []

    def add(self, undo: Callable[[], object], what: str = "") -> None:
        """Register the undo of a step that has just succeeded."""
        self._steps.append((undo, what))

    def success(self) -> None:
        """The operation completed: forget the undo steps."""
        self._steps.clear()

    def fail(self) -> None:
        """Run the undo steps, newest first, each at most once; errors are logged, not raised."""
        steps, self._steps = self._steps, []
        for undo, what in reversed(steps):
            try:
                undo()
            except Exception:
                log.exception("while undoing a failed operation: %s", what or getattr(undo, "__name__", undo))

    def clone(self) -> Revert:
        """A Revert holding the current steps, for a caller that will run (or drop) them later."""
        copy = Revert()
        copy._steps = list(self._steps)
        return copy

    def __len__(self) -> int:
        return len(self._steps)

    def __enter__(self) -> Revert:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.fail()

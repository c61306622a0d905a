"""The lifecycle's table and guard on their own: names virsh shows, transitions allowed, the lock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import (
    FAMILY,
    REASONS,
    TRANSITIONS,
    Crashed,
    DomainState,
    Paused,
    PMSuspended,
    Reason,
    Running,
    Shutdown,
    Shutoff,
    TransitionError,
    check_transition,
    guard,
)
from pyvirt.errors import InvalidState

S = DomainState


def test_virsh_names_of_states_and_reasons() -> None:
    shown = {
        (S.RUNNING, Running.BOOTED): "running",
        (S.PAUSED, Paused.USER): "paused",
        (S.SHUTDOWN, Shutdown.USER): "in shutdown",
        (S.SHUTOFF, Shutoff.DESTROYED): "shut off",
        (S.CRASHED, Crashed.PANICKED): "crashed",
        (S.PMSUSPENDED, PMSuspended.UNKNOWN): "pmsuspended",
        # job states show as their guest's state, as libvirt does
        (S.MIGRATING, Running.UNPAUSED): "running",
        (S.SAVING, Paused.SAVE): "paused",
        (S.SNAPSHOTTING, Paused.SNAPSHOT): "paused",
        (S.RESTORING, Paused.STARTING_UP): "paused",
    }
    for (state, reason), name in shown.items():
        assert state.virsh(reason) == name
    # The reasons virsh prints (domstate --reason) for the reasons pyvirt sets today.
    assert [str(r) for r in (Running.BOOTED, Running.UNPAUSED, Running.CRASHED, Running.WAKEUP)] == [
        "booted",
        "unpaused",
        "crashed",
        "event wakeup",
    ]
    assert [str(r) for r in (Shutoff.SHUTDOWN, Shutoff.DESTROYED, Shutoff.CRASHED)] == [
        "shutdown",
        "destroyed",
        "crashed",
    ]
    assert str(Paused.USER) == "user" and str(Crashed.PANICKED) == "panicked"


def test_the_table_covers_every_state_and_only_shutoff_is_inactive() -> None:
    assert set(TRANSITIONS) == set(S) == set(REASONS)
    assert [s for s in S if not s.active] == [S.SHUTOFF]
    for state, targets in TRANSITIONS.items():
        if state.active:
            assert S.SHUTOFF in targets, f"QEMU can exit in {state}"
        assert all(family in FAMILY for family in REASONS[state])
    # every state is reachable from shut off
    seen, todo = {S.SHUTOFF}, [S.SHUTOFF]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(S)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (S.SHUTOFF, S.RUNNING, Running.BOOTED),
        (S.RUNNING, S.PMSUSPENDED, PMSuspended.UNKNOWN),
        (S.PMSUSPENDED, S.RUNNING, Running.WAKEUP),
        (S.RUNNING, S.SAVING, Paused.SAVE),
        (S.SAVING, S.SHUTOFF, Shutoff.SAVED),
        (S.SHUTOFF, S.RESTORING, Paused.STARTING_UP),
        (S.RESTORING, S.RUNNING, Running.RESTORED),
        (S.RUNNING, S.MIGRATING, Running.UNPAUSED),
        (S.MIGRATING, S.SHUTOFF, Shutoff.MIGRATED),
        (S.PAUSED, S.SNAPSHOTTING, Paused.SNAPSHOT),
    ],
)
def test_allowed_transitions(old: DomainState, new: DomainState, reason: Reason) -> None:
    check_transition(old, new, reason)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (S.SHUTOFF, S.SHUTOFF, Shutoff.DESTROYED),  # stopping what is not running
        (S.SHUTOFF, S.CRASHED, Crashed.PANICKED),
        (S.SHUTOFF, S.PMSUSPENDED, PMSuspended.UNKNOWN),
        (S.PMSUSPENDED, S.SAVING, Paused.SAVE),
        (S.SAVING, S.MIGRATING, Paused.MIGRATION),
        (S.RUNNING, S.PAUSED, Running.UNPAUSED),  # a running reason for a paused state
        (S.RUNNING, S.SAVING, Running.BOOTED),  # a save pauses the guest
    ],
)
def test_refused_transitions(old: DomainState, new: DomainState, reason: Reason) -> None:
    with pytest.raises(TransitionError):
        check_transition(old, new, reason)


@dataclass
class Thing:
    state: DomainState
    reason: Reason
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def test_guard_checks_the_state_once_it_holds_the_lock() -> None:
    async def main() -> list[str]:
        thing = Thing(S.RUNNING, Running.BOOTED)
        order: list[str] = []

        async def stopper() -> None:
            async with thing.lock:
                order.append("stopper has the lock")
                await asyncio.sleep(0)
                thing.state, thing.reason = S.SHUTOFF, Shutoff.DESTROYED

        async def suspender() -> None:
            try:
                async with guard(thing, lifecycle.SUSPENDABLE):
                    order.append("suspended")
            except InvalidState as err:
                order.append(str(err))

        task = asyncio.get_running_loop().create_task(stopper())
        await asyncio.sleep(0)  # the stopper holds the lock while the state is still running
        await suspender()
        await task
        return order

    assert asyncio.run(main()) == [
        "stopper has the lock",
        "Requested operation is not valid: domain is not running",
    ]


@pytest.mark.parametrize(
    ("state", "reason", "allowed", "refuse", "message"),
    [
        (S.SHUTOFF, Shutoff.UNKNOWN, lifecycle.SUSPENDABLE, None, "domain is not running"),
        (S.RUNNING, Running.BOOTED, lifecycle.INACTIVE, None, "domain is already running"),
        (S.PMSUSPENDED, PMSuspended.UNKNOWN, lifecycle.SUSPENDABLE, None, "domain is pmsuspended"),
        (S.SHUTDOWN, Shutdown.USER, lifecycle.SUSPENDABLE, None, "domain is in shutdown"),
        (S.SAVING, Paused.SAVE, lifecycle.GUEST_REACHABLE, None, "domain is busy: saving in progress"),
        (S.RUNNING, Running.BOOTED, lifecycle.RESUMABLE, "domain is not paused", "domain is not paused"),
        (S.SHUTOFF, Shutoff.UNKNOWN, lifecycle.RESUMABLE, "domain is not paused", "domain is not running"),
    ],
)
def test_guard_refusals_name_the_state(
    state: DomainState, reason: Reason, allowed: frozenset[DomainState], refuse: str | None, message: str
) -> None:
    async def main() -> None:
        thing = Thing(state, reason)
        with pytest.raises(InvalidState) as err:
            async with guard(thing, allowed, refuse=refuse):
                pass
        assert str(err.value) == f"Requested operation is not valid: {message}"
        assert not thing.lock.locked()

    asyncio.run(main())

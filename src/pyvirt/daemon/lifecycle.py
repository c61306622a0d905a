"""The domain lifecycle: states, their reasons, the transitions allowed between them, and one guard.

States and reasons carry virsh's names (``virsh domstate --reason``): a reason belongs to one family
(running, paused, in shutdown, shut off, crashed, pmsuspended) and the family is what virsh shows as
the state. The job states (migrating, saving, restoring, snapshotting) are declared here with their
transitions for the work that will use them; while one is in progress the domain shows as running or
paused according to its reason, as libvirt does.

Every operation on a domain passes :func:`guard`, which takes the domain's lock and only then checks
that the domain is in one of the states the operation allows (qemu.qmp's ``Runstate`` + ``@require``
is the model). Every change of state goes through :func:`check_transition`, against the table
:data:`TRANSITIONS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Collection
from typing import Protocol, TypeVar

from pyvirt.errors import InvalidState, PyvirtError


class Running(enum.StrEnum):
    UNKNOWN = "unknown"
    BOOTED = "booted"
    MIGRATED = "migrated"
    RESTORED = "restored"
    FROM_SNAPSHOT = "from snapshot"
    UNPAUSED = "unpaused"
    MIGRATION_CANCELED = "migration canceled"
    SAVE_CANCELED = "save canceled"
    WAKEUP = "event wakeup"
    CRASHED = "crashed"


class Paused(enum.StrEnum):
    UNKNOWN = "unknown"
    USER = "user"
    MIGRATION = "migrating"
    SAVE = "saving"
    DUMP = "dumping"
    IOERROR = "I/O error"
    WATCHDOG = "watchdog"
    FROM_SNAPSHOT = "from snapshot"
    SHUTTING_DOWN = "shutting down"
    SNAPSHOT = "creating snapshot"
    STARTING_UP = "starting up"


class Shutdown(enum.StrEnum):
    UNKNOWN = "unknown"
    USER = "user"


class Shutoff(enum.StrEnum):
    UNKNOWN = "unknown"
    SHUTDOWN = "shutdown"
    DESTROYED = "destroyed"
    CRASHED = "crashed"
    MIGRATED = "migrated"
    SAVED = "saved"
    FAILED = "failed"
    FROM_SNAPSHOT = "from snapshot"
    DAEMON = "daemon"


class Crashed(enum.StrEnum):
    UNKNOWN = "unknown"
    PANICKED = "panicked"


class PMSuspended(enum.StrEnum):
    UNKNOWN = "unknown"


Reason = Running | Paused | Shutdown | Shutoff | Crashed | PMSuspended

# virsh's state name for each family of reasons.
FAMILY: dict[type[enum.StrEnum], str] = {
    Running: "running",
    Paused: "paused",
    Shutdown: "in shutdown",
    Shutoff: "shut off",
    Crashed: "crashed",
    PMSuspended: "pmsuspended",
}


class DomainState(enum.Enum):
    """Where a domain is in its life. The value is what run records store (stable across daemons)."""

    SHUTOFF = "shutoff"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"  # the guest powered off; QEMU is being told to quit
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"
    MIGRATING = "migrating"
    SAVING = "saving"
    RESTORING = "restoring"
    SNAPSHOTTING = "snapshotting"

    @property
    def active(self) -> bool:
        """A QEMU process exists for the domain."""
        return self is not DomainState.SHUTOFF

    def virsh(self, reason: Reason) -> str:
        """virsh's name of this state with ``reason`` (a job state shows as its reason's family)."""
        return FAMILY[type(reason)]


S = DomainState

REASONS: dict[DomainState, tuple[type[enum.StrEnum], ...]] = {
    S.SHUTOFF: (Shutoff,),
    S.RUNNING: (Running,),
    S.PAUSED: (Paused,),
    S.SHUTDOWN: (Shutdown,),
    S.CRASHED: (Crashed,),
    S.PMSUSPENDED: (PMSuspended,),
    # Job states: a live migration or snapshot keeps the guest running, the others pause it.
    S.MIGRATING: (Running, Paused),
    S.SAVING: (Paused,),
    S.RESTORING: (Paused,),
    S.SNAPSHOTTING: (Running, Paused),
}

#: From each state, the states it may move to. Any active state may end in SHUTOFF: QEMU can exit at
#: any moment. A state moving to itself changes only its reason (a reboot, a crash restarted).
TRANSITIONS: dict[DomainState, frozenset[DomainState]] = {
    S.SHUTOFF: frozenset({S.RUNNING, S.PAUSED, S.RESTORING}),
    S.RUNNING: frozenset(
        {
            S.RUNNING,
            S.PAUSED,
            S.SHUTDOWN,
            S.CRASHED,
            S.PMSUSPENDED,
            S.SHUTOFF,
            S.MIGRATING,
            S.SAVING,
            S.SNAPSHOTTING,
        }
    ),
    S.PAUSED: frozenset({S.PAUSED, S.RUNNING, S.SHUTDOWN, S.SHUTOFF, S.MIGRATING, S.SAVING, S.SNAPSHOTTING}),
    S.SHUTDOWN: frozenset({S.SHUTOFF, S.RUNNING, S.PAUSED}),
    S.CRASHED: frozenset({S.RUNNING, S.PAUSED, S.SHUTDOWN, S.SHUTOFF}),
    S.PMSUSPENDED: frozenset({S.RUNNING, S.PAUSED, S.SHUTDOWN, S.SHUTOFF}),
    S.MIGRATING: frozenset({S.RUNNING, S.PAUSED, S.CRASHED, S.SHUTOFF}),
    S.SAVING: frozenset({S.RUNNING, S.PAUSED, S.SHUTOFF}),
    S.RESTORING: frozenset({S.RUNNING, S.PAUSED, S.SHUTOFF}),
    S.SNAPSHOTTING: frozenset({S.RUNNING, S.PAUSED, S.CRASHED, S.SHUTOFF}),
}

#: The states in which each operation may run (checked by :func:`guard` under the domain's lock).
ACTIVE = frozenset(s for s in S if s.active)
INACTIVE = frozenset({S.SHUTOFF})
ANY = frozenset(S)
#: Asking the guest something (ACPI power button, reset) needs a QEMU that is not busy with a job.
GUEST_REACHABLE = frozenset({S.RUNNING, S.PAUSED, S.CRASHED, S.PMSUSPENDED, S.SHUTDOWN})
SUSPENDABLE = frozenset({S.RUNNING, S.PAUSED})
RESUMABLE = frozenset({S.PAUSED, S.CRASHED})
#: Device hot-plug and link changes: any state with a QEMU that is not in the middle of a job.
HOTPLUGGABLE = frozenset({S.RUNNING, S.PAUSED, S.CRASHED, S.PMSUSPENDED, S.SHUTDOWN})


class TransitionError(PyvirtError):
    """A change of state the table does not allow: a bug in the daemon, never the user's doing."""


def check_transition(old: DomainState, new: DomainState, reason: Reason) -> None:
    """Raise :class:`TransitionError` unless ``old`` → ``new`` with ``reason`` is allowed."""
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"internal error: domain state {old.value} cannot become {new.value}")
    if type(reason) not in REASONS[new]:
        raise TransitionError(f"internal error: '{reason}' is not a reason of state {new.value}")


class Guarded(Protocol):
    """What :func:`guard` needs of a domain."""

    @property
    def lock(self) -> asyncio.Lock: ...

    @property
    def state(self) -> DomainState: ...

    @property
    def reason(self) -> Reason: ...


G = TypeVar("G", bound=Guarded)


def refusal(state: DomainState, reason: Reason, allowed: Collection[DomainState]) -> InvalidState:
    """libvirt's wording for an operation that ``state`` does not allow."""
    prefix = "Requested operation is not valid: "
    if not state.active:
        return InvalidState(prefix + "domain is not running")
    if not any(s.active for s in allowed):
        return InvalidState(prefix + "domain is already running")
    if state in (S.MIGRATING, S.SAVING, S.RESTORING, S.SNAPSHOTTING):
        return InvalidState(f"{prefix}domain is busy: {state.value} in progress")
    return InvalidState(f"{prefix}domain is {state.virsh(reason)}")


@contextlib.asynccontextmanager
async def guard(obj: G, allowed: Collection[DomainState], *, refuse: str | None = None) -> AsyncIterator[G]:
    """Hold ``obj``'s lock for the body, which runs only if ``obj`` is in one of the ``allowed`` states.

    The check is made after the lock is taken, so no other operation or QMP event can change the
    state between the check and the body. ``refuse`` replaces the refusal message for a domain that
    runs but not in an allowed state.
    """
    async with obj.lock:
        if obj.state not in allowed:
            if refuse is not None and obj.state.active:
                raise InvalidState(f"Requested operation is not valid: {refuse}")
            raise refusal(obj.state, obj.reason, allowed)
        yield obj

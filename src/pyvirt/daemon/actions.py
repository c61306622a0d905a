"""What every group of domain action handlers shares: the daemon's domain registry, bound at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainRegistry


class DomainActions:
    """A group of action handlers that works on the domain registry the daemon hands it at start-up."""

    _domains: DomainRegistry | None = None

    async def startup(self, domains: DomainRegistry) -> None:
        self._domains = domains

    @property
    def domains(self) -> DomainRegistry:
        if self._domains is None:
            raise RuntimeError(f"{type(self).__name__} used before the daemon's start-up bound its domains")
        return self._domains

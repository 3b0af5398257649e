"""Stage 3, API: what a caller may read: its key's role and party, as every serving query's ``cc_sees_*``
parameters (``%(role)s``, ``%(party)s``; the SQL functions of migration 0020 decide, once)."""

from __future__ import annotations

from dataclasses import dataclass

from traceability.api.auth import Principal


@dataclass(frozen=True, slots=True)
class Scope:
    """A caller's role and party: what ``cc_sees_all`` / ``cc_sees_shipment`` / ``cc_sees_lot`` /
    ``cc_sees_asset`` / ``cc_sees_event`` are asked about. A row it does not see is answered 404, never
    403: a scoped caller cannot tell another party's data from none."""

    role: str
    party_id: str | None

    def params(self) -> dict[str, str | None]:
        """The query parameters of the ``cc_sees_*`` calls: ``{"role": ..., "party": ...}``."""
        return {"role": self.role, "party": self.party_id}


def scope_of(principal: Principal) -> Scope:
    """The scope of an authenticated key (or of the web session opened with it)."""
    return Scope(principal.role, principal.party_id)

"""Stage 3, API: the caller's scope (role and party), the parameters every scoped query filters by."""

from __future__ import annotations

from dataclasses import dataclass

from traceability.api import auth


@dataclass(frozen=True, slots=True)
class Scope:
    """Who asks: the role and the party of the key; the SQL functions cc_sees_* decide what they see."""

    role: str
    party_id: str | None

    def params(self) -> dict[str, str | None]:
        """The query parameters %(role)s and %(party)s of a scoped query."""
        return {"role": self.role, "party": self.party_id}


def scope_of(principal: auth.Principal) -> Scope:
    return Scope(principal.role, principal.party_id)

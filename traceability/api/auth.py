"""Stage 3, API: API keys with a role and a party (stored as SHA-256 hashes only) and the audit log of reads.

Roles and what they may do (what they may read is the SQL's ``cc_sees_*``, migration 0020: the
``traceability.api.scope`` of the key):

* ``inspector``, ``regulator``: read everything (trace, EPCIS query, ledger verification, capture jobs);
* ``customs``: read the import flow (imported or bonded lots, their shipments and assets);
* ``carrier``: read its own shipments, the assets it operates or carries them in and their lots,
  acknowledge / resolve those assets' alarms, and register its own shipments;
* ``shipper``: read the lots it owns and the shipments it ships or receives, and register its own shipments;
* ``operator``: read everything, acknowledge / resolve alarms, register shipments and set geofences;
* ``capture``: capture EPCIS documents and read their capture jobs;
* ``admin``: everything.

A carrier's or shipper's key belongs to its party (``party_id``); any other key may name one.

A key is ``cck_`` + 43 URL-safe characters (32 random bytes); only its SHA-256 is stored, so a plain
hash suffices (the secret has full entropy: no password stretching needed). The key is shown once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from traceability import queries

Conn = psycopg.Connection[Any]

READ, ALARMS, CAPTURE, SHIPMENTS, LOCATIONS = "read", "alarms", "capture", "shipments", "locations"
ROLES: dict[str, frozenset[str]] = {
    "inspector": frozenset({READ}),
    "regulator": frozenset({READ}),
    "customs": frozenset({READ}),
    "carrier": frozenset({READ, ALARMS, SHIPMENTS}),
    "shipper": frozenset({READ, SHIPMENTS}),
    "operator": frozenset({READ, ALARMS, SHIPMENTS, LOCATIONS}),
    "capture": frozenset({CAPTURE}),
    "admin": frozenset({READ, ALARMS, CAPTURE, SHIPMENTS, LOCATIONS}),
}
# The roles whose key must name its party (what they read is that party's).
PARTY_ROLES = frozenset({"carrier", "shipper"})
KEY_PREFIX = "cck_"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    name: str
    role: str
    party_id: str | None = None

    def may(self, permission: str) -> bool:
        return permission in ROLES.get(self.role, frozenset())


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# The first characters of a key that are stored (and shown) to name it: the prefix and 8 more.
SHOWN_CHARS = len(KEY_PREFIX) + 8


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, as an operator sees it (never its secret)."""

    key_id: int
    name: str
    role: str
    prefix: str | None  # None for keys made before prefixes were kept
    revoked: bool


class KeyRevocationError(LookupError):
    """No key, or more than one, is named; or the key named is revoked already."""


class KeyPartyError(ValueError):
    """A key's party is missing (a carrier's or shipper's key) or not in the registry."""


def create_key(conn: Conn, role: str, name: str, party_id: str | None = None) -> str:
    """Create an API key of ``role`` named ``name``, of ``party_id`` (a registry party; required for the
    roles of ``PARTY_ROLES``), in the caller's transaction; return the secret."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {sorted(ROLES)}")
    if role in PARTY_ROLES and not party_id:
        raise KeyPartyError(f"a {role} key belongs to a party: name it (--party)")
    if party_id is not None and conn.execute(queries.PARTY_KNOWN, (party_id,)).fetchone() is None:
        raise KeyPartyError(f"no party {party_id!r} in the registry")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        queries.INSERT_API_KEY,
        {
            "name": name,
            "role": role,
            "party": party_id,
            "hash": hash_key(secret),
            "prefix": secret[:SHOWN_CHARS],
        },
    )
    return secret


def revoke_key(conn: Conn, which: str) -> ApiKey:
    """Revoke the key named by its id or by the start of its secret (at least ``cck_`` and 4 more
    characters), in the caller's transaction; from then on it is refused (401). Returns the key as it
    was; raises ``KeyRevocationError`` when no key or more than one is named, or it is revoked already."""
    key_id = int(which) if which.isdigit() and len(which) < 19 else None
    prefix = which[:SHOWN_CHARS] if which.startswith(KEY_PREFIX) else None
    if key_id is None and (prefix is None or len(prefix) < len(KEY_PREFIX) + 4):
        raise KeyRevocationError(
            f"{which!r} is neither a key id nor a key prefix (cck_ and 4 more characters)"
        )
    like = None if prefix is None else prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(queries.API_KEYS_NAMED, {"id": key_id, "prefix": like}).fetchall()
    if not rows:
        raise KeyRevocationError(f"no API key {which!r}")
    if len(rows) > 1:
        raise KeyRevocationError(f"more than one API key starts with {which!r}: name it by its id")
    key = ApiKey(int(rows[0][0]), str(rows[0][1]), str(rows[0][2]), rows[0][3], bool(rows[0][4]))
    if key.revoked or conn.execute(queries.REVOKE_API_KEY, (key.key_id,)).rowcount == 0:
        raise KeyRevocationError(f"API key {key.key_id} ({key.name}) is revoked already")
    return key


def well_formed(secret: str) -> bool:
    """Whether ``secret`` has the form of a key (a check that needs no database)."""
    return secret.startswith(KEY_PREFIX)


def lookup(conn: Conn, secret: str) -> Principal | None:
    """The principal of a presented key, None when unknown or revoked."""
    if not well_formed(secret):
        return None
    row = conn.execute(queries.API_KEY_BY_HASH, (hash_key(secret),)).fetchone()
    return None if row is None else Principal(int(row[0]), str(row[1]), str(row[2]), row[3])


def audit(conn: Conn, principal: Principal, method: str, path: str, query: str, status: int) -> None:
    conn.execute(
        queries.INSERT_AUDIT,
        {
            "key": principal.key_id,
            "role": principal.role,
            "party": principal.party_id,
            "method": method,
            "path": path,
            "query": query,
            "status": status,
        },
    )

"""Stage 3 (faces): sign-in sessions: an API key exchanged for a random cookie token (only its SHA-256 is
stored), each with its CSRF token; a revoked key's sessions end with it."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from traceability.api import auth
from traceability.web import queries

Conn = psycopg.Connection[Any]

COOKIE = "cc_session"
# A working day and a half: an inspector signs in once a shift.
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    principal: auth.Principal
    csrf_token: str


def open_session(conn: Conn, secret: str) -> tuple[str, Session] | None:
    """Exchange an API key for a new session: (the cookie's token, the session), None for an unknown or
    revoked key. Expired sessions are swept on the way."""
    principal = auth.lookup(conn, secret)
    if principal is None:
        return None
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with conn.transaction():
        conn.execute(queries.DELETE_EXPIRED_SESSIONS)
        conn.execute(
            queries.INSERT_SESSION,
            {"hash": auth.hash_key(token), "key": principal.key_id, "csrf": csrf, "ttl": SESSION_TTL_S},
        )
    return token, Session(principal, csrf)


def session_of(conn: Conn, token: str | None) -> Session | None:
    """The live session of a cookie's token (None: none, expired, or its key revoked)."""
    if not token:
        return None
    row = conn.execute(queries.SESSION_BY_HASH, (auth.hash_key(token),)).fetchone()
    if row is None:
        return None
    return Session(auth.Principal(int(row[0]), str(row[1]), str(row[2]), row[4]), str(row[3]))


def close_session(conn: Conn, token: str | None) -> None:
    if token:
        conn.execute(queries.DELETE_SESSION, (auth.hash_key(token),))


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a form carries its session's CSRF token (compared in constant time)."""
    return presented is not None and hmac.compare_digest(session.csrf_token.encode(), presented.encode())

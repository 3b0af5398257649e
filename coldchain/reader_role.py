"""Composition root: the read-only database login Grafana (or any reporting tool) reads through.

The same grants as deploy/db/10-grafana-reader.sh gives the compose database at its first start: log
in, read every table and view of the public schema (also those later migrations create) except those
holding secrets (revoke_secrets_from, traceability/migrations/0017), write nothing, and no statement
longer than 30 s.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

READER_ROLE: Final = "grafana_reader"
PASSWORD_FILE: Final = "grafana-reader.password"  # noqa: S105 (a file name, not a password)


def reader_password(home: Path) -> str:
    """The reader's password for this data directory: made once, kept in a file only the owner reads."""
    path = home / PASSWORD_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(18)
    path.touch(mode=0o600)
    path.write_text(password + "\n", encoding="utf-8")
    return password


def ensure_reader(conninfo: str, password: str, role: str = READER_ROLE) -> None:
    """Create or update `role` as a read-only login on the database of `conninfo` (idempotent)."""
    ident = sql.Identifier(role)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
        conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(verb, ident, sql.Literal(password)))
        db = conn.execute("SELECT current_database()").fetchone()
        assert db is not None
        for stmt in (
            "ALTER ROLE {role} SET default_transaction_read_only = on",
            "ALTER ROLE {role} SET statement_timeout = '30s'",
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
        ):
            conn.execute(sql.SQL(stmt).format(role=ident, db=sql.Identifier(db[0])))
        # Key and session hashes, subscribers' secrets, the audit log: not for a reporting login.
        conn.execute("SELECT revoke_secrets_from(%s)", (role,))

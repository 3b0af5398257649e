"""Composition root: applies each stage's ordered SQL migrations and records them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg

# Stage order: each stage's tables may reference the stages upstream of it.
STAGES: tuple[str, ...] = ("registry", "gateway", "rules", "traceability", "dashboards")
TIMESCALE_SUFFIX = ".timescale.sql"
# The plain-PostgreSQL half of a pair: applied only where TimescaleDB is absent (the same relations,
# built another way, e.g. the rollups: tables here, continuous aggregates in the .timescale.sql file).
PLAIN_SUFFIX = ".plain.sql"


@dataclass(frozen=True, slots=True)
class Moved:
    """A migration recorded under `old_key` (with `old_checksum`, its file as it was) before it moved."""

    old_key: str
    old_checksum: str


# Migrations that moved to another stage, by their key now. A database that recorded the old key with
# the old file's checksum has applied them: its record takes the new key and checksum, nothing re-runs.
MOVED: dict[str, Moved] = {
    "registry/0001_registry.sql": Moved(
        "gateway/0001_registry.sql", "6e11b0367666464569809da934a127d79959799658ce819e23045e538a19ea6e"
    ),
}


@dataclass(frozen=True, slots=True)
class Migration:
    stage: str
    name: str
    sql: str

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"

    @property
    def timescale_only(self) -> bool:
        return self.name.endswith(TIMESCALE_SUFFIX)

    @property
    def plain_only(self) -> bool:
        return self.name.endswith(PLAIN_SUFFIX)

    @property
    def twin_key(self) -> str | None:
        """The key its plain/TimescaleDB twin has, if there is one (None: a portable migration)."""
        if self.plain_only:
            return self.key[: -len(PLAIN_SUFFIX)] + TIMESCALE_SUFFIX
        if self.timescale_only:
            return self.key[: -len(TIMESCALE_SUFFIX)] + PLAIN_SUFFIX
        return None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    """Every stage's migrations, stage by stage, each stage's files in name order."""
    found: list[Migration] = []
    for stage in STAGES:
        folder = resources.files(stage).joinpath("migrations")
        if not folder.is_dir():
            continue
        files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
        found.extend(Migration(stage, f.name, f.read_text(encoding="utf-8")) for f in files)
    return found


def _timescale_available(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error:
        return False
    return True


def migrate(conninfo: str, *, skipped: list[str] | None = None) -> list[str]:
    """Apply pending migrations; return the keys applied now. Idempotent and safe to run concurrently.
    The TimescaleDB-only migrations left out because the server has no timescaledb extension are added
    to ``skipped`` when one is given; a plain-PostgreSQL file (``*.plain.sql``) is applied only there."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # One migrator at a time, whichever process gets here first.
        conn.execute("SELECT pg_advisory_lock(hashtext('coldchain.migrate'))")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migration ("
                " key text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done: dict[str, str] = dict(conn.execute("SELECT key, checksum FROM schema_migration").fetchall())
            timescale: bool | None = None
            for m in discover():
                moved = MOVED.get(m.key)
                if m.key not in done and moved is not None and moved.old_key in done:
                    if done[moved.old_key] != moved.old_checksum:
                        raise MigrationError(f"migration {moved.old_key} changed after it was applied")
                    conn.execute(
                        "UPDATE schema_migration SET key = %s, checksum = %s WHERE key = %s",
                        (m.key, m.checksum, moved.old_key),
                    )
                    done[m.key] = m.checksum
                    del done[moved.old_key]
                if m.key in done:
                    if done[m.key] != m.checksum:
                        raise MigrationError(f"migration {m.key} changed after it was applied")
                    continue
                if m.twin_key is not None and m.twin_key in done:
                    # Its twin built these relations (a plain database that later gained TimescaleDB keeps
                    # its tables; the rules worker goes on keeping them): nothing to apply.
                    continue
                if m.timescale_only or m.plain_only:
                    if timescale is None:
                        timescale = _timescale_available(conn)
                    if m.plain_only and timescale:
                        continue  # its .timescale.sql twin builds the same relations
                    if m.timescale_only and not timescale:
                        if skipped is not None:
                            skipped.append(m.key)
                        continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migration (key, checksum) VALUES (%s, %s)", (m.key, m.checksum)
                    )
                applied_now.append(m.key)
                done[m.key] = m.checksum
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('coldchain.migrate'))")
    return applied_now


class MigrationError(RuntimeError):
    """A recorded migration no longer matches its file."""

"""Tests: migrations apply in stage order, are recorded, are idempotent, and moved ones keep their record."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from coldchain.migrate import MOVED, Migration, MigrationError, discover, migrate


def _timescale_available(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
            is not None
        )


def _expected_keys(url: str) -> set[str]:
    """What a fresh database records: the portable files, and the half of each pair its server takes."""
    timescale = _timescale_available(url)
    return {
        m.key
        for m in discover()
        if not (m.timescale_only and not timescale) and not (m.plain_only and timescale)
    }


def test_migrations_apply_once_and_are_recorded(empty_db_url: str) -> None:
    skipped: list[str] = []
    first = migrate(empty_db_url, skipped=skipped)
    assert first, "a fresh database gets every portable migration"
    timescale_only = {m.key for m in discover() if m.timescale_only}
    plain_only = {m.key for m in discover() if m.plain_only}
    assert timescale_only
    assert plain_only
    assert set(first) == _expected_keys(empty_db_url)
    if _timescale_available(empty_db_url):  # a TimescaleDB server applies its files, not their plain twins
        assert timescale_only <= set(first)
        assert set(first).isdisjoint(plain_only)
        assert skipped == []
    else:
        assert set(first).isdisjoint(timescale_only)
        assert plain_only <= set(first)
        paired = {m.twin_key for m in discover() if m.plain_only}
        assert set(skipped) == timescale_only - paired, (
            "every TimescaleDB-only file is reported as skipped, but for the twin of an applied plain file"
        )
    again: list[str] = []
    assert migrate(empty_db_url, skipped=again) == [], "a second run applies nothing"
    with psycopg.connect(empty_db_url) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM schema_migration ORDER BY applied_at, key")]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert set(keys) == set(first)
    assert {"reading", "ingest_batch", "dead_letter", "excursion", "chain_break", "ledger_event"} <= tables
    with psycopg.connect(empty_db_url) as conn:  # the rollups exist under one name on either server
        rollups = [
            r[0]
            for r in conn.execute(
                "SELECT to_regclass(n)::text FROM unnest(%s::text[]) n",
                (["reading_1m", "reading_1h", "reading_1d"],),
            )
        ]
    assert rollups == ["reading_1m", "reading_1h", "reading_1d"]


def test_stage_order_is_upstream_first() -> None:
    stages = [m.stage for m in discover()]
    order = ["registry", "gateway", "rules", "traceability", "dashboards"]
    assert stages == sorted(stages, key=order.index)
    assert stages[0] == "registry", "the registry is the bottom layer: every stage's tables may reference it"


# The registry's migration as the gateway stage shipped it, before it moved to the registry stage.
OLD_KEY = "gateway/0001_registry.sql"
OLD_HEADER = (
    "-- Stage 1 (ingest): registry of parties, locations, assets, devices, time-versioned mounts and lots.\n"
)


def _registry_migration() -> Migration:
    (m,) = [m for m in discover() if m.key == "registry/0001_registry.sql"]
    return m


def _old_registry_sql() -> str:
    return OLD_HEADER + _registry_migration().sql.split("\n", 1)[1]


def _record_old_layout(url: str, checksum: str) -> None:
    """A database migrated before the move: the registry's tables exist, recorded under the gateway's key."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE schema_migration (key text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(_old_registry_sql().encode())
        conn.execute("INSERT INTO schema_migration (key, checksum) VALUES (%s, %s)", (OLD_KEY, checksum))


def test_the_moved_registry_migration_is_the_file_the_gateway_shipped() -> None:
    old = _old_registry_sql()
    assert hashlib.sha256(old.encode()).hexdigest() == MOVED["registry/0001_registry.sql"].old_checksum
    assert MOVED["registry/0001_registry.sql"].old_key == OLD_KEY


def test_a_database_of_the_old_key_layout_migrates_cleanly(empty_db_url: str) -> None:
    _record_old_layout(empty_db_url, hashlib.sha256(_old_registry_sql().encode()).hexdigest())
    applied = migrate(empty_db_url)
    assert "registry/0001_registry.sql" not in applied, "the registry's tables are not created twice"
    assert "gateway/0002_telemetry.sql" in applied
    assert migrate(empty_db_url) == []
    with psycopg.connect(empty_db_url) as conn:
        recorded = dict(conn.execute("SELECT key, checksum FROM schema_migration").fetchall())
    assert OLD_KEY not in recorded
    assert recorded["registry/0001_registry.sql"] == _registry_migration().checksum
    assert set(recorded) == _expected_keys(empty_db_url), "the old database records what a fresh one does"


def test_a_fully_migrated_old_database_applies_nothing(empty_db_url: str) -> None:
    migrate(empty_db_url)
    old_checksum = MOVED["registry/0001_registry.sql"].old_checksum
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(
            "UPDATE schema_migration SET key = %s, checksum = %s WHERE key = 'registry/0001_registry.sql'",
            (OLD_KEY, old_checksum),
        )
    assert migrate(empty_db_url) == []
    with psycopg.connect(empty_db_url) as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM schema_migration")}
    assert "registry/0001_registry.sql" in keys
    assert OLD_KEY not in keys


def test_an_old_record_with_another_checksum_is_refused(empty_db_url: str) -> None:
    _record_old_layout(empty_db_url, "0" * 64)
    with pytest.raises(MigrationError, match=OLD_KEY):
        migrate(empty_db_url)


def test_a_plain_database_that_gains_timescaledb_keeps_its_rollup_tables(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The .timescale.sql half of a pair whose .plain.sql twin is recorded is never applied: it would
    create relations the twin made (a plain database whose server later gained the extension)."""
    migrate(empty_db_url)
    keys_found = {m.key for m in discover()}
    pairs = {m.key for m in discover() if m.twin_key in keys_found}
    assert pairs
    with psycopg.connect(empty_db_url) as conn:
        recorded = {r[0] for r in conn.execute("SELECT key FROM schema_migration")}
        for m in discover():  # the unpaired TimescaleDB files: pretend the extension applied them
            if m.timescale_only and m.key not in pairs and m.key not in recorded:
                conn.execute(
                    "INSERT INTO schema_migration (key, checksum) VALUES (%s, %s)", (m.key, m.checksum)
                )
    monkeypatch.setattr("coldchain.migrate._timescale_available", lambda _conn: True)
    assert migrate(empty_db_url) == [], "no half of a pair whose twin is recorded is applied"
    with psycopg.connect(empty_db_url) as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM schema_migration")}
    assert len(keys & pairs) == len(pairs) // 2, "one half of each pair, never both"

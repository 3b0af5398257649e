"""Tests: migrations apply in stage order, are recorded, and are idempotent."""

from __future__ import annotations

import psycopg

from coldchain.migrate import discover, migrate


def test_migrations_apply_once_and_are_recorded(empty_db_url: str) -> None:
    first = migrate(empty_db_url)
    assert first, "a fresh database gets every portable migration"
    assert all(not k.endswith(".timescale.sql") for k in first), "no timescaledb here: those are skipped"
    assert migrate(empty_db_url) == [], "a second run applies nothing"
    with psycopg.connect(empty_db_url) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM schema_migration ORDER BY applied_at, key")]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert set(keys) == set(first)
    assert {"reading", "ingest_batch", "dead_letter", "excursion", "chain_break", "ledger_event"} <= tables


def test_stage_order_is_upstream_first() -> None:
    stages = [m.stage for m in discover()]
    order = ["gateway", "rules", "traceability", "dashboards"]
    assert stages == sorted(stages, key=order.index)

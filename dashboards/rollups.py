"""Stage 4 (dashboards): brings the readings' rollups up to date with the raw rows committed now.

The rollup relations (reading_1m, reading_1h, reading_1d) and readings_binned() are the rules stage's
(rules/migrations/0007-0009): continuous aggregates on TimescaleDB, tables on plain PostgreSQL that the
rules worker keeps from a queue its trigger fills. `refresh` is for whoever wrote readings another way
(a generated fleet, a restore, a bulk import) or wants every bucket recomputed: on plain PostgreSQL it
drains the queue and rebuilds every bucket from the raw rows; on TimescaleDB it refreshes each aggregate
over all time, minute first, so the hour and day aggregates read fresh minutes.
"""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg import sql

ROLLUPS: Final = ("reading_1m", "reading_1h", "reading_1d")


def kept_by_timescale(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """True when the rollups are TimescaleDB continuous aggregates, False when they are tables."""
    row = conn.execute("SELECT relkind::text FROM pg_class WHERE oid = 'reading_1m'::regclass").fetchone()
    return row is not None and row[0] != "r"


def refresh(conninfo: str) -> None:
    """Recompute every rollup bucket from the raw rows committed now."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if kept_by_timescale(conn):
            # refresh_continuous_aggregate runs outside a transaction block: autocommit, one call each.
            for name in ROLLUPS:
                conn.execute(
                    sql.SQL("CALL refresh_continuous_aggregate({}, NULL, NULL)").format(sql.Literal(name))
                )
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('coldchain.rollups'))")
            conn.execute("DELETE FROM rollup_pending")
            conn.execute("TRUNCATE reading_1m, reading_1h, reading_1d")
            conn.execute(
                "SELECT rollup_rebuild(NULL, lo, hi)"
                " FROM (SELECT min(time) AS lo, max(time) AS hi FROM reading) r WHERE lo IS NOT NULL"
            )

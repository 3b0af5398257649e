"""Composition root: registers the demo world (registry rows, read points, the packed lot) in the database."""

from __future__ import annotations

import time
from dataclasses import asdict, fields, is_dataclass
from typing import Any

import psycopg
from psycopg import sql

# The scenario's device time starts this long before now, so every reading is in the past.
SCENARIO_LEAD_MS = 8 * 3600 * 1000
_MINUTE_MS = 60_000

# World attribute -> table, in foreign-key order.
_TABLES: tuple[tuple[str, str], ...] = (
    ("parties", "party"),
    ("locations", "location"),
    ("assets", "asset"),
    ("devices", "device"),
    ("mounts", "device_mount"),
    ("read_points", "read_point"),
    ("lots", "lot"),
)


def scenario_start_ms(now_ms: int | None = None) -> int:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return (now - SCENARIO_LEAD_MS) // _MINUTE_MS * _MINUTE_MS


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s AND is_generated = 'NEVER'"
        " AND identity_generation IS NULL ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _record(obj: Any) -> dict[str, Any]:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in fields(obj)}
    return dict(asdict(obj))


def insert_records(conn: psycopg.Connection[Any], table: str, records: list[Any], *, start_ms: int) -> int:
    """Insert dataclass records whose field names are the table's columns; existing keys are kept.

    Fields ending in `_offset_ms` are scenario-relative times and become the column without the suffix."""
    cols = set(_columns(conn, table))
    n = 0
    for obj in records:
        rec = _record(obj)
        row: dict[str, Any] = {}
        for key, value in rec.items():
            if key.endswith("_offset_ms") and key.removesuffix("_offset_ms") in cols:
                row[key.removesuffix("_offset_ms")] = None if value is None else _ts(start_ms + int(value))
            elif key in cols:
                row[key] = value
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        )
        n += conn.execute(query, list(row.values())).rowcount
    return n


def _ts(ms: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def seed_world(database_url: str, *, now_ms: int | None = None) -> int:
    """Register the demo world and append the shipper's packing event; return the scenario start, epoch ms."""
    from firmware_sim.scenario import demo_world
    from traceability.ledger.seed import append_packing

    world = demo_world()
    start_ms = scenario_start_ms(now_ms)
    with psycopg.connect(database_url) as conn:
        for attr, table in _TABLES:
            insert_records(conn, table, list(getattr(world, attr)), start_ms=start_ms)
        for packing in world.packings:
            append_packing(conn, packing, start_ms=start_ms)
        conn.commit()
    return start_ms

"""Tests: the registry's lookup indexes exist after migration (the GS1 keys of a lot)."""

from __future__ import annotations

from typing import Any

import psycopg


def test_lots_are_indexed_by_gtin_then_batch(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'lot' AND indexname = 'lot_gtin_batch'"
    ).fetchone()
    assert row is not None, "a GS1 scan's lookup (gtin, batch) would read the whole lot table"
    assert row[0].endswith("(gtin, batch)")

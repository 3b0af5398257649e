"""Tests: shared scaffolding of the rules-stage tests (registry rows, readings, outbox reads)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from ledger_support import stub_entry

import registry.store as registry
from registry.models import Asset, Device, Mount
from rules.models import LotVerdictPayload
from rules.worker import RulesWorker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


Conn = psycopg.Connection[tuple[Any, ...]]


def add_asset(conn: Conn, asset_id: str, kind: str, product_class: str | None, mode: str) -> None:
    registry.add_assets(conn, [Asset(asset_id, kind, asset_id, product_class=product_class, mode=mode)])


def add_device(conn: Conn, device_id: str, asset_id: str, kind: str = "temp_logger") -> None:
    registry.add_devices(conn, [Device(device_id, kind)])
    registry.add_mounts(conn, [Mount(device_id, asset_id, T0 - timedelta(days=1))])


def add_series(conn: Conn, device_id: str, channel: str) -> int:
    return registry.ensure_series(conn, [(device_id, channel)])[(device_id, channel)]


def add_readings(conn: Conn, series_id: int, points: Iterable[tuple[float, float | None]]) -> None:
    """Readings (minute, value) plus the gateway's ingest_batch row for them, in one transaction."""
    pts = list(points)
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, now())",
            [(at(m), series_id, v) for m, v in pts],
        )
        add_batch(conn, [series_id], min(m for m, _ in pts), max(m for m, _ in pts))


def add_batch(conn: Conn, series_ids: list[int], t_min: float, t_max: float) -> None:
    conn.execute(
        "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
        (series_ids, at(t_min), at(t_max)),
    )


def drain(worker: RulesWorker) -> None:
    """Run the worker until the ingest_batch queue is empty."""
    while worker.run_once():
        pass


LOT = "urn:epc:class:lgtin:6901234.012345.T1"


SSCC = "urn:epc:id:sscc:6901234.0000000009"


def custody(conn: Conn, asset: str, t0: float, t1: float | None) -> None:
    """A ledger event, the lot packed in the pallet, and the pallet's custody leg on the asset."""
    stub_entry(conn, 1, "e1", at(t0))
    conn.execute(
        "INSERT INTO containment (child_id, parent_id, t0, start_seq) VALUES (%s, %s, %s, 1)",
        (LOT, SSCC, at(-60)),
    )
    conn.execute(
        "INSERT INTO custody_leg (epc, asset_id, t_start, t_end, start_seq) VALUES (%s, %s, %s, %s, 1)",
        (SSCC, asset, at(t0), None if t1 is None else at(t1)),
    )


def lot_outbox(conn: Conn) -> list[LotVerdictPayload]:
    rows = conn.execute(
        "SELECT payload FROM verdict_outbox WHERE kind = 'lot_verdict' ORDER BY outbox_id"
    ).fetchall()
    return [msgspec.convert(r[0], LotVerdictPayload) for r in rows]

"""Tests: the demo scenario's lot ledgered, judged and signed, and its legs' readings read for reports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from trace_support import LOT, build_scenario

from rules.worker import RulesWorker
from traceability.ledger import checkpoint
from traceability.readings_model import AssetReadings, LegReadings, Marker, Point, SeriesPoints
from traceability.trace_model import Trace
from traceability.worker import LedgerWorker

# The legs' temperature series, every reading: a test's stand-in for the readings API's leg_readings.
_SERIES = """
SELECT s.series_id, s.device_id, s.channel, r.time, r.value
FROM device_mount m JOIN series s ON s.device_id = m.device_id
JOIN reading r ON r.series_id = s.series_id
WHERE m.asset_id = %(asset)s AND s.channel LIKE 'temp%%' AND r.time >= %(t0)s AND r.time <= %(t1)s
ORDER BY s.series_id, r.time
"""


def seeded_lot(db_url: str, home: Path) -> tuple[str, str]:
    """The scenario's lot ledgered, judged and signed: its id and the signer's public key (hex)."""
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).run_once()
    key_path = home / checkpoint.KEY_FILE
    assert checkpoint.CheckpointWorker(db_url, key_path).run_once() is not None
    return LOT, checkpoint.pinned_key(str(key_path))


def leg_readings(conn: psycopg.Connection[Any], found: Trace) -> list[LegReadings]:
    out = []
    for leg in found.custody:
        if leg.asset is None:
            out.append(LegReadings(leg.leg_id, None))
            continue
        t1 = leg.t_end or leg.t_start + timedelta(days=1)
        rows = conn.execute(_SERIES, {"asset": leg.asset.asset_id, "t0": leg.t_start, "t1": t1}).fetchall()
        series: dict[int, SeriesPoints] = {}
        for sid, device, channel, t, v in rows:
            s = series.setdefault(sid, SeriesPoints(sid, device, channel, 0, False, []))
            s.points.append(Point(t, float(v)))
        temps = [
            SeriesPoints(s.series_id, s.device_id, s.channel, len(s.points), False, s.points)
            for s in series.values()
        ]
        markers = [Marker(x.start_time, "door_open", x.device_id or "") for x in leg.excursions]
        out.append(
            LegReadings(
                leg.leg_id, AssetReadings(leg.asset.asset_id, leg.t_start, t1, 2000, temps, markers, [])
            )
        )
    return out

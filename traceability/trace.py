"""Stage 3, trace: a lot's chain of custody with the temperature evidence of every leg, as a JSON-ready dict.

A lot's temperature history is the telemetry of whatever enclosed it at each moment: the lot is inside
units (lot ⊂ SSCC ⊂ truck ...), each unit has custody legs, each leg an asset, and the temperature
series of the devices mounted on that asset during the leg are the leg's evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from traceability import queries

Conn = psycopg.Connection[Any]

VERDICT_PASS = "pass"  # noqa: S105 - a verdict, not a secret
VERDICT_EXCURSION = "excursion"
VERDICT_BROKEN = "broken"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(x: Any, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def trace_lot(conn: Conn, lot_id: str) -> dict[str, Any] | None:
    """The trace of one lot (see ``traceability/README.md`` for the shape), None if the lot is unknown."""
    lot_row = conn.execute(queries.LOT, (lot_id,)).fetchone()
    unit_rows = conn.execute(queries.UNITS_OF_LOT, {"lot": lot_id}).fetchall()
    if lot_row is None and not unit_rows:
        return None
    lot = None
    limits = None
    low = high = None
    if lot_row is not None:
        keys = ("lot_id", "gtin", "batch", "product_class", "description", "origin_country", "hs_code")
        lot = dict(zip((*keys, "bonded_status"), lot_row, strict=True))
        rc = conn.execute(queries.RULE_CLASS, (lot["product_class"],)).fetchone()
        if rc is not None:
            limits = dict(
                zip(
                    ("product_class", "pack_id", "pack_version", "low_c", "high_c", "source"), rc, strict=True
                )
            )
            low, high = rc[3], rc[4]

    units = [
        {
            "child_id": r[0],
            "unit_id": r[1],
            "t0": _iso(r[2]),
            "t1": _iso(r[3]),
            "depth": r[4],
            "asset_id": r[5],
        }
        for r in unit_rows
    ]
    goods = [lot_id, *sorted({u["unit_id"] for u in units if u["asset_id"] is None})]
    placements = [
        {
            "child_id": r[0],
            "location_id": r[1],
            "location_name": r[2],
            "t0": _iso(r[3]),
            "t1": _iso(r[4]),
            "start_seq": r[5],
            "end_seq": r[6],
        }
        for r in conn.execute(queries.PLACEMENTS, (goods,)).fetchall()
    ]

    legs = _legs(conn, lot_id, goods, low, high)
    events = [
        {
            "seq": r[0],
            "event_id": r[1],
            "type": r[2],
            "biz_step": r[3],
            "event_time": _iso(r[4]),
            "action": r[5],
        }
        for r in conn.execute(queries.EVENTS_OF_IDS, {"ids": goods}).fetchall()
    ]
    lot_breaks = [_break(r) for r in conn.execute(queries.LOT_BREAKS, (lot_id,)).fetchall()]

    if lot_breaks or any(leg["chain_breaks"] for leg in legs):
        verdict = VERDICT_BROKEN
    elif any(leg["excursions"] for leg in legs):
        verdict = VERDICT_EXCURSION
    else:
        verdict = VERDICT_PASS
    return {
        "lot_id": lot_id,
        "lot": lot,
        "limits": limits,
        "units": units,
        "placements": placements,
        "custody": legs,
        "lot_chain_breaks": lot_breaks,
        "events": events,
        "verdict": verdict,
    }


def _legs(
    conn: Conn, lot_id: str, goods: list[str], low: float | None, high: float | None
) -> list[dict[str, Any]]:
    rows = conn.execute(queries.LEGS_WITH_EVIDENCE, {"units": goods, "low": low, "high": high}).fetchall()
    legs: list[dict[str, Any]] = []
    for r in rows:
        legs.append(
            {
                "leg_id": r[0],
                "epc": r[1],
                "custodian": None if r[2] is None else {"party_id": r[2], "name": r[3]},
                "location": None if r[4] is None else {"location_id": r[4], "name": r[5]},
                "asset": None if r[6] is None else {"asset_id": r[6], "name": r[7], "kind": r[8]},
                "t_start": _iso(r[9]),
                "t_end": _iso(r[10]),
                "start_seq": r[11],
                "end_seq": r[12],
                "temperature": {
                    "readings": r[13],
                    "dropouts": r[14],
                    "min_c": _num(r[15]),
                    "max_c": _num(r[16]),
                    "mean_c": _num(r[17]),
                    "series": r[18],
                    "out_of_range_s": _num(r[19], 1),
                },
                "excursions": [],
                "chain_breaks": [],
            }
        )
    by_id = {leg["leg_id"]: leg for leg in legs}
    ids = list(by_id)
    for r in conn.execute(queries.EXCURSIONS_OF_LEGS, (ids,)).fetchall():
        by_id[r[0]]["excursions"].append(
            {
                "excursion_id": r[1],
                "series_id": r[2],
                "device_id": r[3],
                "channel": r[4],
                "rule_id": r[5],
                "pack_version": r[6],
                "start_time": _iso(r[7]),
                "end_time": _iso(r[8]),
                "open": r[9],
                "peak_c": _num(r[10]),
                "limit_low_c": r[11],
                "limit_high_c": r[12],
                "readings": r[13],
            }
        )
    for r in conn.execute(queries.BREAKS_OF_LEGS, {"lot": lot_id, "legs": ids}).fetchall():
        by_id[r[0]]["chain_breaks"].append(_break(r[1:]))
    return legs


def _break(r: Any) -> dict[str, Any]:
    return {
        "chain_break_id": r[0],
        "kind": r[1],
        "series_id": r[2],
        "rule_id": r[3],
        "pack_version": r[4],
        "start_time": _iso(r[5]),
        "end_time": _iso(r[6]),
        "allowed_s": r[7],
        "detail": r[8],
    }

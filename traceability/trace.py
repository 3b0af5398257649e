"""Stage 3, trace: a lot's chain of custody with the temperature evidence of every leg, as a JSON-ready dict.

A lot's temperature history is the telemetry of whatever enclosed it at each moment: the lot is inside
units (lot ⊂ SSCC ⊂ truck ...), each unit has custody legs, each leg an asset, and the temperature
series of the devices mounted on that asset during the leg are the leg's evidence.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import psycopg
from stdnum import iso6346

from traceability import queries

Conn = psycopg.Connection[Any]

VERDICT_PASS = "pass"  # noqa: S105 - a verdict, not a secret
VERDICT_EXCURSION = "excursion"
VERDICT_BROKEN = "broken"
# Mean kinetic temperature: ΔH/R = 10 000 K (DOMAIN.md; USP <1079.2>), equal weight per reading.
MKT_DH_R_K = 10_000.0
# Allowed recording intervals: storage 30 min (GSP), transport 10 min (GB 29753-2013).
STORAGE_GAP = "30 minutes"
TRANSPORT_GAP = "10 minutes"
STORAGE_GAP_S, TRANSPORT_GAP_S = 1800.0, 600.0
HANDOFF_RULE = "trace/handoff-without-evidence"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(x: Any, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def trace_lot(conn: Conn, lot_id: str) -> dict[str, Any] | None:
    """The trace of one lot (see ``traceability/README.md`` for the shape), None if the lot is unknown."""
    lot_row = conn.execute(queries.LOT, (lot_id,)).fetchone()
    unit_rows = conn.execute(queries.UNITS_OF_LOT, {"lot": lot_id}).fetchall()
    if (
        lot_row is None
        and not unit_rows
        and conn.execute(queries.SUBJECT_KNOWN, (lot_id,)).fetchone() is None
    ):
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
            "error_declaration": bool(r[6]),
        }
        for r in conn.execute(queries.EVENTS_OF_IDS, {"ids": goods}).fetchall()
    ]
    declared = {e["event_id"] for e in events if e["error_declaration"]}
    for e in events:
        e["declared_wrong"] = e["event_id"] in declared
    lot_breaks = [_break(r) for r in conn.execute(queries.LOT_BREAKS, (lot_id,)).fetchall()]

    if lot_breaks or any(leg["chain_breaks"] for leg in legs):
        verdict = VERDICT_BROKEN
    elif any(leg["excursions"] for leg in legs):
        verdict = VERDICT_EXCURSION
    else:
        verdict = VERDICT_PASS
    bonded = [
        {"status": r[0], "line": r[1], "seq": r[2], "event_time": _iso(r[3])}
        for r in conn.execute(queries.BONDED_OF_LOT, (lot_id,)).fetchall()
    ]
    if lot is not None and bonded:
        lot["bonded_status"] = bonded[-1]["status"]
    return {
        "lot_id": lot_id,
        "lot": lot,
        "bonded": bonded,
        "backward": _backward(conn, lot_id, lot, goods),
        "forward": _forward(conn, lot_id, goods, [e["seq"] for e in events]),
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
    params = {
        "units": goods,
        "low": low,
        "high": high,
        "mkt_dh_r": MKT_DH_R_K,
        "storage_gap": STORAGE_GAP,
        "transport_gap": TRANSPORT_GAP,
    }
    rows = conn.execute(queries.LEGS_WITH_EVIDENCE, params).fetchall()
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
                    "mkt_c": _mkt(r[20]),
                    "max_gap_s": _num(r[21], 1),
                    "gaps": r[22],
                    "allowed_gap_s": STORAGE_GAP_S if r[25] == "storage" else TRANSPORT_GAP_S,
                    "first_reading": _iso(r[23]),
                    "last_reading": _iso(r[24]),
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
    for leg in legs:
        # A custody leg that was handed on (closed) with no temperature reading at all: nobody can show
        # the goods stayed cold between the two handoffs.
        if leg["t_end"] is not None and leg["temperature"]["readings"] == 0:
            leg["chain_breaks"].append(
                {
                    "chain_break_id": None,
                    "kind": "handoff",
                    "series_id": None,
                    "rule_id": HANDOFF_RULE,
                    "pack_version": "trace",
                    "start_time": leg["t_start"],
                    "end_time": leg["t_end"],
                    "allowed_s": 0.0,
                    "detail": {"reason": "custody leg handed on with no temperature evidence"},
                }
            )
    return legs


def _mkt(mean_term: Any) -> float | None:
    if mean_term is None or mean_term <= 0:
        return None
    return round(MKT_DH_R_K / -math.log(float(mean_term)) - 273.15, 3)


def _backward(conn: Conn, lot_id: str, lot: dict[str, Any] | None, goods: list[str]) -> dict[str, Any]:
    first = conn.execute(queries.FIRST_EVENT_OF_IDS, (goods,)).fetchone()
    return {
        "origin": {
            "country": None if lot is None else lot.get("origin_country"),
            "first_event": None
            if first is None
            else {
                "seq": first[0],
                "event_time": _iso(first[1]),
                "biz_step": first[2],
                "read_point": first[3],
                "biz_location": first[4],
            },
        },
        "inputs": [
            {"id": r[0], "output_id": r[1], "seq": r[2], "event_time": _iso(r[3]), "depth": r[4]}
            for r in conn.execute(queries.LINEAGE_UP, {"id": lot_id}).fetchall()
        ],
    }


def _forward(conn: Conn, lot_id: str, goods: list[str], seqs: list[int]) -> dict[str, Any]:
    outputs = [
        {"id": r[1], "input_id": r[0], "seq": r[2], "event_time": _iso(r[3]), "depth": r[4]}
        for r in conn.execute(queries.LINEAGE_DOWN, {"id": lot_id}).fetchall()
    ]
    shipments = []
    for r in conn.execute(queries.SHIPMENTS_OF_SEQS, (seqs,)).fetchall():
        shipments.append(
            {
                "seq": r[0],
                "event_time": _iso(r[1]),
                "biz_step": r[2],
                "biz_transactions": [str(b.get("bizTransaction")) for b in (r[3] or [])],
                "destinations": [str(d.get("destination")) for d in (r[4] or [])],
                "read_point": r[5],
                "transport_mode": r[6] or r[7],
            }
        )
    units = goods + [o["id"] for o in outputs]
    recipients = [
        {"party_id": r[0], "name": r[1], "role": r[2], "since": _iso(r[3])}
        for r in conn.execute(queries.CUSTODIANS_OF_UNITS, (units,)).fetchall()
    ]
    recipients.sort(key=lambda p: (p["since"] or "", p["party_id"]))
    return {"outputs": outputs, "shipments": shipments, "recipients": recipients}


def resolve(conn: Conn, ident: str) -> tuple[str, list[str]]:
    """What kind of identifier ``ident`` is, and the lots it leads to (sorted)."""
    lots = [r[0] for r in conn.execute(queries.LOTS_BY_ID_OR_BATCH, {"id": ident}).fetchall()]
    if lots:
        return ("lot", lots)
    if ident.startswith("urn:epc:class:"):
        return ("epc_class", _lots_under(conn, [ident]))
    container = ident.removeprefix("urn:epc:id:bic:")
    if iso6346.is_valid(container):
        epc = "urn:epc:id:bic:" + iso6346.compact(container)
        return ("container", _lots_under(conn, [epc]))
    if ident.startswith("urn:epc:id:"):
        found = _lots_under(conn, [ident])
        if not found:  # an item (SGTIN) or unit packed in something: the lots that travelled with it
            above = [r[0] for r in conn.execute(queries.UNITS_ABOVE, {"id": ident}).fetchall()]
            found = _lots_under(conn, above) if above else []
        return ("epc", found)
    asset = conn.execute(queries.ASSET_EPC_BY_ID, (ident, ident)).fetchone()
    if asset is not None and asset[0]:
        return ("asset", _lots_under(conn, [asset[0]]))
    seqs = [r[0] for r in conn.execute(queries.LINKED_TRANSACTIONS, {"id": ident}).fetchall()]
    if seqs:
        subjects = [r[0] for r in conn.execute(queries.SUBJECTS_OF_SEQS, (seqs,)).fetchall()]
        return ("document", _lots_under(conn, subjects))
    return ("unknown", [])


def _lots_under(conn: Conn, roots: list[str]) -> list[str]:
    return [r[0] for r in conn.execute(queries.LOTS_UNDER, {"roots": roots}).fetchall()]


def trace(conn: Conn, ident: str) -> dict[str, Any] | None:
    """The trace of whatever ``ident`` names (lot id or code, EPC, container number, B/L or waybill):
    the first lot it leads to, traced, with ``query`` = {id, kind, lots} listing every lot it leads to."""
    kind, lots = resolve(conn, ident)
    if not lots:
        found = trace_lot(conn, ident)  # a lot known only from the ledger (no registry row)
        kind = "lot"
    else:
        found = trace_lot(conn, lots[0])
    if found is None:
        return None
    found["query"] = {"id": ident, "kind": kind, "lots": lots or [ident]}
    return found


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

"""Stage 3, scorecards: the shipment-side atoms: track matching, trajectory anomalies, lots without a
break, lots covered on every leg, and handoffs with evidence on both sides."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from traceability.scorecards import queries
from traceability.scorecards.atoms import (
    Atom,
    Conn,
    Mount,
    Subjects,
    covering,
    matching,
    subjects_of,
)
from traceability.scorecards.model import Exemption
from traceability.scorecards.period import Period
from traceability.scorecards.weights import Weights
from traceability.scorecards.windows import HOUR, Span, hour_window

_Checks = dict[str, list[Any]]
_ASSETS_PER_QUERY = 250


def _check(checks: _Checks, asset: str, a: datetime, b: datetime) -> int:
    pid = len(checks["pid"])
    for k, v in (("pid", pid), ("asset", asset), ("a", a), ("b", b)):
        checks[k].append(v)
    return pid


def _new_checks() -> _Checks:
    return {"pid": [], "asset": [], "a": [], "b": []}


def shipment_atoms(
    conn: Conn, period: Period, exs: Sequence[Exemption], w: Weights, mounts: Sequence[Mount]
) -> list[Atom]:
    """Atoms of the shipments of the period (planned start, else registration, inside it)."""
    ships = conn.execute(queries.SHIPMENTS, {"start": period.start, "end": period.end}).fetchall()
    if not ships:
        return []
    legs: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(queries.LEGS, ([s[0] for s in ships],)).fetchall():
        legs.setdefault(row[0], []).append(row)
    lots = conn.execute(queries.LOTS, ([s[0] for s in ships],)).fetchall()
    with_lots = {row[0] for row in lots}  # only their legs' evidence is asked for
    mounts_of: dict[str, list[Mount]] = {}
    for m in mounts:
        mounts_of.setdefault(m.asset_id, []).append(m)
    subj_of: dict[str, Subjects] = {}
    ref_of: dict[str, datetime] = {}
    atoms: list[Atom] = []
    positions = _new_checks()
    transit_parts: dict[int, str] = {}
    transit: dict[str, tuple[Span | None, Atom | None]] = {}
    evidence = _new_checks()
    leg_checks: dict[str, list[tuple[int, int | None]]] = {}  # shipment -> (leg_no, evidence check id)
    handoffs: list[tuple[Atom, int | None, int | None]] = []
    for (
        sid,
        shipper,
        origin,
        dest,
        p_start,
        p_end,
        t_ref,
        assets,
        carriers,
        o_fenced,
        d_fenced,
        exit_at,
        enter_at,
    ) in ships:
        window = (p_start, p_end) if p_start and p_end else None
        devices = [
            m.device_id
            for asset in assets
            for m in mounts_of.get(asset, ())
            if window is None or (m.window[0] < window[1] and m.window[1] > window[0])
        ]
        subj = subjects_of(carrier=carriers, asset=assets, device=devices, site=origin, shipper=shipper)
        subj_of[sid], ref_of[sid] = subj, t_ref
        base = {"shipment_id": sid, "origin": origin, "destination": dest, "planned_start": p_start,
                "planned_end": p_end}  # fmt: skip

        # Track matching: out of the origin's fence and into the destination's within the planned window.
        used = covering(exs, matching(exs, "track_matching", subj), t_ref)
        if used:
            atoms.append(Atom("track_matching", 0, 0, subj, {**base, "exempt": True}, exemptions=used))
        elif not (origin and dest and o_fenced and d_fenced):
            atoms.append(
                Atom("track_matching", 0, 0, subj, {**base, "matched": None, "reason": "no_geofence"})
            )
        else:
            ok = exit_at is not None and enter_at is not None and exit_at <= enter_at
            reason = None if ok else ("never_left_origin" if exit_at is None else "never_reached_destination")
            row = {**base, "left_origin_at": exit_at, "reached_destination_at": enter_at, "matched": ok,
                   "reason": reason}  # fmt: skip
            atoms.append(Atom("track_matching", float(ok), 1.0, subj, row))

        # Trajectory anomalies over the transit: from leaving the origin (else the planned start) to
        # reaching the destination (else the planned end), inside the period, at whole hours.
        t_a, t_b = exit_at or p_start, enter_at or p_end
        span = None
        if t_a is not None and t_b is not None:
            span = hour_window((max(t_a, period.start), min(t_b, period.end)))
        used = covering(exs, matching(exs, "trajectory_anomalies", subj), t_ref)
        if used:
            atoms.append(Atom("trajectory_anomalies", 0, 0, subj, {**base, "exempt": True}, exemptions=used))
            transit[sid] = (None, None)
        elif span is None:
            transit[sid] = (None, None)
        else:
            hours = (span[1] - span[0]) / HOUR
            atom = Atom("trajectory_anomalies", 0.0, hours, subj, {**base, "transit_from": span[0],
                        "transit_to": span[1], "hours": hours})  # fmt: skip
            atoms.append(atom)
            transit[sid] = (span, atom)
            for leg in legs.get(sid, []):
                asset, la, lb = leg[4], leg[5] or span[0], leg[6] or span[1]
                a, b = max(la, span[0]), min(lb, span[1])
                if asset and b > a:
                    transit_parts[_check(positions, asset, a, b)] = sid

        # Evidence of each leg (coverage of the lots it carries) and of both sides of each handoff.
        checks: list[tuple[int, int | None]] = []
        shipment_legs = legs.get(sid, [])
        for leg in shipment_legs if sid in with_lots else ():
            asset, la, lb = leg[4], leg[5], leg[6]
            checks.append(
                (leg[1], _check(evidence, asset, la, lb) if asset and la and lb and lb > la else None)
            )
        leg_checks[sid] = checks
        used = covering(exs, matching(exs, "handover", subj), t_ref)
        for prev, nxt in itertools.pairwise(shipment_legs):
            at = prev[6] or nxt[5]
            row = {**base, "from_leg": prev[1], "to_leg": nxt[1], "at": at, "from_asset": prev[4],
                   "to_asset": nxt[4]}  # fmt: skip
            if used:
                atoms.append(Atom("handover", 0, 0, subj, {**row, "exempt": True}, exemptions=used))
                continue
            out_id = _check(evidence, prev[4], at - HOUR, at) if prev[4] and at else None
            in_id = _check(evidence, nxt[4], at, at + HOUR) if nxt[4] and at else None
            atom = Atom("handover", 0.0, 1.0, subj, row)
            atoms.append(atom)
            handoffs.append((atom, out_id, in_id))

    _judge_positions(conn, positions, transit_parts, transit, w)
    with_evidence = set()
    if evidence["pid"]:
        with_evidence = {int(r[0]) for r in conn.execute(queries.EVIDENCE, evidence).fetchall()}
    for atom, out_id, in_id in handoffs:
        before, after = out_id in with_evidence, in_id in with_evidence
        atom.numerator = float(before and after)
        atom.row.update(evidence_before=before, evidence_after=after)
    atoms += _lot_atoms(lots, subj_of, ref_of, leg_checks, with_evidence, exs)
    return atoms


def _judge_positions(
    conn: Conn,
    positions: _Checks,
    parts: dict[int, str],
    transit: dict[str, tuple[Span | None, Atom | None]],
    w: Weights,
) -> None:
    found: dict[str, list[dict[str, Any]]] = {}
    limits = {
        "reach_m": w.max_speed_kmh * 1000.0,
        "still_m": w.still_m,
        "still_hours": w.still_hours,
        "silent_hours": w.silent_hours,
    }
    # Each asset's track is read once, with every part of it: the parts of a batch of assets at a time,
    # so the query's hourly rows stay in memory.
    by_asset: dict[str, list[int]] = {}
    for i, asset in enumerate(positions["asset"]):
        by_asset.setdefault(asset, []).append(i)
    assets = list(by_asset)
    for lo in range(0, len(assets), _ASSETS_PER_QUERY):
        rows = [i for asset in assets[lo : lo + _ASSETS_PER_QUERY] for i in by_asset[asset]]
        params = {k: [v[i] for i in rows] for k, v in positions.items()} | limits
        for pid, kind, t_from, t_to, figure in conn.execute(queries.TRAJECTORY_ANOMALIES, params).fetchall():
            found.setdefault(parts[pid], []).append(
                {"kind": kind, "from": t_from, "to": t_to, "figure": figure}
            )
    judged = set(parts.values())
    for sid, (span, atom) in transit.items():
        if span is None or atom is None:
            continue
        mine = found.get(sid, [])
        if sid not in judged:  # no leg with an asset: silent all along
            hours = (span[1] - span[0]) / HOUR
            if hours >= w.silent_hours:
                mine = [{"kind": "silence", "from": span[0], "to": span[1], "figure": hours}]
        atom.numerator = float(len(mine))
        counts: dict[str, int] = {}
        for f in mine:
            counts[f["kind"]] = counts.get(f["kind"], 0) + 1
        atom.row.update(anomalies=len(mine), by_kind=counts, found=mine)


def _lot_atoms(
    rows: list[tuple[Any, ...]],
    subj_of: dict[str, Subjects],
    ref_of: dict[str, datetime],
    leg_checks: dict[str, list[tuple[int, int | None]]],
    with_evidence: set[int],
    exs: Sequence[Exemption],
) -> list[Atom]:
    lots: dict[str, dict[str, Any]] = {}
    for sid, lot_id, owner, verdict in rows:
        entry = lots.setdefault(lot_id, {"owner": owner, "verdict": verdict, "shipments": []})
        entry["shipments"].append(sid)
    atoms: list[Atom] = []
    for lot_id, entry in lots.items():
        ships = entry["shipments"]
        kinds: dict[str, set[str]] = {}
        for sid in ships:
            for kind, ids in subj_of[sid].items():
                if kind != "shipper":
                    kinds.setdefault(kind, set()).update(ids)
        shipper = (
            {entry["owner"]}
            if entry["owner"]
            else set().union(*(subj_of[s].get("shipper", set()) for s in ships))
        )
        if shipper:
            kinds["shipper"] = set(shipper)
        subj = {k: frozenset(v) for k, v in kinds.items()}
        ref = min(ref_of[s] for s in ships)
        base = {"lot_id": lot_id, "shipments": ships}
        used = covering(exs, matching(exs, "lots_unbroken", subj), ref)
        if used:
            atoms.append(Atom("lots_unbroken", 0, 0, subj, {**base, "exempt": True}, exemptions=used))
        else:
            broken = entry["verdict"] == "broken"
            atoms.append(
                Atom("lots_unbroken", float(not broken), 1.0, subj, {**base, "verdict": entry["verdict"]})
            )
        used = covering(exs, matching(exs, "coverage_lots", subj), ref)
        legs = [(sid, leg_no, cid) for sid in ships for leg_no, cid in leg_checks.get(sid, [])]
        uncovered = [
            f"{sid}#{leg_no}" for sid, leg_no, cid in legs if cid is None or cid not in with_evidence
        ]
        if used:
            atoms.append(Atom("coverage_lots", 0, 0, subj, {**base, "exempt": True}, exemptions=used))
        else:
            ok = bool(legs) and not uncovered
            row = {**base, "legs": len(legs), "legs_without_evidence": uncovered}
            atoms.append(Atom("coverage_lots", float(ok), 1.0, subj, row))
    return atoms

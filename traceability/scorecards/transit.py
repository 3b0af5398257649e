"""Stage 3, scorecards: the shipment-side atoms: track matching, trajectory anomalies, lots without a
break, lots covered on every leg, and handoffs with evidence on both sides, judged in SQL in one statement
(queries.shipment_atoms): summed per subject for a scoreboard, row by row for a drill-down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traceability.scorecards import queries
from traceability.scorecards.atoms import Atom, Conn
from traceability.scorecards.model import Exemption
from traceability.scorecards.period import Period
from traceability.scorecards.weights import Weights


def thresholds(w: Weights) -> str:
    """The trajectory thresholds of ``w`` as a fact records them: a fact judged under others is not read."""
    return f"{w.max_speed_kmh!r}:{w.still_m!r}:{w.still_hours!r}:{w.silent_hours!r}"


def statement_params(
    period: Period,
    exs: Sequence[Exemption],
    w: Weights,
    only: Sequence[str] | None,
    *,
    facts: bool = True,
    judge: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The shipment statement's parameters: the period, the subjects kept (``only``; None: all), whether
    facts are read, the shipments judged into facts (``judge``; None: a board or a drill-down), the
    exemptions and the trajectory thresholds."""
    return {
        "start": period.start,
        "end": period.end,
        "only": list(only) if only is not None else None,
        "judge": list(judge) if judge is not None else None,
        "facts": facts,
        "thresholds": thresholds(w),
        "x_i": list(range(len(exs))),
        "x_ind": [e.indicator for e in exs],
        "x_kind": [e.subject_kind for e in exs],
        "x_id": [e.subject_id for e in exs],
        "x_a": [e.start for e in exs],
        "x_b": [e.end for e in exs],
        "reach_m": w.max_speed_kmh * 1000.0,
        "still_m": w.still_m,
        "still_hours": w.still_hours,
        "silent_hours": w.silent_hours,
    }


def _used(listed: str | None) -> list[int]:
    """The exemptions a board row used: the indexes its atoms listed (comma-separated), each once."""
    return sorted({int(i) for i in listed.split(",")}) if listed else []


def shipment_atoms(
    conn: Conn,
    period: Period,
    exs: Sequence[Exemption],
    w: Weights,
    subject: str,
    only: Sequence[str] | None = None,
    *,
    facts: bool = True,
) -> list[Atom]:
    """The shipment-side atoms of the period for subjects of kind ``subject``. With ``only`` None: one
    atom per indicator and subject id, its numerator and denominator the sums over that subject's rows
    (a scoreboard's figures). With ``only``: every row of the subjects named, with what it shows.
    ``facts``: read the shipments' facts where they hold (shipment_fact); False judges every shipment
    here (the same figures, at the cost of judging)."""
    params = statement_params(period, exs, w, only, facts=facts)

    def read(part: str) -> list[tuple[Any, ...]]:
        row = conn.execute(queries.HASH_JOINS).fetchone()
        try:
            return conn.execute(queries.shipment_atoms(subject, part), params).fetchall()
        finally:
            conn.execute(queries.RESTORE_JOINS, (row[0], row[1]) if row else ("on", "on"))

    if only is None:
        return [
            Atom(ind, float(num), float(den), {subject: frozenset((sid,))}, {}, exemptions=_used(used))
            for ind, sid, num, den, _n, used in read("board")
        ]
    atoms: list[Atom] = []
    for (
        ind, sid, lot_id, num, den, used, ids, what, n, hours, from_leg, to_leg, at, from_asset, to_asset,
        before, after, origin, dest, p_start, p_end, exit_at, enter_at, span_a, span_b, shipments, verdict,
        uncovered, f_kind, f_from, f_to, f_figure,
    ) in read("drill"):  # fmt: skip
        if lot_id is not None:
            row: dict[str, Any] = {"lot_id": lot_id, "shipments": list(shipments)}
        else:
            row = {"shipment_id": sid, "origin": origin, "destination": dest, "planned_start": p_start,
                   "planned_end": p_end}  # fmt: skip
        if ind == "handover":
            row.update(from_leg=from_leg, to_leg=to_leg, at=at, from_asset=from_asset, to_asset=to_asset)
        if what == "exempt":
            row["exempt"] = True
        elif ind == "track_matching":
            if what == "no_geofence":
                row.update(matched=None, reason="no_geofence")
            else:
                row.update(left_origin_at=exit_at, reached_destination_at=enter_at, matched=what == "matched",
                           reason=None if what == "matched" else what)  # fmt: skip
        elif ind == "trajectory_anomalies":
            mine = [
                {"kind": k, "from": a, "to": b, "figure": f}
                for k, a, b, f in zip(f_kind or (), f_from or (), f_to or (), f_figure or (), strict=True)
            ]
            if what == "unjudged" and hours >= w.silent_hours:  # no leg with an asset: silent all along
                mine = [{"kind": "silence", "from": span_a, "to": span_b, "figure": hours}]
            counts: dict[str, int] = {}
            for f in mine:
                counts[f["kind"]] = counts.get(f["kind"], 0) + 1
            row.update(transit_from=span_a, transit_to=span_b, hours=hours, anomalies=len(mine),
                       by_kind=counts, found=mine)  # fmt: skip
        elif ind == "handover":
            row.update(evidence_before=before, evidence_after=after)
        elif ind == "lots_unbroken":
            row["verdict"] = verdict
        elif ind == "coverage_lots":
            row.update(legs=n, legs_without_evidence=list(uncovered))
        subj = {subject: frozenset(i for i in ids if i)} if ids else {}
        atoms.append(Atom(ind, float(num), float(den), subj, row, exemptions=list(used)))
    return atoms

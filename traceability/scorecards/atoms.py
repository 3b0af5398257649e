"""Stage 3, scorecards: the rows behind every indicator (atoms), each with its numerator, denominator and
the subjects it counts for, read from the rollups, the gateway's day counters and the registry."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import psycopg

from traceability.scorecards import queries
from traceability.scorecards.model import Exemption
from traceability.scorecards.period import Period
from traceability.scorecards.weights import LAG_COLUMNS, Weights
from traceability.scorecards.windows import (
    Span,
    hour_window,
    rollup_parts,
    seconds,
    subtract,
    whole_days,
)

Conn = psycopg.Connection[Any]
Subjects = dict[str, frozenset[str]]
_LAG_INDEX = {"lag_le_60s": 1, "lag_le_300s": 2, "lag_le_3600s": 3}


@dataclass(slots=True)
class Atom:
    """One row behind one indicator: what it adds to the numerator and denominator of every subject it
    counts for. ``value``: the figure a median is taken of (alarm acknowledgement seconds)."""

    indicator: str
    numerator: float
    denominator: float
    subjects: Subjects
    row: dict[str, Any]
    value: float | None = None
    exemptions: list[int] = field(default_factory=list)  # indexes into the period's exemption list


def subjects_of(**ids: Iterable[str | None] | str | None) -> Subjects:
    out: Subjects = {}
    for kind, v in ids.items():
        if v is None or isinstance(v, str):
            if v:
                out[kind] = frozenset((v,))
            continue
        found = frozenset(filter(None, v))
        if found:
            out[kind] = found
    return out


def matching(exs: Sequence[Exemption], indicator: str, subjects: Subjects) -> list[int]:
    if not exs:  # the common case, asked once per atom
        return []
    return [
        i
        for i, e in enumerate(exs)
        if e.indicator in (indicator, "*") and e.subject_id in subjects.get(e.subject_kind, frozenset())
    ]


def covering(exs: Sequence[Exemption], idx: list[int], at: datetime) -> list[int]:
    if not idx:
        return []
    return [i for i in idx if exs[i].start <= at < exs[i].end]


def load_exemptions(conn: Conn, period: Period) -> list[Exemption]:
    rows = conn.execute(queries.EXEMPTIONS, {"start": period.start, "end": period.end}).fetchall()
    return [Exemption(*r) for r in rows]


@dataclass(slots=True)
class Mount:
    device_id: str
    asset_id: str
    window: Span
    allowed_s: float
    tmode: str
    low_c: float | None
    high_c: float | None
    carrier_id: str | None
    site_id: str | None
    calibration_due: date | None
    temp_series: int

    def subjects(self) -> Subjects:
        return subjects_of(
            device=self.device_id, asset=self.asset_id, carrier=self.carrier_id, site=self.site_id
        )


class _Parts:
    """Rollup parts queued for one query: (device, src, a, b) plus extra columns, each with an id."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {"pid": [], "dev": [], "src": [], "a": [], "b": []}
        self.owner: list[int] = []

    def add(self, owner: int, device: str, spans: Iterable[Span], **extra: Any) -> None:
        for span in spans:
            for src, a, b in rollup_parts(span):
                self.cols["pid"].append(len(self.owner))
                self.cols["dev"].append(device)
                self.cols["src"].append(src)
                self.cols["a"].append(a)
                self.cols["b"].append(b)
                for k, v in extra.items():
                    self.cols.setdefault(k, []).append(v)
                self.owner.append(owner)


def _hour_spans(window: Span, holes: Iterable[Span]) -> list[Span]:
    out = []
    for piece in subtract(window, holes):
        hw = hour_window(piece)
        if hw is not None:
            out.append(hw)
    return out


def mount_atoms(
    conn: Conn, period: Period, exs: Sequence[Exemption], w: Weights
) -> tuple[list[Atom], list[Mount]]:
    """Completeness, timeliness and temperature compliance per mount window in the period."""
    rows = conn.execute(queries.MOUNT_WINDOWS, {"start": period.start, "end": period.end}).fetchall()
    mounts = [
        Mount(r[0], r[1], (r[3], r[4]), float(r[5]), str(r[6]), r[7], r[8], r[10], r[11], r[12], int(r[14]))
        for r in rows
        if r[4] > r[3]
    ]
    atoms: list[Atom] = []
    reading_parts, range_parts = _Parts(), _Parts()
    pending: list[tuple[str, Mount, Atom]] = []
    for m in mounts:
        subj = m.subjects()
        for ind in ("completeness", "timeliness", "temp_compliance"):
            if ind == "temp_compliance" and m.low_c is None and m.high_c is None:
                continue  # an asset with no class (or a class with no limits): nothing to comply with
            idx = matching(exs, ind, subj)
            holes = [(exs[i].start, exs[i].end) for i in idx]
            full = hour_window(m.window)
            spans = _hour_spans(m.window, holes)
            kept_s = seconds(spans)
            exempt_s = seconds([full]) - kept_s if full else 0.0
            used = [i for i in idx if exs[i].start < m.window[1] and exs[i].end > m.window[0]]
            row: dict[str, Any] = {
                "device_id": m.device_id,
                "asset_id": m.asset_id,
                "from": m.window[0],
                "to": m.window[1],
                "judged_s": kept_s,
                "exempt_s": exempt_s,
            }
            atom = Atom(ind, 0.0, 0.0, subj, row, exemptions=used)
            owner = len(pending)
            pending.append((ind, m, atom))
            if ind == "temp_compliance":
                range_parts.add(owner, m.device_id, spans, low=m.low_c, high=m.high_c)
            else:
                reading_parts.add(owner, m.device_id, spans)
            if ind == "completeness":
                expected = math.floor(kept_s / m.allowed_s) * max(m.temp_series, 1) if m.allowed_s > 0 else 0
                row.update(interval_s=m.allowed_s, temp_series=max(m.temp_series, 1), expected=expected)
                atom.denominator = float(expected)
            if ind == "timeliness":
                minutes = w.timeliness_minutes.get(m.tmode, w.timeliness_minutes["transport"])
                row.update(mode=m.tmode, within_min=minutes)
            if ind == "temp_compliance":
                row.update(low_c=m.low_c, high_c=m.high_c)
    sums: dict[int, list[float]] = {}
    if reading_parts.owner:
        for pid, n, l60, l300, l3600 in conn.execute(queries.PART_READINGS, reading_parts.cols).fetchall():
            acc = sums.setdefault(reading_parts.owner[pid], [0.0, 0.0, 0.0, 0.0])
            for k, v in enumerate((n, l60, l300, l3600)):
                acc[k] += float(v or 0)
    ranges: dict[int, list[float]] = {}
    if range_parts.owner:
        for pid, mon, ok in conn.execute(queries.PART_IN_RANGE, range_parts.cols).fetchall():
            acc = ranges.setdefault(range_parts.owner[pid], [0.0, 0.0])
            acc[0] += float(mon or 0)
            acc[1] += float(ok or 0)
    for owner, (ind, _m, atom) in enumerate(pending):
        if ind == "completeness":
            got = sums.get(owner, [0.0])[0]
            atom.row["received"] = got
            atom.numerator = min(got, atom.denominator)
        elif ind == "timeliness":
            s = sums.get(owner, [0.0, 0.0, 0.0, 0.0])
            col = LAG_COLUMNS[atom.row["within_min"]]
            atom.denominator = s[0]
            atom.numerator = s[_LAG_INDEX[col]]
            atom.row.update(received=s[0], in_time=atom.numerator, late=s[0] - atom.numerator)
        else:
            mon, ok = ranges.get(owner, [0.0, 0.0])
            atom.denominator, atom.numerator = mon, ok
            atom.row.update(monitored_min=mon, in_range_min=ok, out_of_range_min=mon - ok)
        atoms.append(atom)
    return atoms, mounts


def device_day_atoms(
    conn: Conn, period: Period, exs: Sequence[Exemption], mounts: Sequence[Mount]
) -> list[Atom]:
    excluded: dict[str, set[tuple[str, date]]] = {"conformance": set(), "sequence": set()}
    listed: dict[tuple[str, str], set[int]] = {}
    whole = (period.start, period.end)
    for ind, pairs in excluded.items():
        for m in mounts:
            idx = matching(exs, ind, m.subjects())
            listed.setdefault((ind, m.device_id), set()).update(idx)
            pairs.update(
                (m.device_id, d) for d in whole_days(m.window, [(exs[i].start, exs[i].end) for i in idx])
            )
        for i, e in enumerate(exs):  # a device with no mount in the period
            if e.subject_kind == "device" and e.indicator in (ind, "*"):
                listed.setdefault((ind, e.subject_id), set()).add(i)
                pairs.update((e.subject_id, d) for d in whole_days(whole, [(e.start, e.end)]))
    params = {
        "first": period.start.date(),
        "stop": period.end.date(),
        "cx_dev": [p[0] for p in sorted(excluded["conformance"])],
        "cx_day": [p[1] for p in sorted(excluded["conformance"])],
        "sx_dev": [p[0] for p in sorted(excluded["sequence"])],
        "sx_day": [p[1] for p in sorted(excluded["sequence"])],
    }
    reasons: dict[str, dict[str, int]] = {}
    for dev, reason, n in conn.execute(queries.DEAD_BY_REASON, params).fetchall():
        reasons.setdefault(dev, {})[reason] = int(n)
    where = {m.asset_id: m for m in mounts}
    atoms: list[Atom] = []
    seen_dead: set[str] = set()
    for dev, asset, received, accepted, dead, readings, seq_missing, cx, sx in conn.execute(
        queries.DEVICE_DAYS, params
    ).fetchall():
        on: Mount | None = where.get(asset) if asset else None
        subj = subjects_of(
            device=dev, asset=asset, carrier=on.carrier_id if on else None, site=on.site_id if on else None
        )
        by_reason = {} if dev in seen_dead else reasons.get(dev, {})
        seen_dead.add(dev)
        atoms.append(
            Atom(
                "conformance",
                float(accepted),
                float(received),
                subj,
                {
                    "device_id": dev,
                    "asset_id": asset,
                    "received": int(received),
                    "accepted": int(accepted),
                    "dead_lettered": int(dead),
                    "dead_by_reason": by_reason,
                    "exempt_days": int(cx),
                },
                exemptions=sorted(listed.get(("conformance", dev), set())),
            )
        )
        missing = max(int(seq_missing), 0)
        atoms.append(
            Atom(
                "sequence",
                float(missing),
                float(int(readings) + missing),
                subj,
                {
                    "device_id": dev,
                    "asset_id": asset,
                    "produced": int(readings) + missing,
                    "received": int(readings),
                    "missing": missing,
                    "exempt_days": int(sx),
                },
                exemptions=sorted(listed.get(("sequence", dev), set())),
            )
        )
    return atoms


def alarm_atoms(conn: Conn, period: Period, exs: Sequence[Exemption], w: Weights) -> list[Atom]:
    atoms: list[Atom] = []
    for alarm_id, asset, carrier, site, device, kind, severity, opened, acked, ack_s in conn.execute(
        queries.ALARMS, {"start": period.start, "end": period.end}
    ).fetchall():
        subj = subjects_of(asset=asset, carrier=carrier, site=site, device=device)
        row = {
            "alarm_id": alarm_id,
            "asset_id": asset,
            "device_id": device,
            "kind": kind,
            "severity": severity,
            "opened_at": opened,
            "acknowledged_at": acked,
            "ack_s": ack_s,
            "within_sla": ack_s is not None and ack_s <= w.alarm_sla_s,
        }
        for ind in ("alarm_ack_median_s", "alarm_ack_sla"):
            used = covering(exs, matching(exs, ind, subj), opened)
            if used:
                atoms.append(Atom(ind, 0.0, 0.0, subj, {**row, "exempt": True}, exemptions=used))
            elif ind == "alarm_ack_median_s":
                atoms.append(Atom(ind, float(acked is not None), 1.0, subj, dict(row), value=ack_s))
            else:
                atoms.append(Atom(ind, float(bool(row["within_sla"])), 1.0, subj, dict(row)))
    return atoms


def covers(exs: Sequence[Exemption], idx: list[int], window: Span) -> list[int]:
    """The exemptions of ``idx`` when their union covers ``window`` whole, else none."""
    holes = [(exs[i].start, exs[i].end) for i in idx]
    return idx if idx and not subtract(window, holes) else []


def calibration_atoms(period: Period, exs: Sequence[Exemption], mounts: Sequence[Mount]) -> list[Atom]:
    by_device: dict[str, list[Mount]] = {}
    for m in mounts:
        by_device.setdefault(m.device_id, []).append(m)
    atoms: list[Atom] = []
    for dev, ms in by_device.items():
        subj = subjects_of(
            device=dev,
            asset=[m.asset_id for m in ms],
            carrier=[m.carrier_id for m in ms],
            site=[m.site_id for m in ms],
        )
        first, last = min(m.window[0] for m in ms), max(m.window[1] for m in ms)
        due = ms[0].calibration_due
        # In calibration: due no earlier than the last day the device was in service in the period.
        last_day = (last - timedelta(microseconds=1)).date()
        ok = due is not None and due >= last_day
        row = {"device_id": dev, "calibration_due": due, "in_service_from": first, "in_service_to": last}
        used = covers(exs, matching(exs, "calibration", subj), (first, last))
        if used:
            atoms.append(Atom("calibration", 0.0, 0.0, subj, {**row, "exempt": True}, exemptions=used))
        else:
            atoms.append(Atom("calibration", float(ok), 1.0, subj, {**row, "in_calibration": ok}))
    return atoms


def asset_atoms(conn: Conn, period: Period, exs: Sequence[Exemption]) -> list[Atom]:
    atoms: list[Atom] = []
    for asset, carrier, site, live in conn.execute(
        queries.ASSETS_LIVE, {"start": period.start, "end": period.end}
    ).fetchall():
        subj = subjects_of(asset=asset, carrier=carrier, site=site, device=live)
        row = {"asset_id": asset, "live_devices": list(live)}
        used = covers(exs, matching(exs, "coverage_assets", subj), (period.start, period.end))
        if used:
            atoms.append(Atom("coverage_assets", 0.0, 0.0, subj, {**row, "exempt": True}, exemptions=used))
        else:
            atoms.append(Atom("coverage_assets", float(bool(live)), 1.0, subj, row))
    return atoms

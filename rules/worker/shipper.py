"""Stage 2 (verdicts): a slice judged against the shipment profiles in force: profile rows and their alarms.

Runs after the class's plan of the same slice (`rules.worker.policy.plan_slice`), which it leaves as it is:
the profile only adds. While the slice's asset carries goods for a shipment with a profile (registry
`shipment_of_asset`), each reading is judged under the newest version of that profile created at or
before the reading's device time (`rules.shipper_queries.PROFILE_AT`): a version applies from its creation
onward, never to readings taken before it. The readings' runs outside the version's band and gaps beyond
its interval (`rules.engine.shipper`) replace the `profile_excursion` rows of the window (the class slice,
widened to the stored profile rows it touches), and a new one raises the asset's alarm under
``shipment/<id>/range`` or ``shipment/<id>/gap``, citing the shipment, the version and the shipper's
specification. A range alarm resolves once no run of the shipment is open at the latest reading; a gap
alarm stays until an operator resolves it, as the class's does. Nothing goes to the ledger: the shipper's
specification is a contract between parties, not the regulated verdict the class gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from rules import queries
from rules import shipper_queries as q
from rules.alarms import Condition
from rules.engine import catalog
from rules.engine.shipper import Finding, ProfileSpec, gap_runs, range_runs
from rules.models import from_epoch_us
from rules.packs import ClassRef
from rules.worker import reads
from rules.worker.apply import RunStats, apply
from rules.worker.plan import Plan, RaiseAlarm, ResolveAlarm
from rules.worker.policy import SliceInputs, severity
from rules.worker.reads import ONE_US

Conn = psycopg.Connection[tuple[Any, ...]]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

# How many times the window grows to cover the stored profile rows it touches.
MAX_WIDENINGS = 4


@dataclass(frozen=True, slots=True)
class Row:
    """A profile_excursion row as judged now."""

    kind: str  # 'range' | 'gap'
    series_id: int
    rule_id: str
    spec: ProfileSpec
    start: datetime
    end: datetime
    open: bool
    peak_c: float | None
    readings: int


@dataclass(frozen=True, slots=True)
class ProfileInputs:
    """What the adapter read for the profile judging of one slice."""

    inp: SliceInputs  # the class's slice (its segment, class and gap series)
    t_lo: datetime  # the window: the class slice widened to the stored profile rows it touches
    t_hi: datetime
    live: bool  # the window reaches the latest reading of a device still mounted
    t_us: IntArray
    v: FloatArray
    specs: list[ProfileSpec | None]  # the version in force at each reading (None: no profile)
    g_us: IntArray  # the device's probes, merged (gaps are device-wide, as the class's)
    g_v: FloatArray
    g_specs: list[ProfileSpec | None]
    stored: frozenset[tuple[str, datetime, datetime]]  # (rule id, start, end) of the window's stored rows


@dataclass(slots=True)
class ProfilePlan:
    """The rows of the window, and the alarm ops after them."""

    t_lo: datetime
    t_hi: datetime
    series_id: int
    gap_series_id: int
    asset_id: str
    rows: list[Row]
    alarms: Plan  # raised after the rows are in place
    resolves: list[ResolveAlarm]  # then these, each unless a run of its rule is still open on the asset


def read_inputs(conn: Conn, inp: SliceInputs) -> ProfileInputs | None:
    """The profile inputs of a judged slice; None when no shipment with a profile ever named its asset
    and no profile row is stored for it (the common case: one cheap query)."""
    seg = inp.seg
    ids = sorted({seg.series_id, inp.gap_series_id})
    found = conn.execute(q.MAY_HAVE_PROFILE, {"asset_id": seg.asset_id, "series_ids": ids}).fetchone()
    if found is None or not found[0]:
        return None
    t_lo, t_hi = inp.t_lo, inp.t_hi
    for _ in range(MAX_WIDENINGS):
        span = conn.execute(
            q.STORED_SPAN, {"asset_id": seg.asset_id, "series_ids": ids, "t_lo": t_lo, "t_hi": t_hi}
        ).fetchone()
        if span is None or span[0] is None or (span[0] >= t_lo and span[1] <= t_hi):
            break
        # Never past the mount: a row of an earlier mount of the device on the asset is that mount's.
        t_lo, t_hi = max(min(t_lo, span[0]), seg.seg_lo), min(max(t_hi, span[1]), seg.seg_hi - ONE_US)
    if (t_lo, t_hi) == (inp.t_lo, inp.t_hi):
        t_us, v, g_us, g_v = inp.t_us, inp.v, inp.g_us, inp.g_v
    else:
        t_us, v = reads.readings(conn, seg.series_id, t_lo, t_hi, seg.seg_hi)
        if inp.gap_series_id == seg.series_id and seg.compartment:
            g_us, g_v = t_us, v
        else:
            rows = conn.execute(
                queries.DEVICE_TEMP_READINGS,
                {
                    "device_id": seg.device_id,
                    "asset_id": seg.asset_id,
                    "t_lo": t_lo,
                    "t_hi": t_hi,
                    "seg_hi": seg.seg_hi,
                },
            ).fetchall()
            g_us, g_v = reads.arrays(rows)
    times = sorted({int(x) for x in t_us} | {int(x) for x in g_us})
    at: dict[int, ProfileSpec] = {}
    for us, shipment_id, version, low_c, high_c, max_gap_s, source in conn.execute(
        q.PROFILE_AT, {"asset_id": seg.asset_id, "times_us": times}
    ).fetchall():
        at[int(us)] = ProfileSpec(str(shipment_id), int(version), low_c, high_c, max_gap_s, str(source))
    stored: set[tuple[str, datetime, datetime]] = set()
    for kind, sid in (("range", seg.series_id), ("gap", inp.gap_series_id)):
        for _k, rule_id, start, end, _open in conn.execute(
            q.STORED_IN,
            {"asset_id": seg.asset_id, "series_id": sid, "kind": kind, "t_lo": t_lo, "t_hi": t_hi},
        ).fetchall():
            stored.add((str(rule_id), start, end))
    return ProfileInputs(
        inp=inp,
        t_lo=t_lo,
        t_hi=t_hi,
        live=inp.right_unbounded and seg.mounted_now,
        t_us=t_us,
        v=v,
        specs=[at.get(int(x)) for x in t_us],
        g_us=g_us,
        g_v=g_v,
        g_specs=[at.get(int(x)) for x in g_us],
        stored=frozenset(stored),
    )


def _condition(pi: ProfileInputs, ref: ClassRef, row: Row, kind: str, sev: str, reason: str) -> RaiseAlarm:
    seg = pi.inp.seg
    return RaiseAlarm(
        Condition(
            asset_id=seg.asset_id,
            rule_id=row.rule_id,
            kind=kind,
            severity=sev,
            series_id=row.series_id,
            product_class=ref.code,
            pack_version=None,  # not the rule pack's: the shipper's specification (source)
            reason=reason,
            condition_start=row.start,
            condition_end=row.end,
            peak_c=row.peak_c,
            trigger_committed_at=seg.committed_at,
            shipment_id=row.spec.shipment_id,
            profile_version=row.spec.version,
            source=row.spec.source,
        )
    )


def _row(f: Finding, series_id: int, t_us: IntArray) -> Row:
    rule = catalog.PROFILE_RANGE if f.kind == "range" else catalog.PROFILE_GAP
    return Row(
        f.kind,
        series_id,
        catalog.shipment_rule_id(f.spec.shipment_id, rule),
        f.spec,
        from_epoch_us(int(t_us[f.start_idx])),
        from_epoch_us(int(t_us[f.end_idx])),
        f.open,
        f.peak_c,
        f.readings,
    )


def plan_profile(pi: ProfileInputs) -> ProfilePlan:
    """The window's profile rows; an alarm for each new one (and for an open run, while it is open); the
    range alarm of each shipment resolved when none of its runs is open at the latest reading."""
    inp, ref = pi.inp, pi.inp.ref
    rules = ref.rules
    seg = inp.seg
    rows = [
        _row(f, seg.series_id, pi.t_us)
        for f in range_runs(pi.t_us // 1000, pi.v, pi.specs, rules, live=pi.live)
    ]
    rows += [_row(f, inp.gap_series_id, pi.g_us) for f in gap_runs(pi.g_us // 1000, pi.g_v, pi.g_specs)]
    alarms = Plan()
    resolves: list[ResolveAlarm] = []
    raised: dict[str, datetime] = {}  # range rule id -> end of its latest run raised here
    open_rules: set[str] = set()
    for row in rows:
        # New: no stored row of its rule overlaps it (late data that only moves or joins runs the asset's
        # alarm already saw raises none again).
        new = not any(r == row.rule_id and s <= row.end and row.start <= e for r, s, e in pi.stored)
        if row.kind == "range":
            duration_s = (row.end - row.start).total_seconds()
            assert row.peak_c is not None
            spec = row.spec
            reason = catalog.profile_range(
                spec.low_c, spec.high_c, row.peak_c, duration_s, spec.cited, still=row.open
            )
            if row.open:
                open_rules.add(row.rule_id)
            if new or row.open:
                sev = severity(catalog.PROFILE_RANGE, ref, duration_s, inp.escalate_after_s)
                alarms.add(_condition(pi, ref, row, catalog.PROFILE_RANGE.kind, sev, reason))
                raised[row.rule_id] = max(raised.get(row.rule_id, row.end), row.end)
        elif new:
            assert row.spec.max_gap_s is not None
            gap_s = (row.end - row.start).total_seconds()
            reason = catalog.profile_gap(gap_s, row.spec.max_gap_s, row.spec.cited)
            sev = catalog.PROFILE_GAP.severity or "warning"
            alarms.add(_condition(pi, ref, row, catalog.PROFILE_GAP.kind, sev, reason))
    # A range alarm clears once no run of its shipment is open: at the latest reading (live), or right
    # after the closed run that raised it (a run judged after the fact, as the class does).
    shipments = {s.shipment_id for s in pi.specs if s is not None}
    last = from_epoch_us(int(pi.t_us[-1])) if pi.t_us.shape[0] else pi.t_hi
    for shipment_id in sorted(shipments):
        rule_id = catalog.shipment_rule_id(shipment_id, catalog.PROFILE_RANGE)
        if rule_id in open_rules or not (pi.live or rule_id in raised):
            continue
        end = last if pi.live else raised[rule_id]
        resolves.append(ResolveAlarm(seg.asset_id, rule_id, end, catalog.profile_back_in_band(shipment_id)))
    return ProfilePlan(
        pi.t_lo, pi.t_hi, seg.series_id, inp.gap_series_id, seg.asset_id, rows, alarms, resolves
    )


def apply_profile(conn: Conn, plan: ProfilePlan, stats: RunStats) -> None:
    """Replace the window's profile rows, then raise and resolve the alarms."""
    for kind, sid in (("range", plan.series_id), ("gap", plan.gap_series_id)):
        conn.execute(
            q.DELETE_IN,
            {"asset_id": plan.asset_id, "series_id": sid, "kind": kind, "t_lo": plan.t_lo, "t_hi": plan.t_hi},
        )
    for row in plan.rows:
        spec = row.spec
        conn.execute(
            q.UPSERT,
            {
                "kind": row.kind,
                "series_id": row.series_id,
                "asset_id": plan.asset_id,
                "shipment_id": spec.shipment_id,
                "profile_version": spec.version,
                "rule_id": row.rule_id,
                "source": spec.source,
                "start_time": row.start,
                "end_time": row.end,
                "open": row.open,
                "peak_c": row.peak_c,
                "limit_low_c": spec.low_c if row.kind == "range" else None,
                "limit_high_c": spec.high_c if row.kind == "range" else None,
                "allowed_s": spec.max_gap_s if row.kind == "gap" else None,
                "readings": row.readings,
            },
        )
    stats.profile_excursions += len(plan.rows)
    apply(conn, plan.alarms, stats)
    for resolve in plan.resolves:
        # Another probe of the asset (or a later window) may hold a run of the shipment still open.
        still = conn.execute(q.OPEN_ON_ASSET, {"asset_id": resolve.asset_id, "rule_id": resolve.rule_id})
        if still.fetchone() is None:
            apply(conn, Plan([resolve]), stats)


def judge(conn: Conn, inp: SliceInputs, stats: RunStats) -> None:
    """Judge a slice the class judged against the shipment profiles in force (nothing without one)."""
    pi = read_inputs(conn, inp)
    if pi is not None:
        apply_profile(conn, plan_profile(pi), stats)

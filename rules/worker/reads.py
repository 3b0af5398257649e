"""Stage 2 (verdicts): what the worker reads before it plans: slices, readings, stored rows, lot legs.

The re-evaluated slice of a series, per mount of its device on an asset with a product class: the
touched window [t_min, t_max], widened by the class's longest rule window, widened again to cover
stored verdicts overlapping it, then out to the last clearing reading before it and the first after
it (in range by at least the hysteresis: an excursion cannot cross one, and every gap next to new
data lies inside), widened again to cover whole any stored profile chain break it overlaps, clipped
to the mount interval. Evaluation is on device time only.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any, cast

import numpy as np
import psycopg

from rules import engine, queries
from rules.engine import catalog
from rules.models import from_epoch_us, to_epoch_ms
from rules.packs import ClassRef, Mode
from rules.worker import history, humidity, lots, policy, states
from rules.worker.live import ProfileInputs, StoredMkt, now_from
from rules.worker.plan import Segment
from rules.worker.policy import FloatArray, IntArray

Conn = psycopg.Connection[tuple[Any, ...]]

# Stands in for "no end" (an open mount, no in-range reading after the window): PostgreSQL and
# Python both represent it exactly, and it keeps every bound a plain comparison.
FAR_FUTURE = datetime.fromisoformat("9999-01-01T00:00:00+00:00")
ONE_US = timedelta(microseconds=1)

# A stored profile break may reach past the widened slice, whose clearing readings may reach past
# another: widening stops after this many rounds (each round reads two readings and one span).
MAX_WIDENINGS = 8


def when(row: tuple[Any, ...] | None) -> datetime | None:
    """The time in a one-column row (None for no row or NULL)."""
    return None if row is None else cast("datetime | None", row[0])


def arrays(rows: list[tuple[Any, ...]]) -> tuple[IntArray, FloatArray]:
    """(time µs or ms, value) rows as int64 / float64 arrays (NULL is NaN, a dropout)."""
    n = len(rows)
    t = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    v = np.fromiter((math.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=n)
    return t, v


def readings(
    conn: Conn, series_id: int, t_lo: datetime, t_hi: datetime, seg_hi: datetime
) -> tuple[IntArray, FloatArray]:
    """A series' readings in [t_lo, t_hi] before seg_hi (epoch µs)."""
    rows = conn.execute(
        queries.READINGS, {"series_id": series_id, "t_lo": t_lo, "t_hi": t_hi, "seg_hi": seg_hi}
    ).fetchall()
    return arrays(rows)


def accuracy(conn: Conn, device_id: str) -> float | None:
    """The device's stated accuracy (None: none stated, the class's then the pack's default applies)."""
    return quality(conn, device_id)[0]


def quality(conn: Conn, device_id: str) -> tuple[float | None, date | None]:
    """What the device states about its evidence: its accuracy and when its calibration is due."""
    row = conn.execute(queries.DEVICE_QUALITY, {"device_id": device_id}).fetchone()
    if row is None:
        return None, None
    return (None if row[0] is None else float(row[0])), cast("date | None", row[1])


def slice_inputs(
    conn: Conn, seg: Segment, ref: ClassRef, lo: datetime, hi: datetime, escalate_after_s: int | None
) -> policy.SliceInputs:
    """Read the slice around the touched window [lo, hi] and everything its plan needs."""
    rules = ref.rules
    look = timedelta(seconds=rules.lookback_s)
    stored_lo, stored_hi = conn.execute(
        queries.STORED_VERDICT_SPAN,
        {"series_id": seg.series_id, "asset_id": seg.asset_id, "t_lo": lo, "t_hi": hi},
    ).fetchone() or (None, None)
    lo0 = lo - look if stored_lo is None else min(lo - look, stored_lo)
    hi0 = hi + look if stored_hi is None else max(hi + look, stored_hi)
    lo0, hi0 = max(lo0, seg.seg_lo), min(hi0, seg.seg_hi - ONE_US)
    limits = {
        "series_id": seg.series_id,
        "low_c": rules.low_c,
        "high_c": rules.high_c,
        "low_inclusive": rules.low_inclusive,
        "high_inclusive": rules.high_inclusive,
        "hyst_c": rules.hysteresis_c,
        "seg_lo": seg.seg_lo,
        "seg_hi": seg.seg_hi,
    }

    def clearing_before(t: datetime) -> datetime:
        # No in-range reading before: the slice starts at the mount.
        before = when(conn.execute(queries.LAST_IN_RANGE_BEFORE, {**limits, "t": t}).fetchone())
        return seg.seg_lo if before is None else before

    def clearing_after(t: datetime) -> datetime | None:
        # None after: the slice runs to the latest reading of the mount, so a run reaching it may be open.
        return when(conn.execute(queries.FIRST_IN_RANGE_AFTER, {**limits, "t": t}).fetchone())

    t_lo = clearing_before(lo0)
    after = clearing_after(hi0)
    right_unbounded = after is None
    t_hi = seg.seg_hi - ONE_US if after is None else after
    # Stored profile chain breaks overlapping the slice: widen it to cover them whole (a cumulative
    # break may span several excursions), so that they are replaced, never left beside themselves.
    for _ in range(MAX_WIDENINGS):
        got = conn.execute(
            queries.PROFILE_BREAK_SPAN,
            {
                "series_id": seg.series_id,
                "asset_id": seg.asset_id,
                "mkt_rule": catalog.MKT.id(ref),
                "t_lo": t_lo,
                "t_hi": t_hi,
            },
        ).fetchone()
        if got is None or got[0] is None or (got[0] >= t_lo and got[1] <= t_hi):
            break
        if got[0] < t_lo:
            t_lo = clearing_before(got[0])
        if got[1] > t_hi:
            after = clearing_after(got[1])
            right_unbounded = after is None
            t_hi = seg.seg_hi - ONE_US if after is None else after

    t_us, v = readings(conn, seg.series_id, t_lo, t_hi, seg.seg_hi)
    # Gaps are device-wide: a gap is a time when no temperature probe of the device reported; the
    # rows are filed under the device's first probe series, so one dropout is one chain break.
    # A compartment's evidence is its own probe: its gaps are that series' alone.
    if seg.compartment:
        g_id, g_channel, g_us, g_v = seg.series_id, seg.channel, t_us, v
    else:
        primary = conn.execute(
            queries.PRIMARY_TEMP_SERIES, {"device_id": seg.device_id, "asset_id": seg.asset_id}
        ).fetchone()
        g_id, g_channel = (
            (seg.series_id, seg.channel) if primary is None else (int(primary[0]), str(primary[1]))
        )
        merged = conn.execute(
            queries.DEVICE_TEMP_READINGS,
            {
                "device_id": seg.device_id,
                "asset_id": seg.asset_id,
                "t_lo": t_lo,
                "t_hi": t_hi,
                "seg_hi": seg.seg_hi,
            },
        ).fetchall()
        g_us, g_v = arrays(merged)
    return policy.SliceInputs(
        seg=seg,
        ref=ref,
        t_lo=t_lo,
        t_hi=t_hi,
        right_unbounded=right_unbounded,
        hi=hi,
        t_us=t_us,
        v=v,
        gap_series_id=g_id,
        gap_channel=g_channel,
        g_us=g_us,
        g_v=g_v,
        accuracy_c=accuracy(conn, seg.device_id),
        escalate_after_s=escalate_after_s,
    )


def profile_inputs(
    conn: Conn, seg: Segment, ref: ClassRef, lo: datetime, hi: datetime
) -> ProfileInputs | None:
    """The readings from the look-back before the touched window to the latest reading, the MKT
    window's prefix before them, the open MKT row; None without any reading on the mount."""
    r = ref.rules
    bound = {"series_id": seg.series_id, "seg_lo": seg.seg_lo, "seg_hi": seg.seg_hi}
    latest = when(conn.execute(queries.LATEST_READING, bound).fetchone())
    if latest is None:
        return None
    look = timedelta(seconds=r.lookback_s)
    t_lo = max(seg.seg_lo, min(lo, latest) - look)
    t_us, v = readings(conn, seg.series_id, t_lo, latest, seg.seg_hi)
    t_ms = t_us // 1000
    prefix: engine.MktPrefix | None = None
    stored: StoredMkt | None = None
    if r.mkt is not None:
        i = int(np.searchsorted(t_ms, to_epoch_ms(now_from(seg, ref, latest)), side="left"))
        first = np.flatnonzero(~np.isnan(v[i:]))
        if first.shape[0]:
            s_first = from_epoch_us(int(t_ms[i + int(first[0])]) * 1000)
            w_lo = latest - timedelta(seconds=r.mkt.window_s)
            num, den = (0.0, 0.0)
            if w_lo < s_first:
                got = conn.execute(
                    queries.MKT_PREFIX, {**bound, "s": s_first, "lo": w_lo, "dhr": r.mkt.delta_h_r_k}
                ).fetchone()
                num, den = (0.0, 0.0) if got is None else (float(got[0]), float(got[1]))
            prefix = engine.MktPrefix(weighted_ms=num, span_ms=den)
        row = conn.execute(
            queries.OPEN_MKT_BREAK,
            {"series_id": seg.series_id, "asset_id": seg.asset_id, "rule_id": catalog.MKT.id(ref)},
        ).fetchone()
        if row is not None:
            stored = StoredMkt(int(row[0]), row[1], row[2], dict(row[3]))
    accuracy_c, calibration_due = quality(conn, seg.device_id)
    return ProfileInputs(
        seg=seg,
        ref=ref,
        lo=lo,
        hi=hi,
        latest=latest,
        t_ms=t_ms,
        v=v,
        accuracy_c=accuracy_c,
        mkt_prefix=prefix,
        stored_mkt=stored,
        calibration_due=calibration_due,
    )


def humidity_inputs(
    conn: Conn, seg: Segment, ref: ClassRef, lo: datetime, hi: datetime, escalate_after_s: int | None
) -> humidity.HumidityInputs | None:
    """The rh readings from the look-back before the touched window to the latest reading; None without
    any reading on the mount."""
    bound = {"series_id": seg.series_id, "seg_lo": seg.seg_lo, "seg_hi": seg.seg_hi}
    latest = when(conn.execute(queries.LATEST_READING, bound).fetchone())
    if latest is None:
        return None
    t_lo = max(seg.seg_lo, min(lo, latest) - timedelta(seconds=ref.rules.lookback_s))
    t_us, v = readings(conn, seg.series_id, t_lo, latest, seg.seg_hi)
    return humidity.HumidityInputs(seg, ref, lo, hi, latest, t_us, v, escalate_after_s)


def state_inputs(
    conn: Conn, seg: Segment, ref: ClassRef, w_lo: datetime, w_hi: datetime, escalate_after_s: int | None
) -> states.StateInputs:
    """The state channel's readings out to the last reading out of the state before the window and the
    first one after it."""
    bound = {
        "series_id": seg.series_id,
        "state": states.state_of(seg.channel),
        "seg_lo": seg.seg_lo,
        "seg_hi": seg.seg_hi,
    }
    before = when(conn.execute(queries.LAST_OUT_OF_STATE_BEFORE, {**bound, "t": w_lo}).fetchone())
    after = when(conn.execute(queries.FIRST_OUT_OF_STATE_AFTER, {**bound, "t": w_hi}).fetchone())
    t_lo = seg.seg_lo if before is None else before
    t_hi = seg.seg_hi - ONE_US if after is None else after
    t_us, v = readings(conn, seg.series_id, t_lo, t_hi, seg.seg_hi)
    return states.StateInputs(seg, ref, t_lo, t_hi, after is None, t_us, v, escalate_after_s)


def evidence(conn: Conn, seg: Segment) -> list[history.Evidence]:
    rows = conn.execute(
        queries.SERIES_EVIDENCE, {"series_id": seg.series_id, "asset_id": seg.asset_id}
    ).fetchall()
    return [history.Evidence(k, r, a, b, bool(o), p) for k, r, a, b, o, p in rows]


def last_version(conn: Conn, subject_kind: str, subject_id: str) -> history.LastVersion | None:
    row = conn.execute(
        queries.LAST_HISTORY, {"subject_kind": subject_kind, "subject_id": subject_id}
    ).fetchone()
    return None if row is None else history.LastVersion(int(row[0]), str(row[1]), list(row[2]))


def last_emitted_lot(conn: Conn, lot_id: str) -> lots.EmittedLot | None:
    """The lot's latest version the ledger heard of (its result changed), with its judged span's end."""
    row = conn.execute(queries.LAST_EMITTED_LOT, {"lot_id": lot_id}).fetchone()
    return None if row is None else lots.EmittedLot(int(row[0]), str(row[1]), row[2])


def lot_legs(conn: Conn, lot_id: str) -> list[lots.Leg]:
    """The lot's custody legs with the temperature, door, power and humidity readings of their assets."""
    out: list[lots.Leg] = []
    for asset_id, mode, t_from, t_to in conn.execute(queries.LOT_LEGS, {"lot_id": lot_id}).fetchall():
        if asset_id is None:
            out.append(lots.Leg(None, mode, t_from, t_to))
            continue
        span = {"asset_id": asset_id, "t_from": t_from, "t_to": t_to}
        channels: dict[str, lots.Channel | None] = {}
        for channel in ("door", "power", "rh"):
            got = conn.execute(queries.ASSET_STATE_READINGS, {**span, "channel": channel}).fetchall()
            channels[channel] = arrays(got) if got else None
        series: list[lots.SeriesReadings] = []
        found = conn.execute(queries.ASSET_TEMP_SERIES, span).fetchall()
        for series_id, accuracy_c, calibration_due, s_from, s_to in found:
            rows = conn.execute(
                queries.SERIES_READINGS, {"series_id": series_id, "t_from": s_from, "t_to": s_to}
            ).fetchall()
            t_ms, v = arrays(rows)
            series.append(
                lots.SeriesReadings(
                    int(series_id), accuracy_c, s_from, t_ms, v, s_to, calibration_due=calibration_due
                )
            )
        out.append(
            lots.Leg(
                asset_id,
                cast("Mode | None", mode),
                t_from,
                t_to,
                series,
                channels["door"],
                channels["power"],
                channels["rh"],
            )
        )
    return out

"""Stage 3, scorecards: the shipment facts: each finished shipment judged once (its subjects, crossings,
trajectory anomalies, leg and handoff evidence) into shipment_fact, re-judged when a late reading marks it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg

from traceability.scorecards import queries
from traceability.scorecards.period import Period
from traceability.scorecards.transit import statement_params
from traceability.scorecards.weights import Weights, default_weights

log = logging.getLogger(__name__)

# The marks whose batch the rules worker has consumed (its crossings are written), and the time before
# which every stored reading is in the rollups and the crossings: an hour before now (shipment_fact_settle;
# before the given time instead, for a simulated clock), and not past the first reading of a batch the
# rules worker has not consumed or (plain PostgreSQL) of a range whose rollups are not rebuilt yet.
_MARKS: Final = """
SELECT k.mark_id, k.t_min, k.t_max FROM shipment_fact_mark k
WHERE NOT EXISTS (SELECT 1 FROM ingest_batch b WHERE b.batch_id = k.batch_id)
ORDER BY k.mark_id"""
_SETTLED: Final = """
SELECT LEAST(COALESCE(%(at)s, now()) - shipment_fact_settle(),
             (SELECT min(t_min) FROM ingest_batch WHERE kind = 'telemetry'),
             (SELECT min(t_min) FROM rollup_pending))"""
# Shipments with a planned window and no fact whose data has settled, oldest first. A fact reads up to two
# hours past the planned windows (a handoff's hour after, widened to the rollups' hour): waiting three keeps
# an hour between its time and the settle time, so a batch in flight while it is judged, not marked as its
# readings are under an hour old, falls after its time.
_READY: Final = """
SELECT s.shipment_id
FROM shipment s
WHERE s.planned_start IS NOT NULL AND s.planned_end IS NOT NULL
  AND s.planned_end + interval '3 hours' < %(settled)s
  AND NOT EXISTS (SELECT 1 FROM shipment_fact f WHERE f.shipment_id = s.shipment_id)
  AND NOT EXISTS (SELECT 1 FROM shipment_leg l WHERE l.shipment_id = s.shipment_id
                  AND (l.planned_end + interval '3 hours' >= %(settled)s
                       OR l.planned_start + interval '3 hours' >= %(settled)s))
ORDER BY s.planned_end, s.shipment_id
LIMIT %(limit)s"""
_FORGET: Final = """
DELETE FROM shipment_fact f USING shipment_fact_marked(%(marks)s) k WHERE f.shipment_id = k.shipment_id"""
_TAKE: Final = "DELETE FROM shipment_fact_mark WHERE mark_id = ANY(%(marks)s)"
_INSERT: Final = """
INSERT INTO shipment_fact (shipment_id, dep_from, dep_to, assets, carriers, devices, exit_at, enter_at,
                           anomalies, f_kind, f_from, f_to, f_figure, leg_nos, leg_ok, h_from_leg, h_to_leg,
                           h_at, h_from_asset, h_to_asset, h_before, h_after, thresholds)
SELECT j.*, %(thresholds)s FROM ({judge}) j
ON CONFLICT (shipment_id) DO NOTHING"""
# Held before the pass reads anything: one pass at a time, and none while a change that drops facts is in
# flight, nor such a change while a pass is (they hold it shared: migration 0027's shipment_fact_hold).
_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('coldchain.shipment_fact'))"
_TIMESCALE: Final = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
_RANGE: Final = """
SELECT min(LEAST(s.planned_start, l.planned_start)) - interval '2 hours',
       max(GREATEST(s.planned_end, l.planned_end)) + interval '2 hours'
FROM shipment s LEFT JOIN shipment_leg l USING (shipment_id) WHERE s.shipment_id = ANY(%(ids)s)"""


@dataclass(frozen=True)
class Judged:
    """One pass: the marks taken (their facts dropped) and the shipments judged."""

    marks: int
    shipments: int


def judge_params(w: Weights, ids: list[str]) -> dict[str, Any]:
    """The shipment statement's parameters for judging ``ids``: no period, exemption or subject."""
    always = Period("all", datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    return statement_params(always, [], w, None, facts=False, judge=ids)


def judge_once(
    url: str, *, limit: int = 5_000, weights: Weights | None = None, at: datetime | None = None
) -> Judged:
    """Take the marks of consumed batches (dropping the facts they overlap) and judge up to ``limit``
    settled shipments without a fact. On TimescaleDB the rollups over the shipments' and marks' time are
    refreshed first (a reading stored late into an hour already materialised is in reading_1h only then).
    ``at``: the time it is (None: the server's clock)."""
    w = weights or default_weights()
    with psycopg.connect(url, autocommit=True) as conn:
        marks = conn.execute(_MARKS).fetchall()
        row = conn.execute(_SETTLED, {"at": at}).fetchone()
        ready = {"settled": row[0] if row else None, "limit": limit}
        ids = [r[0] for r in conn.execute(_READY, ready).fetchall()]
        if conn.execute(_TIMESCALE).fetchone() is not None and (ids or marks):
            _refresh_timescale(conn, ids, marks)
    if not marks and not ids:
        return Judged(0, 0)
    with psycopg.connect(url) as conn:
        conn.execute(_LOCK)
        mark_ids = [m[0] for m in marks]
        if mark_ids:
            conn.execute(_FORGET, {"marks": mark_ids})
            conn.execute(_TAKE, {"marks": mark_ids})
        # Again under the lock: the shipments whose facts the marks dropped are ready again (their late
        # readings lie in the marks' time, refreshed above), a pass before this one judged others.
        ids = [r[0] for r in conn.execute(_READY, ready).fetchall()]
        n = 0
        if ids:
            conn.execute(queries.TRANSACTION_SETTINGS)
            conn.execute(queries.HASH_JOINS)
            sql = _INSERT.format(judge=queries.shipment_atoms("carrier", "judge"))
            cur = conn.execute(sql, judge_params(w, ids))
            n = cur.rowcount
        conn.commit()
    return Judged(len(mark_ids), n)


def _refresh_timescale(conn: psycopg.Connection[Any], ids: list[str], marks: list[tuple[Any, ...]]) -> None:
    lo: datetime | None = None
    hi: datetime | None = None
    if ids:
        row = conn.execute(_RANGE, {"ids": ids}).fetchone()
        if row is not None:
            lo, hi = row[0], row[1]
    for _mid, t_min, t_max in marks:
        lo = t_min if lo is None else min(lo, t_min)
        hi = t_max if hi is None else max(hi, t_max)
    if lo is not None and hi is not None:
        # A refresh rebuilds the buckets wholly inside its window: an hour more each side. reading_1h is
        # built on reading_1m, so the minutes first.
        window = (lo - timedelta(hours=1), hi + timedelta(hours=1))
        conn.execute("CALL refresh_continuous_aggregate('reading_1m', %s, %s)", window)
        conn.execute("CALL refresh_continuous_aggregate('reading_1h', %s, %s)", window)


class ShipmentFactWorker:
    """Judges finished shipments into shipment_fact every ``every_s`` seconds (traceability stage);
    ``clock``: the time it is (None: the server's), for a simulated clock."""

    def __init__(
        self,
        url: str,
        every_s: float = 60.0,
        limit: int = 5_000,
        clock: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._url = url
        self._every_s = every_s
        self._limit = limit
        self._clock = clock

    def run_once(self) -> Judged:
        return judge_once(self._url, limit=self._limit, at=self._clock())

    def run_forever(self, stop: threading.Event) -> None:
        """Judge until ``stop`` is set; a pass that judged a full batch is followed at once by the next."""
        while not stop.is_set():
            try:
                done = self.run_once()
            except psycopg.Error as exc:
                log.error("shipment facts: a pass failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
                done = Judged(0, 0)
            if done.shipments < self._limit:
                stop.wait(self._every_s)

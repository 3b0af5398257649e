"""Tests, stage 2 (verdicts): the readings' rollups agree with the raw rows, on either server.

On plain PostgreSQL the rollups are tables the rules stage keeps from a queue a trigger on ingest_batch
fills; on TimescaleDB they are continuous aggregates. Either way, after a refresh every rollup row must
equal the aggregate of the raw rows (an oracle computed here in Python), however the readings were
batched, reordered or late; and readings_binned() must give the same buckets from a rollup as from the
raw rows.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboards import rollups
from rules.worker.adapter import RulesWorker

ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
WIDTHS = {
    "reading_1m": timedelta(minutes=1),
    "reading_1h": timedelta(hours=1),
    "reading_1d": timedelta(days=1),
}
LAG_BOUNDS = (1, 5, 30, 60, 300, 3600)
COLUMNS = (
    "readings, n, sum_c, min_c, max_c, avg_c, minutes, first_time, last_time, skewed, lag_max_s, "
    + ", ".join(f"lag_le_{b}s" for b in LAG_BOUNDS)
)

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Reading:
    series: int  # index into the example's series
    time: datetime
    value: float | None
    lag_s: float
    skewed: bool


def _bin(t: datetime, width: timedelta) -> datetime:
    return ORIGIN + width * ((t - ORIGIN) // width)


def oracle(rows: list[tuple[int, Reading]], width: timedelta) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    """Per (series_id, bucket): the rollup columns, computed from the raw readings."""
    groups: dict[tuple[int, datetime], list[Reading]] = defaultdict(list)
    for sid, r in rows:
        groups[sid, _bin(r.time, width)].append(r)
    out = {}
    for key, rs in groups.items():
        values = [r.value for r in rs if r.value is not None]
        minutes = {_bin(r.time, timedelta(minutes=1)) for r in rs if r.value is not None}
        out[key] = (
            len(rs),
            len(values),
            math.fsum(values) if values else None,
            min(values) if values else None,
            max(values) if values else None,
            math.fsum(values) / len(values) if values else None,
            len(minutes),
            min(r.time for r in rs),
            max(r.time for r in rs),
            sum(r.skewed for r in rs),
            max(r.lag_s for r in rs),
            *(sum(r.lag_s <= b for r in rs) for b in LAG_BOUNDS),
        )
    return out


def _close(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def assert_agrees(got: dict[tuple[int, datetime], tuple[Any, ...]], want: dict[Any, tuple[Any, ...]]) -> None:
    assert set(got) == set(want), "the same (series, bucket) keys as the raw rows make"
    for key, row in want.items():
        assert _close(got[key], row), (key, got[key], row)


_names = count()


def _new_series(conn: Conn, k: int) -> list[int]:
    """k fresh series on a fresh device: every example reads only its own rows."""
    device = f"rollup-dev-{next(_names)}"
    conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'temp_logger')", (device,))
    return [
        conn.execute(
            "INSERT INTO series (device_id, channel) VALUES (%s, %s) RETURNING series_id", (device, ch)
        ).fetchone()[0]  # type: ignore[index]
        for ch in ("temp", "temp:2", "rh")[:k]
    ]


def write_batch(conn: Conn, sids: list[int], batch: list[Reading]) -> None:
    """As the gateway commits a batch: its readings, and one ingest_batch row naming what it touched."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO reading (time, series_id, value, received_at, flags) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (r.time, sids[r.series], r.value, r.time + timedelta(seconds=r.lag_s), int(r.skewed))
                    for r in batch
                ],
            )
        conn.execute(
            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
            (sorted({sids[r.series] for r in batch}), min(r.time for r in batch), max(r.time for r in batch)),
        )


def read_rollup(conn: Conn, name: str, sids: list[int]) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    rows = conn.execute(
        f"SELECT series_id, bucket, {COLUMNS} FROM {name} WHERE series_id = ANY(%s)", (sids,)
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def bring_up_to_date(conn: Conn, db_url: str) -> None:
    """What keeps the rollups in production: the rules worker's queue drain, or TimescaleDB's refresh."""
    if rollups.kept_by_timescale(conn):
        rollups.refresh(db_url)
        return
    while conn.execute("SELECT rollup_refresh_pending(3)").fetchone()[0]:  # type: ignore[index]
        pass


@pytest.fixture
def aconn(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


readings_st = st.lists(
    st.builds(
        Reading,
        series=st.integers(0, 1),
        time=st.integers(0, 3 * 24 * 3600 - 1).map(lambda s: T0 + timedelta(seconds=s)),
        value=st.one_of(st.none(), st.floats(-40, 40, allow_nan=False).map(lambda v: round(v, 2))),
        lag_s=st.sampled_from([-2.0, 0.0, 0.5, 3.0, 45.0, 299.0, 301.0, 4000.0]),
        skewed=st.booleans(),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: (r.series, r.time),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(readings=readings_st, cuts=st.lists(st.integers(1, 39), max_size=4), reverse=st.booleans())
def test_rollups_equal_the_raw_aggregates_however_readings_arrive(
    aconn: Conn, db_url: str, readings: list[Reading], cuts: list[int], reverse: bool
) -> None:
    sids = _new_series(aconn, 2)
    order = sorted(readings, key=lambda r: r.time, reverse=reverse)  # reverse: every batch is late
    edges = sorted({0, len(order), *(c for c in cuts if c < len(order))})
    for lo, hi in pairwise(edges):
        write_batch(aconn, sids, order[lo:hi])
        bring_up_to_date(aconn, db_url)  # refreshed between batches: later ones revise earlier buckets
    rows = [(sids[r.series], r) for r in readings]
    for name, width in WIDTHS.items():
        assert_agrees(read_rollup(aconn, name, sids), oracle(rows, width))


def test_the_queue_is_filled_by_the_gateways_batches_and_drained_by_the_rules_worker(
    aconn: Conn, db_url: str
) -> None:
    sids = _new_series(aconn, 1)
    batch = [Reading(0, T0 + timedelta(minutes=m), 2.0 + m, 1.0, False) for m in range(5)]
    write_batch(aconn, sids, batch)
    if rollups.kept_by_timescale(aconn):  # refresh policies keep continuous aggregates: no queue, no work
        assert aconn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
        assert aconn.execute("SELECT rollup_refresh_pending()").fetchone() == (0,)
        return
    assert aconn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (1,)
    assert read_rollup(aconn, "reading_1m", sids) == {}, "nothing is rolled up before a refresh"
    worker = RulesWorker(db_url)
    try:
        assert worker.refresh_rollups() == 1
        assert worker.refresh_rollups() == 0, "a drained queue is no work"
    finally:
        worker.close()
    assert aconn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
    assert_agrees(
        read_rollup(aconn, "reading_1h", sids), oracle([(sids[0], r) for r in batch], WIDTHS["reading_1h"])
    )


def _binned(
    conn: Conn, width: timedelta, t_from: datetime, t_to: datetime, sids: list[int]
) -> dict[Any, Any]:
    rows = conn.execute(
        f"SELECT series_id, bucket, {COLUMNS} FROM readings_binned(%s, %s, %s, %s)",
        (width, t_from, t_to, sids),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


@pytest.mark.parametrize(
    "width",
    [
        timedelta(seconds=20),  # raw rows
        timedelta(minutes=1),  # reading_1m's own buckets
        timedelta(minutes=5),  # reading_1m, re-binned
        timedelta(hours=1),  # reading_1h's own buckets
        timedelta(hours=3),  # reading_1h, re-binned
        timedelta(days=1),  # reading_1d's own buckets
        timedelta(days=2),  # reading_1d, re-binned
    ],
    ids=["raw", "1m", "5m", "1h", "3h", "1d", "2d"],
)
def test_readings_binned_gives_the_raw_answer_from_whichever_source(
    aconn: Conn, db_url: str, width: timedelta
) -> None:
    sids = _new_series(aconn, 2)
    readings = [
        Reading(
            i % 2,
            T0 + timedelta(seconds=97 * i),
            None if i % 11 == 0 else (i % 17) - 5.5,
            i % 7 * 20.0,
            i % 5 == 0,
        )
        for i in range(4000)  # about 4.5 days
    ]
    write_batch(aconn, sids, readings)
    rollups.refresh(db_url)
    # A range aligned to every source's buckets: whole buckets at its edges either way.
    t_from, t_to = T0, T0 + timedelta(days=4)
    inside = [(sids[r.series], r) for r in readings if t_from <= r.time < t_to]
    assert_agrees(_binned(aconn, width, t_from, t_to, sids), oracle(inside, width))
    everything = _binned(aconn, width, t_from, t_to, None)  # type: ignore[arg-type]
    assert {k for k in everything if k[0] in sids} == set(oracle(inside, width))


def test_refresh_rebuilds_rows_written_without_the_queue(aconn: Conn, db_url: str) -> None:
    sids = _new_series(aconn, 1)
    aconn.execute(
        "INSERT INTO reading (time, series_id, value, received_at)"
        " SELECT t, %s, 4.0, t FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') t",
        (sids[0], T0, T0 + timedelta(hours=2, minutes=59)),
    )
    rollups.refresh(db_url)
    assert aconn.execute(
        "SELECT sum(readings), sum(minutes), min(bucket) FROM reading_1h WHERE series_id = %s", (sids[0],)
    ).fetchone() == (180, 180, T0)
    assert aconn.execute("SELECT count(*) FROM reading_1d WHERE series_id = %s", (sids[0],)).fetchone() == (
        1,
    )


def test_timescale_keeps_the_rollups_as_continuous_aggregates_with_policies(aconn: Conn) -> None:
    """On a TimescaleDB server: the aggregates, their refresh policies, real-time reads, compression."""
    if not rollups.kept_by_timescale(aconn):
        assert aconn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('reading_1m', 'reading_1h', 'reading_1d')"
        ).fetchone() == (3,)
        assert aconn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'ingest_batch_rollup'"
        ).fetchone() == (1,)
        return
    caggs: dict[str, bool] = dict(
        aconn.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
    )
    assert caggs == {"reading_1m": False, "reading_1h": False, "reading_1d": False}
    jobs: dict[str, int] = dict(
        aconn.execute(
            "SELECT proc_name, count(*) FROM timescaledb_information.jobs"
            " WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression')"
            " GROUP BY proc_name"
        ).fetchall()
    )
    assert jobs == {"policy_refresh_continuous_aggregate": 3, "policy_compression": 1}


def test_a_full_refresh_and_the_workers_drain_lock_in_one_order(aconn: Conn, db_url: str) -> None:
    """`coldchain db rollups` (advisory lock, then the queue) under a draining rules worker: the worker
    takes the advisory lock before any queue row, so the two never deadlock."""
    sids = _new_series(aconn, 1)
    write_batch(aconn, sids, [Reading(0, T0, 1.0, 0.0, False)])
    if rollups.kept_by_timescale(aconn):
        assert aconn.execute("SELECT rollup_refresh_pending()").fetchone() == (0,)
        return
    drained: list[int] = []

    def drain() -> None:
        with psycopg.connect(db_url, autocommit=True) as worker:
            drained.append(worker.execute("SELECT rollup_refresh_pending()").fetchone()[0])  # type: ignore[index]

    with psycopg.connect(db_url) as full:  # one transaction, as dashboards.rollups.refresh runs
        full.execute("SELECT pg_advisory_xact_lock(hashtext('coldchain.rollups'))")
        worker = threading.Thread(target=drain)
        worker.start()
        for _ in range(3000):  # until the worker waits for the advisory lock (observed, bounded)
            waiting = aconn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting == (1,):
                break
            time.sleep(0.01)
        else:
            pytest.fail("the worker never waited for the advisory lock")
        full.execute("SET LOCAL lock_timeout = '5s'")
        full.execute("DELETE FROM rollup_pending")  # waits on no row the worker holds
        full.commit()
    worker.join(timeout=60)
    assert drained == [0], "the full refresh took the queue; the worker found it empty"

"""Tests: kill -9 of a rules worker process mid-batch; after restart every verdict exists exactly once.

The worker process takes a batch whose first series it evaluates (a gap chain break, its outbox row,
its history version, written in the open transaction) and then waits on the advisory lock of the
batch's second series, which the test holds: a deterministic "mid-batch". It is SIGKILLed there, a new
worker process takes over, and everything it leaves (excursions, chain breaks, verdict_history
versions, verdict_outbox payloads, emissions, alarms) must equal what one uninterrupted worker leaves
on the same data in a database of its own, with every outbox verdict present once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from rules_support import LOT, Conn, add_asset, add_batch, add_device, add_series, at, custody

from rules.worker import RulesWorker

DEADLINE_S = 120.0  # numba compiles on a cold cache; the polls end as soon as their condition holds

WORKER = """
import sys, threading
from rules.worker import RulesWorker
RulesWorker(sys.argv[1], batch_limit=1).run_forever(threading.Event(), poll_s=0.05)
"""

# The test data: (series index, first minute, last minute, value at each minute) per batch; series 0 is
# probe A, series 1 probe B (another device on the same truck). Batch 3 touches both: the kill batch.
Batch = list[tuple[int, list[tuple[int, float]]]]
BATCHES: list[Batch] = [
    [(0, [(m, 5.0) for m in range(0, 10)])],
    [(0, [(m, 5.0 if m < 15 else 9.5) for m in range(10, 20)])],  # an excursion opens at 15
    [(0, [(m, 9.5 if m < 25 else 5.0) for m in range(20, 30)])],  # ... and closes: excursion_closed
    [(0, [(m, 5.0) for m in range(40, 50)]), (1, [(m, 5.0) for m in range(40, 50)])],  # A: 29 -> 40 gap
    [
        (0, [(m, 5.0) for m in range(50, 60)]),
        (1, [(m, 9.5 if 52 <= m <= 56 else 5.0) for m in range(50, 60)]),
    ],
]


def _registry(conn: Conn) -> list[int]:
    """The truck, its two probes and a lot on it. Returns the series ids."""
    add_asset(conn, "TRUCK-K", "reefer_truck", "pharma_2_8", "transport")
    add_device(conn, "probe-a", "TRUCK-K")
    add_device(conn, "probe-b", "TRUCK-K")
    sids = [add_series(conn, "probe-a", "temp"), add_series(conn, "probe-b", "temp")]
    conn.execute("INSERT INTO lot (lot_id, product_class) VALUES (%s, 'pharma_2_8')", (LOT,))
    custody(conn, "TRUCK-K", 0, None)
    return sids


def _queue(conn: Conn, sids: list[int], batches: list[Batch]) -> None:
    """Readings and their ingest_batch row, one transaction per batch (as the gateway commits them)."""
    for batch in batches:
        with conn.transaction(), conn.cursor() as cur:
            for k, points in batch:
                cur.executemany(
                    "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, now())",
                    [(at(m), sids[k], v) for m, v in points],
                )
            minutes = [m for _, points in batch for m, _ in points]
            add_batch(conn, sorted(sids[k] for k, _ in batch), min(minutes), max(minutes))


def _queued(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM ingest_batch").fetchone()
    assert row is not None
    return int(row[0])


def _state(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the rules stage wrote, without ids and wall-clock times."""
    q: dict[str, str] = {
        "excursion": "SELECT series_id, asset_id, rule_id, start_time, end_time, open, peak_c, readings"
        " FROM excursion ORDER BY 1, 3, 4",
        "chain_break": "SELECT kind, series_id, asset_id, rule_id, start_time, end_time, allowed_s, detail"
        " FROM chain_break ORDER BY 1, 2, 4, 5",
        "history": "SELECT subject_kind, subject_id, version, verdict, items, reasons, arrived, change"
        " FROM verdict_history ORDER BY 1, 2, 3",
        "outbox": "SELECT kind, payload - 'computed_at' FROM verdict_outbox ORDER BY payload->>'verdict_id'",
        "emitted": "SELECT kind, series_id, rule_id, start_time, end_time FROM verdict_emitted"
        " ORDER BY 1, 2, 3, 4",
        "alarm": "SELECT asset_id, rule_id, kind, severity, state, condition_start, condition_end, reason"
        " FROM alarm ORDER BY 1, 2, 6",
    }
    return {name: conn.execute(query).fetchall() for name, query in q.items()}  # type: ignore[arg-type]


def _poll(what: str, check: Callable[[], bool], show: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what} {show()}"
        time.sleep(0.05)  # a polling interval, not a synchronisation: the condition decides


def _named(url: str, application_name: str) -> str:
    return make_conninfo(url, application_name=application_name)


def _running(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True while the worker process runs; a worker that died fails the test with its log."""
    assert proc.poll() is None, log.read_text()
    return True


def _backend(conn: Conn, application_name: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT wait_event_type, wait_event, backend_xid IS NOT NULL FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s",
        (application_name,),
    ).fetchone()


def _spawn(url: str, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, url], stdout=log, stderr=subprocess.STDOUT)


def test_kill_9_mid_batch_leaves_every_verdict_once(
    db_url: str, conn: Conn, second_db_url: str, tmp_path: Path
) -> None:
    sids = _registry(conn)
    with psycopg.connect(second_db_url, autocommit=True) as ref:
        assert _registry(ref) == sids
        worker = RulesWorker(second_db_url, batch_limit=1)
        try:
            for part in (BATCHES[:3], BATCHES[3:]):
                _queue(ref, sids, part)
                while worker.run_once():
                    pass
        finally:
            worker.close()
        want = _state(ref)
    # The data reaches every kind of verdict the crash could double.
    assert {k for k, _ in want["outbox"]} == {"excursion_closed", "chain_break", "lot_verdict"}

    # Hold probe B's series lock: the worker stops inside batch 3, after writing probe A's verdicts.
    holder = psycopg.connect(db_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('rules.series'), mod(%s, 2147483647)::int)", (sids[1],))
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    first = _spawn(_named(db_url, "rules-kill-1"), log)
    try:
        _queue(conn, sids, BATCHES[:3])
        _poll("the worker to take batches 0-2", lambda: _running(first, log_path) and _queued(conn) == 0)
        _queue(conn, sids, BATCHES[3:])
        _poll(
            "the worker to wait on probe B's lock with batch 3 written but not committed",
            lambda: (
                _running(first, log_path) and _backend(conn, "rules-kill-1") == ("Lock", "advisory", True)
            ),
            lambda: _backend(conn, "rules-kill-1"),
        )
        assert _queued(conn) == 2  # batch 3 (held) and 4 still queued
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
        holder.execute("SELECT pg_advisory_unlock_all()")
        holder.close()
    # The killed worker's backend ends once it has the lock and finds its client gone: rolled back.
    _poll("the killed worker's backend to end", lambda: _backend(conn, "rules-kill-1") is None)
    assert not [p for k, p in _state(conn)["outbox"] if k == "chain_break"]  # batch 3 rolled back

    second = _spawn(_named(db_url, "rules-kill-2"), log)
    try:
        _poll(
            "the restarted worker to empty the queue",
            lambda: _running(second, log_path) and _queued(conn) == 0,
        )
    finally:
        second.kill()
        second.wait(timeout=DEADLINE_S)
        log.close()
    got = _state(conn)
    ids = [p["verdict_id"] for _, p in got["outbox"]]
    assert len(ids) == len(set(ids)), "a verdict was handed to the ledger twice"
    for name in want:
        assert got[name] == want[name], name

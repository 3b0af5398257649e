"""Tests: a ledger worker process killed with SIGKILL while it holds a batch loses and doubles nothing.

The test holds the ledger's append lock, so the worker process takes its batch (the outbox rows locked
``FOR UPDATE SKIP LOCKED``) and then waits to append: that is when it is killed. After a restart drains
the outboxes, the ledger holds exactly the events an uninterrupted worker appends on the same input,
one per verdict, and the chain verifies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from trace_support import build_scenario

from traceability import queries
from traceability.ledger import verify
from traceability.worker import LedgerWorker

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "ledger-worker-under-test"
TIMEOUT_S = 60.0
# The worker process: drains both outboxes (a restart does the same), then exits.
WORKER = """
import sys
from traceability.worker import LedgerWorker
worker = LedgerWorker(sys.argv[1])
while worker.run_once():
    pass
"""


def _until(done: Any, what: str) -> None:
    """Poll ``done()`` until it is true, with a deadline."""
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _prepare(url: str, stage: str) -> int:
    """The scenario's outboxes; for ``verdicts`` the rfid outbox is drained first, so that the batch the
    worker holds is of verdicts. Returns the number of verdict rows left to process."""
    build_scenario(url)
    with psycopg.connect(url) as conn:
        verdicts = conn.execute("SELECT kind, payload FROM verdict_outbox ORDER BY outbox_id").fetchall()
        if stage == "verdicts":
            conn.execute("DELETE FROM verdict_outbox")
            conn.commit()
            LedgerWorker(url).run_once()
            for kind, payload in verdicts:
                conn.execute(
                    "INSERT INTO verdict_outbox (kind, payload) VALUES (%s, %s)",
                    (kind, psycopg.types.json.Jsonb(payload)),
                )
            conn.commit()
    return len(verdicts)


def _ledger(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT seq, event_id, event_type, biz_step FROM ledger_event ORDER BY seq"
        ).fetchall()


def _outboxes(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM ingest_batch WHERE kind = 'rfid'),"
        " (SELECT count(*) FROM verdict_outbox)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _worker(url: str) -> subprocess.Popen[bytes]:
    conninfo = make_conninfo(url, application_name=APP_NAME)
    return subprocess.Popen([sys.executable, "-c", WORKER, conninfo], cwd=ROOT)


@pytest.mark.parametrize(("stage", "outbox"), [("rfid", "ingest_batch"), ("verdicts", "verdict_outbox")])
def test_sigkill_mid_batch_then_restart_appends_each_event_once(
    db_url: str, second_db_url: str, stage: str, outbox: str
) -> None:
    verdict_rows = _prepare(db_url, stage)
    _prepare(second_db_url, stage)
    while LedgerWorker(second_db_url).run_once():
        pass
    expected = _ledger(second_db_url)

    before = _ledger(db_url)
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (queries.LEDGER_LOCK_KEY,))
        outboxes = _outboxes(holder)
        worker = _worker(db_url)
        try:
            waiting: list[int] = []

            def waits_to_append() -> bool:
                """The worker's backend waits for the ledger lock: it has taken its batch."""
                row = holder.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                    (APP_NAME,),
                ).fetchone()
                if row is not None:
                    waiting.append(int(row[0]))
                return row is not None

            _until(waits_to_append, "the worker process never came to append")
            held = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = %s::regclass",
                (waiting[0], outbox),
            ).fetchone()
            worker.kill()  # SIGKILL: no handler, no rollback from the client
            assert worker.wait(TIMEOUT_S) == -9
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(TIMEOUT_S)
        holder.execute("SELECT pg_advisory_unlock(%s)", (queries.LEDGER_LOCK_KEY,))
        # The dead client's backend wakes with the lock, finds its client gone and rolls back.
        _until(
            lambda: (
                holder.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (waiting[0],)).fetchone()
                is None
            ),
            "the killed worker's backend never ended",
        )
        assert _ledger(db_url) == before  # nothing of the killed batch was committed
        assert _outboxes(holder) == outboxes  # and its outbox rows are all still there
        assert held is not None
        assert held[0] > 0, f"the worker was killed holding no rows of {outbox}"

    restarted = _worker(db_url)
    assert restarted.wait(TIMEOUT_S) == 0

    after = _ledger(db_url)
    assert after == expected  # each event once, in the order an uninterrupted worker appends them
    assert [e[1] for e in after if e[3] == "sensor_reporting"] == [
        e[1] for e in expected if e[3] == "sensor_reporting"
    ]
    assert sum(1 for e in after if e[3] == "sensor_reporting") == verdict_rows  # one event per verdict
    with psycopg.connect(db_url) as conn:
        assert _outboxes(conn) == (0, 0)
        result = verify.verify(conn)
    assert (result.ok, result.events) == (True, len(expected))

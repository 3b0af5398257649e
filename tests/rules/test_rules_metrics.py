"""Tests: the rules worker's Prometheus metrics: its queue read from ingest_batch, its runs, the verdicts
and alarms it wrote, counted as the database holds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rules_support import Conn, add_batch, add_readings, add_series, drain

from rules.worker import RulesWorker
from tests.rules.test_rules_worker import chilled_profile, truck


@pytest.fixture
def worker(db_url: str) -> Iterator[RulesWorker]:
    w = RulesWorker(db_url)
    try:
        yield w
    finally:
        w.close()


def _value(worker: RulesWorker, name: str, **labels: str) -> float | None:
    return worker.metrics.registry.get_sample_value(name, labels)


def test_queue_depth_and_lag_are_the_waiting_telemetry_rows(worker: RulesWorker, conn: Conn) -> None:
    sid = truck(conn)
    assert _value(worker, "coldchain_rules_queue_depth") == 0
    assert _value(worker, "coldchain_rules_queue_lag_seconds") == 0
    add_batch(conn, [sid], 0, 1)
    add_batch(conn, [sid], 1, 2)
    # Rows the rules stage does not take are not its queue.
    conn.execute(
        "INSERT INTO ingest_batch (kind, device_ids, t_min, t_max) VALUES ('rfid', '{r}', now(), now())"
    )
    # The oldest waiting row was committed two minutes ago.
    conn.execute(
        "UPDATE ingest_batch SET created_at = created_at - interval '120 seconds'"
        " WHERE batch_id = (SELECT min(batch_id) FROM ingest_batch)"
    )
    assert _value(worker, "coldchain_rules_queue_depth") == 2
    lag = _value(worker, "coldchain_rules_queue_lag_seconds")
    assert lag is not None
    assert lag >= 120
    drain(worker)
    assert _value(worker, "coldchain_rules_queue_depth") == 0
    assert _value(worker, "coldchain_rules_queue_lag_seconds") == 0


def test_verdicts_and_alarms_counted_as_written(worker: RulesWorker, conn: Conn) -> None:
    sid = truck(conn)
    door = add_series(conn, "truck-rc", "door")
    # An excursion at minutes 30..44 and a 40-min gap in transport (test_rules_worker's chilled truck).
    add_readings(conn, sid, chilled_profile([*range(61), *range(100, 121)]))
    add_readings(conn, door, [(0, 0.0), (120, 1.0)])
    assert _value(worker, "coldchain_rules_batch_seconds_count") == 0
    drain(worker)
    written = dict(conn.execute("SELECT kind, count(*) FROM verdict_outbox GROUP BY kind").fetchall())
    assert written.get("chain_break", 0) >= 1, "the gap is a verdict for the ledger"
    for kind in ("excursion_closed", "chain_break", "lot_verdict"):
        assert (_value(worker, "coldchain_rules_verdicts_total", kind=kind) or 0) == written.get(kind, 0), (
            kind
        )
    # Each alarm counts once when opened and once per escalation, at the severity it reached.
    opened, escalations = conn.execute("SELECT count(*), coalesce(sum(escalation), 0) FROM alarm").fetchone()
    assert opened >= 1
    counted = sum(
        _value(worker, "coldchain_rules_alarms_total", severity=s) or 0
        for s in ("info", "warning", "critical")
    )
    assert counted == opened + escalations
    for (severity,) in conn.execute("SELECT DISTINCT severity FROM alarm WHERE escalation = 0").fetchall():
        assert (_value(worker, "coldchain_rules_alarms_total", severity=severity) or 0) >= 1
    # One observation per run that found work; the empty run that ended the drain is none.
    assert _value(worker, "coldchain_rules_batch_seconds_count") == 1
    assert worker.run_once() == 0
    assert _value(worker, "coldchain_rules_batch_seconds_count") == 1

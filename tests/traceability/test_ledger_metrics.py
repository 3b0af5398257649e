"""Tests: the ledger worker's Prometheus metrics: verify_ok from a verification of the real chain (1 intact,
0 once a row is tampered with), its queue, the events it appended, capture jobs and the checkpoint's age."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from ledger_support import append_numbered

from tests.traceability.test_ledger_tampering import _tamper
from tests.traceability.test_trace_lot_verdict import LOT, _payload
from traceability import queries
from traceability.ledger import checkpoint
from traceability.metrics import LedgerMetrics
from traceability.worker import LedgerWorker


def _value(metrics: LedgerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_verify_ok_is_1_on_an_intact_chain_and_0_after_tampering(db_url: str) -> None:
    metrics = LedgerMetrics(db_url)
    assert _value(metrics, "coldchain_ledger_verify_ok") is None, "no verification yet: no verdict"
    with psycopg.connect(db_url) as conn:
        append_numbered(conn, 4)
        conn.commit()
        result = metrics.verify_once()
        assert result is not None
        assert result.ok
        assert _value(metrics, "coldchain_ledger_verify_ok") == 1
        assert _value(metrics, "coldchain_ledger_verify_seconds_count") == 1
        _tamper(conn, "event_byte", 2, 4)  # one character of entry 2's stored event
        conn.commit()
    result = metrics.verify_once()
    assert result is not None
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert _value(metrics, "coldchain_ledger_verify_ok") == 0
    assert _value(metrics, "coldchain_ledger_verify_seconds_count") == 2


def test_verify_ok_checks_checkpoints_under_the_ledger_key(db_url: str, tmp_path: Path) -> None:
    key_path = tmp_path / "keys" / "ledger.pem"
    key = checkpoint.load_or_create_key(key_path)
    with psycopg.connect(db_url) as conn:
        append_numbered(conn, 3)
        checkpoint.sign_head(conn, key)
        conn.commit()
    keyed = LedgerMetrics(db_url, ledger_key=key_path)
    keyed.verify_once()
    assert _value(keyed, "coldchain_ledger_verify_ok") == 1
    # Without the key, the signed checkpoint cannot be checked: not verified.
    unkeyed = LedgerMetrics(db_url)
    unkeyed.verify_once()
    assert _value(unkeyed, "coldchain_ledger_verify_ok") == 0


def test_queue_appended_events_capture_jobs_and_checkpoint_age(db_url: str, tmp_path: Path) -> None:
    metrics = LedgerMetrics(db_url)
    assert _value(metrics, "coldchain_ledger_queue_depth") == 0
    assert _value(metrics, "coldchain_ledger_checkpoint_age_seconds") is None, "no checkpoint: no age"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO lot (lot_id, product_class) VALUES (%s, 'chilled')", (LOT,))
        for _ in range(2):  # the same verdict delivered twice is one ledger event
            conn.execute(
                "INSERT INTO verdict_outbox (kind, payload, created_at)"
                " VALUES ('lot_verdict', %s::jsonb, now() - interval '90 seconds')",
                (json.dumps(_payload("broken", 1)),),
            )
        conn.execute("INSERT INTO ingest_batch (kind, t_min, t_max) VALUES ('rfid', now(), now())")
        conn.execute(  # a crossing of an asset the registry does not hold: taken, nothing appended
            "INSERT INTO geofence_outbox (payload) VALUES (%s::jsonb)",
            (
                json.dumps(
                    {
                        "crossing": "enter",
                        "asset_id": "NO-SUCH-ASSET",
                        "location_id": "urn:epc:id:sgln:6901234.00010.0",
                        "at": "2026-01-01T00:00:00.000Z",
                        "device_id": "gps",
                        "lat": 21.68,
                        "lon": 108.6,
                        "computed_at": "2026-01-01T00:01:00.000Z",
                    }
                ),
            ),
        )
        conn.execute(  # the rules stage's rows are not the ledger's queue
            "INSERT INTO ingest_batch (kind, t_min, t_max) VALUES ('telemetry', now(), now())"
        )
        assert _value(metrics, "coldchain_ledger_queue_depth") == 4
        lag = _value(metrics, "coldchain_ledger_queue_lag_seconds")
        assert lag is not None
        assert lag >= 90

        worker = LedgerWorker(db_url, metrics=metrics)
        assert worker.run_once() == 4
        assert worker.run_once() == 0
        assert _value(metrics, "coldchain_ledger_queue_depth") == 0
        assert _value(metrics, "coldchain_ledger_queue_lag_seconds") == 0
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (1,)
        assert _value(metrics, "coldchain_ledger_events_appended_total") == 1
        assert _value(metrics, "coldchain_ledger_batch_seconds_count") == 1, "the empty run is not one"

        conn.execute(queries.ENQUEUE_CAPTURE_JOB, ("job-pending", b"{}", "capture key"))
        for job, success in (("job-ok", True), ("job-refused", False)):
            conn.execute(
                "INSERT INTO capture_job (capture_id, finished_at, running, success)"
                " VALUES (%s, now(), false, %s)",
                (job, success),
            )
        jobs = {
            s: _value(metrics, "coldchain_ledger_capture_jobs", state=s)
            for s in ("pending", "succeeded", "failed")
        }
        assert jobs == {"pending": 1, "succeeded": 1, "failed": 1}

        key = checkpoint.load_or_create_key(tmp_path / "ledger.pem")
        checkpoint.sign_head(conn, key, now=datetime.now(UTC) - timedelta(hours=1))  # signed an hour ago
        age = _value(metrics, "coldchain_ledger_checkpoint_age_seconds")
        assert age is not None
        assert age >= 3600

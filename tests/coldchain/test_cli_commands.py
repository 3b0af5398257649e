"""Composition root: each one-shot command of the README's table, run as `coldchain`, succeeds and fails
as it says (exit code, one line on stderr), against a real PostgreSQL database of the test's own."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from process_support import as_url, coldchain
from rules_support import add_asset, add_device, add_readings, add_series, drain

from coldchain.cli.common import ExitCode
from coldchain.migrate import discover
from rules.worker import RulesWorker

LOT = "urn:epc:class:lgtin:6901234.012345.CLI1"
SSCC = "urn:epc:id:sscc:6901234.0000000123"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def lot_document() -> dict[str, Any]:
    """An EPCIS 2.0 document: the lot packed onto a pallet, then the pallet stored."""
    events = [
        {
            "type": "AggregationEvent",
            "eventTime": iso(T0),
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "packing",
            "parentID": SSCC,
            "childQuantityList": [{"epcClass": LOT, "quantity": 10, "uom": "KGM"}],
        },
        {
            "type": "ObjectEvent",
            "eventTime": iso(T0 + timedelta(hours=1)),
            "eventTimeZoneOffset": "+08:00",
            "action": "OBSERVE",
            "bizStep": "storing",
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.1"},
            "epcList": [SSCC],
        },
    ]
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(T0 + timedelta(hours=2)),
        "epcisBody": {"eventList": events},
    }


class Home:
    """COLDCHAIN_HOME in `tmp_path`, on the test's own database (COLDCHAIN_DATABASE_URL)."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.path = tmp_path / "home"
        self.db_url = as_url(db_url)
        self.tmp = tmp_path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return coldchain(
            *args, env={"COLDCHAIN_HOME": str(self.path), "COLDCHAIN_DATABASE_URL": self.db_url, **env}
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == ExitCode.OK, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    def last_json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).stdout.strip().splitlines()[-1])

    def with_lot(self) -> None:
        doc = self.tmp / "lot.json"
        doc.write_text(json.dumps(lot_document()))
        job = self.last_json("ledger", "import", str(doc))
        assert job["success"] is True, job

    @property
    def key_file(self) -> Path:
        return self.path / "keys" / "ledger-ed25519.pem"


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> Home:
    return Home(tmp_path, db_url)


def one_line_error(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.count("\n") == 1, done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def stranger_key(tmp_path: Path) -> Path:
    """A PEM public key that never signed anything here."""
    path = tmp_path / "stranger.pub.pem"
    public = Ed25519PrivateKey.generate().public_key()
    path.write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


# --- db migrate --------------------------------------------------------------------------------------


def test_db_migrate_applies_every_migration_once(tmp_path: Path, empty_db_url: str) -> None:
    home = Home(tmp_path, empty_db_url)
    first = home.ok("db", "migrate").stdout.strip().splitlines()
    applied = int(first[0].split()[1])
    assert applied > 0
    skipped = first[applied + 1 :]
    paired = {m.twin_key for m in discover() if m.plain_only}  # built by their plain twins instead
    timescale_only = {m.key for m in discover() if m.timescale_only} - paired
    if skipped:  # a server without timescaledb: the Timescale files are named, not silently left out
        assert skipped[0].startswith(f"skipped {len(timescale_only)} TimescaleDB-only migration(s)")
        assert {line.strip() for line in skipped[1:]} == timescale_only
    again = home.ok("db", "migrate").stdout.strip().splitlines()
    assert again[0] == "applied 0 migration(s)"
    assert again[1:] == skipped


def test_db_migrate_names_an_unreachable_database(tmp_path: Path) -> None:
    home = Home(tmp_path, "postgresql://postgres@127.0.0.1:1/nowhere")
    one_line_error(home.run("db", "migrate"), ExitCode.UNAVAILABLE, "COLDCHAIN_DATABASE_URL")


def test_db_rollups_rebuilds_the_rollups_of_rows_written_around_the_queue(home: Home) -> None:
    with psycopg.connect(home.db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO device (device_id, kind) VALUES ('bulk-1', 'temp_logger')")
        (sid,) = conn.execute(
            "INSERT INTO series (device_id, channel) VALUES ('bulk-1', 'temp') RETURNING series_id"
        ).fetchone() or (None,)
        conn.execute(  # a bulk import: raw rows, no ingest_batch, so nothing queued
            "INSERT INTO reading (time, series_id, value, received_at) SELECT t, %s, 3.0, t"
            " FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') t",
            (sid, T0, T0 + timedelta(minutes=89)),
        )
        before = conn.execute("SELECT count(*) FROM reading_1h WHERE series_id = %s", (sid,)).fetchone()
    assert home.ok("db", "rollups").stdout.strip() == "rollups rebuilt from the raw readings"
    with psycopg.connect(home.db_url) as conn:
        after = conn.execute(
            "SELECT sum(readings), sum(minutes) FROM reading_1h WHERE series_id = %s", (sid,)
        ).fetchone()
    assert before == (0,) or _timescale_realtime(home.db_url)
    assert after == (90, 90)


def _timescale_realtime(url: str) -> bool:
    """Real-time continuous aggregates show unmaterialised raw rows before any refresh."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


# --- ledger checkpoint, declare-error ---------------------------------------------------------------


def test_ledger_checkpoint_signs_the_head_and_logs_it(home: Home) -> None:
    home.with_lot()
    cp = home.last_json("ledger", "checkpoint")
    assert cp["seq"] == 2
    assert home.key_file.stat().st_mode & 0o777 == 0o600
    log = home.key_file.parent / "ledger-checkpoints.jsonl"
    assert [json.loads(line)["seq"] for line in log.read_text().splitlines()] == [2]


def test_ledger_checkpoint_of_an_empty_ledger_signs_nothing(home: Home) -> None:
    one_line_error(home.run("ledger", "checkpoint"), ExitCode.FAILED, "empty ledger: nothing to sign")


def test_declare_error_appends_a_correction(home: Home) -> None:
    home.with_lot()
    with psycopg.connect(home.db_url) as conn:
        row = conn.execute("SELECT event_id FROM ledger_event WHERE seq = 2").fetchone()
    assert row is not None
    answer = home.last_json("ledger", "declare-error", row[0], "--reason", "did_not_occur")
    assert answer == {"event_id": row[0], "seq": 3}
    with psycopg.connect(home.db_url) as conn:
        event = conn.execute("SELECT event FROM ledger_event WHERE seq = 3").fetchone()
    assert event is not None
    assert event[0]["errorDeclaration"]["reason"].endswith("did_not_occur")


def test_declare_error_of_an_unknown_event(home: Home) -> None:
    one_line_error(
        home.run("ledger", "declare-error", "ni:///sha-256;00?ver=CBV2.0"), ExitCode.FAILED, "no event"
    )


# --- ledger api-key create ----------------------------------------------------------------------------


def test_api_key_create_prints_the_key_once_and_stores_its_hash(home: Home) -> None:
    answer = home.last_json("ledger", "api-key", "create", "--role", "inspector", "--name", "customs QZ")
    assert answer["role"] == "inspector"
    assert answer["name"] == "customs QZ"
    with psycopg.connect(home.db_url) as conn:
        stored = " ".join(str(v) for row in conn.execute("SELECT * FROM api_key").fetchall() for v in row)
    assert "customs QZ" in stored
    assert answer["api_key"] not in stored


def test_api_key_create_refuses_an_unknown_role(home: Home) -> None:
    done = home.run("ledger", "api-key", "create", "--role", "king", "--name", "x")
    one_line_error(done, ExitCode.USAGE, "unknown role 'king'")


# --- ledger verify --deep -----------------------------------------------------------------------------


def test_verify_deep_of_a_signed_ledger(home: Home) -> None:
    home.with_lot()
    home.ok("ledger", "checkpoint")
    verdict = home.last_json("ledger", "verify", "--deep", "--json")
    assert (verdict["ok"], verdict["events"], verdict["signed_seq"]) == (True, 2, 2)
    assert "ledger intact: 2 events" in home.ok("ledger", "verify", "--deep").stdout


def test_verify_deep_of_an_unsigned_ledger_is_not_verified(home: Home) -> None:
    home.with_lot()
    done = home.run("ledger", "verify", "--deep")
    assert done.returncode == ExitCode.FAILED, done.stderr
    assert "ledger NOT VERIFIED" in done.stdout


def test_verify_deep_with_a_stranger_key_is_not_verified(home: Home, tmp_path: Path) -> None:
    home.with_lot()
    home.ok("ledger", "checkpoint")
    done = home.run("ledger", "verify", "--deep", "--json", "--public-key", str(stranger_key(tmp_path)))
    assert done.returncode == ExitCode.FAILED, done.stderr
    verdict = json.loads(done.stdout.strip().splitlines()[-1])
    assert verdict["ok"] is False
    assert verdict["problems"]


# --- ledger export, verify-bundle --public-key ----------------------------------------------------------


def test_export_then_verify_bundle_against_the_signer_key(home: Home, tmp_path: Path) -> None:
    home.with_lot()
    bundle = tmp_path / "lot.bundle.json"
    exported = home.last_json("ledger", "export", "--lot", LOT, "-o", str(bundle))
    assert exported["lot_id"] == LOT
    assert exported["bytes"] == bundle.stat().st_size
    # Offline: no database, the signer's key given on the command line.
    offline = coldchain(
        "ledger", "verify-bundle", str(bundle), "--public-key", str(home.key_file),
        env={"COLDCHAIN_HOME": str(tmp_path / "elsewhere")},
    )  # fmt: skip
    assert offline.returncode == ExitCode.OK, offline.stdout + offline.stderr
    assert json.loads(offline.stdout.strip().splitlines()[-1])["ok"] is True


def test_verify_bundle_refuses_a_bundle_under_another_key(home: Home, tmp_path: Path) -> None:
    home.with_lot()
    bundle = tmp_path / "lot.bundle.json"
    home.ok("ledger", "export", "--lot", LOT, "-o", str(bundle))
    done = home.run("ledger", "verify-bundle", str(bundle), "--public-key", str(stranger_key(tmp_path)))
    assert done.returncode == ExitCode.FAILED, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["ok"] is False


def test_verify_bundle_refuses_a_public_key_that_is_none(home: Home, tmp_path: Path) -> None:
    home.with_lot()
    bundle = tmp_path / "lot.bundle.json"
    home.ok("ledger", "export", "--lot", LOT, "-o", str(bundle))
    done = home.run("ledger", "verify-bundle", str(bundle), "--public-key", "not-a-key")
    one_line_error(done, ExitCode.USAGE, "--public-key")


def test_export_of_an_unknown_lot_writes_nothing(home: Home, tmp_path: Path) -> None:
    home.with_lot()
    bundle = tmp_path / "nothing.json"
    done = home.run("ledger", "export", "--lot", "urn:epc:class:lgtin:0000000.000000.NOPE", "-o", str(bundle))
    one_line_error(done, ExitCode.FAILED, "NOPE")
    assert not bundle.exists()


def test_rules_quarantine_lists_a_batch_that_raised_and_sends_it_back(home: Home) -> None:
    with psycopg.connect(home.db_url, autocommit=True) as conn:
        add_asset(conn, "TRUCK-CLI", "reefer_truck", "chilled", "transport")
        add_device(conn, "cli-probe", "TRUCK-CLI")
        sid = add_series(conn, "cli-probe", "temp")
        add_readings(conn, sid, [(0, 2.0), (1, float("inf"))])
        worker = RulesWorker(home.db_url)
        try:
            drain(worker)
        finally:
            worker.close()
    [held] = home.last_json("rules", "quarantine")["quarantined"]
    assert held["series_ids"] == [sid]
    assert held["error"].startswith("ValueError: ")
    assert home.last_json("rules", "quarantine", "--requeue", str(held["batch_id"])) == {
        "requeued": held["batch_id"]
    }
    assert home.last_json("rules", "quarantine") == {"quarantined": []}
    one_line_error(
        home.run("rules", "quarantine", "--requeue", str(held["batch_id"])), ExitCode.FAILED, "no quarantined"
    )

"""Tests: `ledger import` takes the bytes-in path of POST /epcis/capture, under the COLDCHAIN_CAPTURE_*
settings (sizes, depth, clock skew), and bytes that are not UTF-8 are a refusal with a reason (API and
CLI), never an exception. Real PostgreSQL throughout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from capture_support import refused
from fastapi.testclient import TestClient
from process_support import as_url
from typer.testing import CliRunner, Result

from coldchain.cli import app as cli_app
from coldchain.cli.common import ExitCode
from traceability.api.auth import create_key
from traceability.epcis.builders import iso_ms

CTX = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"ex": "http://ns.example.com/epcis/"},
]
NOW = datetime.now(UTC).replace(microsecond=0)


def _doc(t: datetime = NOW - timedelta(hours=1), **extra: Any) -> dict[str, Any]:
    event = {
        "type": "ObjectEvent",
        "eventTime": iso_ms(t),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "epcList": ["urn:epc:id:sscc:6901234.0000000088"],
        "bizStep": "receiving",
        "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.3"},
        **extra,
    }
    return {
        "@context": CTX,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_ms(NOW),
        "epcisBody": {"eventList": [event]},
    }


def _nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = {"ex:level": value}
    return value


def _import(db_url: str, tmp: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, **settings: str) -> Result:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(tmp))
    for name, value in settings.items():
        monkeypatch.setenv(f"COLDCHAIN_CAPTURE_{name.upper()}", value)
    path = tmp / "doc.json"
    path.write_bytes(data)
    return CliRunner().invoke(cli_app, ["ledger", "import", str(path)])


def _stored(db_url: str) -> tuple[int, list[tuple[bool, Any]]]:
    """The ledger's entries and the capture jobs' (success, errors)."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
        jobs = conn.execute("SELECT success, errors FROM capture_job").fetchall()
    assert row is not None
    return int(row[0]), [(bool(s), e) for s, e in jobs]


def _job(result: Result) -> dict[str, Any]:
    job: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return job


def test_import_refuses_a_document_over_the_configured_size(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = msgspec.json.encode(_doc())
    limit = len(data) - 1
    result = _import(db_url, server_tmp, monkeypatch, data, max_document_bytes=str(limit))
    assert result.exit_code == ExitCode.USAGE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"larger than {limit} bytes" in lines[0]
    events, jobs = _stored(db_url)
    assert events == 0
    assert [ok for ok, _ in jobs] == [False]  # the refusal is a capture job, as through the API


def test_import_applies_the_configured_depth_and_event_size(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = msgspec.json.encode(_doc(**{"ex:deep": _nested(10)}))
    result = _import(db_url, server_tmp, monkeypatch, deep, max_depth="8")
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "nested deeper than 8 levels" in _job(result)["errors"][0]["message"]
    result = _import(db_url, server_tmp, monkeypatch, msgspec.json.encode(_doc()), max_event_bytes="100")
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "more than 100" in _job(result)["errors"][0]["message"]
    assert _stored(db_url)[0] == 0


def test_import_applies_the_configured_clock_skew(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event ten minutes ahead: refused under the default skew (five minutes), captured under an hour."""
    # Ahead of the clock when the test runs (NOW is when the module was loaded, maybe minutes before).
    ahead = msgspec.json.encode(_doc(datetime.now(UTC) + timedelta(minutes=10)))
    refused = _import(db_url, server_tmp, monkeypatch, ahead)
    assert refused.exit_code == ExitCode.FAILED, refused.output
    assert "allowed clock skew" in _job(refused)["errors"][0]["message"]
    captured = _import(db_url, server_tmp, monkeypatch, ahead, future_skew_s="3600")
    assert captured.exit_code == ExitCode.OK, captured.output
    assert _job(captured)["success"] is True
    assert _stored(db_url)[0] == 1


BAD_UTF8 = (
    json.dumps(_doc(NOW - timedelta(hours=1), **{"ex:note": "@@"})).encode().replace(b"@@", b"\xff\xfe")
)


def test_import_of_bytes_that_are_not_utf8_is_one_line(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _import(db_url, server_tmp, monkeypatch, BAD_UTF8)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "not UTF-8" in lines[0]
    assert _stored(db_url)[0] == 0


def test_capture_of_a_body_that_is_not_utf8_is_a_refused_job(db_url: str) -> None:
    from traceability.api.app import create_app
    from traceability.api.options import ApiOptions

    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "capture", "utf8")
    app = create_app(db_url, options=ApiOptions(capture_worker=True))
    headers = {"X-API-Key": key}
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        response = client.post(
            "/epcis/capture", content=BAD_UTF8, headers={"Content-Type": "application/json"}
        )
        job = refused(client, response, "not UTF-8")
    assert job["errors"][0]["path"] == ""
    events, jobs = _stored(db_url)
    assert events == 0
    assert [ok for ok, _ in jobs] == [False]

"""Tests: every API route end to end, its success and its error paths: the ledger's checkpoint, alarms
(list, acknowledge, resolve), capture jobs and roles, and revoked keys (the function and the CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from tests.traceability.test_ledger_trust import _append, _key
from traceability.api.app import create_app
from traceability.api.auth import KeyRevocationError, create_key, revoke_key
from traceability.api.options import ApiOptions
from traceability.api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, EpcisException
from traceability.epcis import builders
from traceability.ledger import checkpoint

ROLES = ("inspector", "operator", "capture", "admin")


@pytest.fixture
def keys(db_url: str) -> dict[str, str]:
    """One key per role, and an asset with two open alarms."""
    with psycopg.connect(db_url) as conn:
        made = {role: create_key(conn, role, f"{role} key") for role in ROLES}
        conn.execute(
            "INSERT INTO asset (asset_id, kind, name, mode)"
            " VALUES ('TRUCK-1', 'reefer_truck', 'Truck 1', 'transport')"
        )
        for rule in ("chilled/excursion", "chilled/gap"):
            conn.execute(
                "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start)"
                " VALUES ('TRUCK-1', %s, 'excursion', 'warning', 'open', 'above 8 °C', %s)",
                (rule, datetime(2026, 3, 1, tzinfo=UTC)),
            )
        conn.commit()
    return made


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(
        create_app(db_url, options=ApiOptions(capture_worker=True)), raise_server_exceptions=False
    ) as c:
        yield c


def _as(role_key: str) -> dict[str, str]:
    return {"X-API-Key": role_key}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- GET /ledger/checkpoint ------------------------------------------------------------------------------


def test_ledger_checkpoint_is_404_until_signed_then_the_newest(
    db_url: str, tmp_path: Path, keys: dict[str, str], client: TestClient
) -> None:
    assert _problem(client.get("/ledger/checkpoint", headers=_as(keys["inspector"])), 404)["detail"] == (
        "no checkpoint signed yet"
    )
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 3)
        checkpoint.sign_head(conn, key)
        _append(conn, 4, 5)
        newest = checkpoint.sign_head(conn, key, now=datetime.now(UTC) + timedelta(seconds=1))
        conn.commit()
    served = client.get("/ledger/checkpoint", headers=_as(keys["inspector"]))
    assert served.status_code == 200
    assert served.json() == newest.as_dict()
    assert (served.json()["seq"], served.json()["public_key"]) == (5, public)
    assert _problem(client.get("/ledger/checkpoint", headers=_as(keys["capture"])), 403)["type"] == (
        PROBLEM_BASE + "forbidden"
    )
    assert _problem(client.get("/ledger/checkpoint"), 401)["type"] == PROBLEM_BASE + "unauthorized"


# -- alarms ----------------------------------------------------------------------------------------------


def test_alarms_are_listed_to_operators_only(keys: dict[str, str], client: TestClient) -> None:
    listed = client.get("/alarms", headers=_as(keys["operator"]))
    assert listed.status_code == 200
    assert [(a["rule_id"], a["state"]) for a in listed.json()] == [
        ("chilled/gap", "open"),  # newest first
        ("chilled/excursion", "open"),
    ]
    assert client.get("/alarms", headers=_as(keys["admin"]), params={"state": "resolved"}).json() == []
    assert len(client.get("/alarms", headers=_as(keys["operator"]), params={"limit": 1}).json()) == 1
    assert client.get("/alarms", headers=_as(keys["operator"]), params={"asset_id": "NONE"}).json() == []
    for role in ("inspector", "capture"):
        assert "may not alarms" in _problem(client.get("/alarms", headers=_as(keys[role])), 403)["detail"]
    bad = _problem(client.get("/alarms", headers=_as(keys["operator"]), params={"state": "closed"}), 422)
    assert bad["type"] == PROBLEM_BASE + "validation"


def test_alarm_ack_and_resolve_then_conflict(keys: dict[str, str], client: TestClient) -> None:
    op = _as(keys["operator"])
    alarm_id = client.get("/alarms", headers=op).json()[-1]["alarm_id"]
    acked = client.post(f"/alarms/{alarm_id}/ack", json={"note": "driver called"}, headers=op)
    assert acked.status_code == 200
    assert (acked.json()["state"], acked.json()["acknowledged_by"], acked.json()["ack_note"]) == (
        "acknowledged",
        "operator key",
        "driver called",
    )
    resolved = client.post(f"/alarms/{alarm_id}/resolve", json={"note": "door shut"}, headers=op)
    assert resolved.status_code == 200
    assert (resolved.json()["state"], resolved.json()["resolved_by"]) == ("resolved", "operator key")
    for action in ("ack", "resolve"):
        conflict = _problem(client.post(f"/alarms/{alarm_id}/{action}", json={}, headers=op), 409)
        assert conflict["type"] == PROBLEM_BASE + "alarm-state"
        assert conflict["detail"] == f"alarm {alarm_id} is already resolved"
    other = client.get("/alarms", headers=op, params={"state": "open"}).json()
    assert [a["rule_id"] for a in other] == ["chilled/gap"]  # the other alarm is untouched
    direct = client.post(f"/alarms/{other[0]['alarm_id']}/resolve", json={"note": ""}, headers=op)
    assert direct.json()["state"] == "resolved"  # an open alarm resolves without an ack


@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_alarm_actions_on_unknown_alarm_or_without_the_role(
    keys: dict[str, str], client: TestClient, action: str
) -> None:
    assert _problem(client.post(f"/alarms/999999/{action}", json={}, headers=_as(keys["admin"])), 404)[
        "detail"
    ] == ("no alarm 999999")
    alarm_id = client.get("/alarms", headers=_as(keys["admin"])).json()[0]["alarm_id"]
    for role in ("inspector", "capture"):
        _problem(client.post(f"/alarms/{alarm_id}/{action}", json={}, headers=_as(keys[role])), 403)
    too_long = client.post(
        f"/alarms/{alarm_id}/{action}", json={"note": "x" * 2001}, headers=_as(keys["admin"])
    )
    _problem(too_long, 422)
    assert client.get("/alarms", headers=_as(keys["admin"]), params={"state": "open"}).json()[0][
        "alarm_id"
    ] == (alarm_id)  # nothing refused changed an alarm


# -- capture jobs and roles -----------------------------------------------------------------------------


def _document() -> bytes:
    event = builders.object_event(
        event_time=datetime(2026, 3, 1, tzinfo=UTC),
        epcs=["urn:epc:id:sscc:6901234.0000000042"],
        biz_step="storing",
        read_point="urn:epc:id:sgln:6901234.00001.1",
    )
    return json.dumps(builders.document([event])).encode()


def test_capture_jobs_and_roles(keys: dict[str, str], client: TestClient) -> None:
    media = {"Content-Type": "application/ld+json"}
    refused = _problem(
        client.post("/epcis/capture", content=_document(), headers=media | _as(keys["inspector"])), 403
    )
    assert refused["detail"] == "role 'inspector' may not capture"
    captured = client.post("/epcis/capture", content=_document(), headers=media | _as(keys["capture"]))
    assert captured.status_code == 202, captured.text
    job_url = captured.headers["Location"]
    assert client.app.state.capture_worker.wait_finished(captured.json()["captureID"], 120)  # type: ignore[attr-defined]
    for role in ROLES:  # every role may read a job: capture keys their own, readers any
        job = client.get(job_url, headers=_as(keys[role]))
        assert (job.status_code, job.json()["success"], job.json()["events"]) == (200, True, 1), role
    unknown = _problem(client.get("/epcis/capture/no-such-job", headers=_as(keys["capture"])), 404)
    assert unknown["detail"] == "no capture job 'no-such-job'"
    assert _problem(client.get(job_url), 401)["type"] == EpcisException.SECURITY
    for path in ("/trace/x", "/epcis/events", "/ledger/verify", "/ledger/checkpoint"):
        _problem(client.get(path, headers=_as(keys["capture"])), 403)  # a capture key reads nothing else


# -- revocation -----------------------------------------------------------------------------------------


def test_a_revoked_key_is_refused(db_url: str, keys: dict[str, str], client: TestClient) -> None:
    inspector = _as(keys["inspector"])
    assert client.get("/epcis/events", headers=inspector).status_code == 200
    with psycopg.connect(db_url) as conn:
        revoked = revoke_key(conn, keys["inspector"][:12])
        conn.commit()
        assert (revoked.name, revoked.role, revoked.prefix) == (
            "inspector key",
            "inspector",
            keys["inspector"][:12],
        )
        with pytest.raises(KeyRevocationError, match="is revoked already"):
            revoke_key(conn, str(revoked.key_id))
        with pytest.raises(KeyRevocationError, match="no API key '999999'"):
            revoke_key(conn, "999999")
        with pytest.raises(KeyRevocationError, match="neither a key id nor a key prefix"):
            revoke_key(conn, "cck_")
    refused = _problem(client.get("/epcis/events", headers=inspector), 401)
    assert (refused["detail"], refused["type"]) == (
        "unknown or revoked API key",
        EpcisException.SECURITY,
    )
    assert refused == _problem(
        client.get("/epcis/events", headers={"Authorization": f"Bearer {keys['inspector']}"}), 401
    )
    assert client.get("/epcis/events", headers=_as(keys["operator"])).status_code == 200  # others still serve


def test_cli_revokes_a_key_by_prefix_or_id(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    runner = CliRunner()
    made = runner.invoke(cli_app, ["ledger", "api-key", "create", "--role", "inspector", "--name", "auditor"])
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout.strip().splitlines()[-1])
    assert created["prefix"] == created["api_key"][:12]
    assert client.get("/epcis/events", headers=_as(created["api_key"])).status_code == 200

    done = runner.invoke(cli_app, ["ledger", "api-key", "revoke", created["prefix"]])
    assert done.exit_code == 0, done.output
    revoked = json.loads(done.stdout.strip().splitlines()[-1])
    assert (revoked["name"], revoked["role"], revoked["revoked"]) == ("auditor", "inspector", True)
    _problem(client.get("/epcis/events", headers=_as(created["api_key"])), 401)

    again = runner.invoke(cli_app, ["ledger", "api-key", "revoke", str(revoked["key_id"])])
    assert (again.exit_code, again.stderr.strip()) == (
        1,
        f"API key {revoked['key_id']} (auditor) is revoked already",
    )
    unknown = runner.invoke(cli_app, ["ledger", "api-key", "revoke", "cck_unknown0"])
    assert (unknown.exit_code, unknown.stderr.strip()) == (1, "no API key 'cck_unknown0'")

"""Tests: the API with its database down answers 503 problem+json, and says nothing of the error.

The API runs against a private PostgreSQL server of this test's own, which the test stops while the
API runs (and starts again: the API serves again without a restart)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from coldchain.embedded import EmbeddedPostgres
from coldchain.migrate import migrate
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_WORDS = ("psycopg", "Traceback", "connection", "server", "5432", "socket", "refused")


def test_api_answers_503_problem_json_while_its_database_is_down(server_tmp: Path) -> None:
    pg = EmbeddedPostgres(server_tmp / "pg")
    db_url = pg.start()
    try:
        migrate(db_url)
        with psycopg.connect(db_url) as conn:
            key = create_key(conn, "admin", "ops")
            conn.commit()
        headers = {"X-API-Key": key}
        app = create_app(db_url, options=ApiOptions(pool_timeout_s=2.0))
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/trace/NOPE", headers=headers).status_code == 404  # up: served
            pg.pg_ctl("stop", "-m", "fast", "-w")
            for path in ("/trace/NOPE", "/ledger/verify", "/epcis/events", "/alarms"):
                down = client.get(path, headers=headers)
                assert down.status_code == 503, path
                assert down.headers["content-type"] == PROBLEM_MEDIA_TYPE, path
                body = down.json()
                assert (body["status"], body["title"], body["instance"]) == (503, "Service Unavailable", path)
                assert body["detail"] == "the database cannot be reached", path
                assert not any(word in down.text for word in PROBLEM_WORDS), down.text
            health = client.get("/health")
            assert health.status_code == 503
            assert health.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert (health.json()["database"], health.json()["dead"]) == (False, ["database"])
            assert not any(word in health.text for word in PROBLEM_WORDS), health.text
            host = psycopg.conninfo.conninfo_to_dict(pg.server_url)["host"]
            pg.pg_ctl("start", "-w", "-o", '-h ""', "-o", f"-k {host}", "-l", str(pg.pgdata / "log"))
            assert client.get("/trace/NOPE", headers=headers).status_code == 404  # back without a restart
    finally:
        pg.stop()

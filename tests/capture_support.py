"""Test support: POST /epcis/capture answers 202 at once; these wait for the capture worker the app runs
(ApiOptions.capture_worker) to finish the job, then read it as GET /epcis/capture/{id} serves it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

# Long enough for a large document on a loaded two-core machine; a wait on the worker's condition, ended
# as soon as the job is finished.
FINISH_TIMEOUT_S = 120.0


def settle(client: TestClient, response: Any) -> dict[str, Any]:
    """The finished capture job of a POST /epcis/capture answered 202 with its pending job."""
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["running"] is True
    assert response.headers["Location"] == f"/epcis/capture/{queued['captureID']}"
    worker = client.app.state.capture_worker  # type: ignore[attr-defined]
    assert worker.wait_finished(queued["captureID"], FINISH_TIMEOUT_S), queued
    finished = client.get(response.headers["Location"])
    assert finished.status_code == 200, finished.text
    job: dict[str, Any] = finished.json()
    assert job["running"] is False
    return job


def captured(client: TestClient, response: Any) -> dict[str, Any]:
    """The job, which captured its document."""
    job = settle(client, response)
    assert job["success"] is True, job["errors"]
    return job


def refused(client: TestClient, response: Any, reason: str = "") -> dict[str, Any]:
    """The job, which refused its document: every reason a JSON pointer and a sentence, one naming
    ``reason``."""
    job = settle(client, response)
    assert job["success"] is False, job
    assert job["errors"], job
    for error in job["errors"]:
        assert set(error) == {"path", "message"}, error
        assert error["path"] == "" or error["path"].startswith("/"), error
        assert error["message"], error
        assert "Traceback" not in error["message"], error
    assert any(reason in e["message"] for e in job["errors"]), job["errors"]
    return job

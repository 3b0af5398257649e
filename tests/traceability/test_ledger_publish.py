"""Tests: checkpoints are published outside the database as they are made (the log beside the key, a
retained MQTT message, the alert webhooks); a failing sink stops no checkpoint; ledger input files are
depth-bounded (Hypothesis) and deep JSON is a one-line usage error."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from coldchain.cli.common import ExitCode
from coldchain.runtime import Services, mqtt_client
from coldchain.settings import BrokerAddress
from gateway.credentials import LEDGER_CHECKPOINT_TOPIC
from rules.alarms import EVENT_HEADER, SIGNATURE_HEADER, sign
from tests.traceability.test_ledger_trust import _append
from traceability.ledger import checkpoint, jsonfile

SECRET = "webhook-secret"


def _until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A real HTTP server on loopback recording every POST (headers, body)."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_checkpoint_goes_to_the_log_mqtt_and_webhooks(
    db_url: str, mqtt_broker: BrokerAddress, tmp_path: Path, webhook: tuple[str, list[Any]]
) -> None:
    url, received = webhook
    run = uuid.uuid4().hex[:10]  # client ids of this test's own on a shared broker
    key_path = tmp_path / "keys" / "ledger-ed25519.pem"
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 3)
        conn.commit()
    services = Services(
        db_url,
        mqtt_broker,
        stages=("ledger",),
        gateway_client_id=f"cp-publish-{run}",
        alert_webhooks=[url],
        alert_webhook_secret=SECRET,
        checkpoint_key=key_path,
        checkpoint_every_s=0.05,
    )
    log = checkpoint.log_beside(key_path)
    got: list[bytes] = []
    reader: Any = None
    services.start()
    try:
        _until(lambda: log.exists() and log.read_text().strip() != "")
        _until(lambda: len(received) >= 1)
        logged = [json.loads(line) for line in log.read_text().splitlines()]
        # The retained message: a client connecting after it was made gets it (waited for before the
        # stage stops, since the stage's client may publish it only once it has connected).
        reader = mqtt_client(mqtt_broker, f"cp-publish-reader-{run}")
        reader.on_connect = lambda c, *_: c.subscribe(LEDGER_CHECKPOINT_TOPIC, qos=1)
        reader.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
        # The client connects in its own thread: where it connected before on_connect was set, subscribe now.
        _until(reader.is_connected)
        reader.subscribe(LEDGER_CHECKPOINT_TOPIC, qos=1)
        _until(lambda: any(m and json.loads(m) == logged[0] for m in got))
    finally:
        services.stop()
        if reader is not None:
            reader.disconnect()
            reader.loop_stop()
        # Clear the retained message (also where the test failed before reading it), so no later test
        # on this broker sees this one's checkpoint.
        clearer = mqtt_client(mqtt_broker, f"cp-publish-clear-{run}")
        try:
            _until(clearer.is_connected)
            clearer.publish(LEDGER_CHECKPOINT_TOPIC, b"", qos=1, retain=True).wait_for_publish(10)
        finally:
            clearer.disconnect()
            clearer.loop_stop()
    assert [cp["seq"] for cp in logged] == [3]  # signed once: the head did not move after it
    cp = checkpoint.Checkpoint.from_dict(logged[0])
    assert checkpoint.signature_ok(cp, checkpoint.public_hex(checkpoint.load_or_create_key(key_path)))
    headers, body = received[0]
    assert json.loads(body) == {"event": "ledger.checkpoint", "checkpoint": logged[0]}
    assert headers[SIGNATURE_HEADER] == sign(SECRET.encode(), body)
    assert headers[EVENT_HEADER] == "ledger.checkpoint"


def test_a_failing_sink_stops_no_checkpoint(db_url: str, tmp_path: Path) -> None:
    seen: list[int] = []

    def broken(cp: checkpoint.Checkpoint) -> None:
        raise OSError("the partner's server is down")

    worker = checkpoint.CheckpointWorker(
        db_url, tmp_path / "k.pem", sinks=[broken, lambda cp: seen.append(cp.seq)]
    )
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 2)
        conn.commit()
    first = worker.run_once()
    with psycopg.connect(db_url) as conn:
        _append(conn, 3, 3)
        conn.commit()
    second = worker.run_once()
    assert (first and first.seq, second and second.seq) == (2, 3)
    assert seen == [2, 3]
    assert worker.sink_failures == {"broken": 2}
    assert len(checkpoint.log_beside(tmp_path / "k.pem").read_text().splitlines()) == 2


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("balanced", [True, False])
def test_ledger_import_of_deep_json_is_a_usage_error(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch, balanced: bool
) -> None:
    deep = server_tmp / "deep.json"
    deep.write_bytes(_nested(100_000) if balanced else b"[" * 100_000)
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    result = CliRunner().invoke(cli_app, ["ledger", "import", str(deep)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{deep}: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["verify-bundle", "verify --checkpoint"])
def test_other_ledger_inputs_of_deep_json_are_usage_errors(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    deep = server_tmp / "deep.json"
    deep.write_bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    result = CliRunner().invoke(cli_app, ["ledger", *command.split(), str(deep)])
    assert result.exit_code == ExitCode.USAGE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "nested more than" in lines[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{"\\x'), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=json_values, bound=st.integers(min_value=0, max_value=6))
def test_depth_bound_is_the_nesting_outside_strings(value: Any, bound: int) -> None:
    data = json.dumps(value).encode()
    assert jsonfile.too_deep(data, bound) is (_depth(value) > bound)
    if _depth(value) <= bound:
        assert jsonfile.loads(data, max_depth=bound) == value
    else:
        with pytest.raises(jsonfile.JsonInputError, match="nested more than"):
            jsonfile.loads(data, max_depth=bound)

"""Tests for rules.alarms through the real worker and PostgreSQL: lifecycle, escalation, auto-resolve,
the API seam (list / acknowledge / resolve), MQTT and signed, retried webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
import psycopg
import pytest
from rules_support import (
    Conn,
    add_asset,
    add_device,
    add_readings,
    add_series,
)

from coldchain.settings import BrokerAddress
from rules import alarms
from rules.alarms import AlarmStateError, Webhook
from rules.worker import RulesWorker


def truck(conn: Conn, asset: str = "TRUCK-1", device: str = "rc-1") -> int:
    add_asset(conn, asset, "reefer_truck", "chilled", "transport")
    add_device(conn, device, asset, "reefer_controller")
    return add_series(conn, device, "temp:1")


def feed(worker: RulesWorker, conn: Conn, sid: int, points: list[tuple[float, float]]) -> None:
    """One batch per reading, each consumed at once: a live stream."""
    for m, v in points:
        add_readings(conn, sid, [(m, v)])
        while worker.run_once():
            pass


def range_alarms(conn: Conn, **kw: Any) -> list[dict[str, Any]]:
    """The range alarms (the steps to 9 °C also raise an info 'faults' alarm: an impossible rate)."""
    return [a for a in alarms.list_alarms(conn, **kw) if a["rule_id"].endswith("/range")]


def test_lifecycle_open_escalate_auto_resolve(conn: Conn, db_url: str) -> None:
    sid = truck(conn)
    worker = RulesWorker(db_url)
    try:
        feed(worker, conn, sid, [(m, 2.0) for m in range(0, 10)])
        feed(worker, conn, sid, [(m, 9.0) for m in range(10, 20)])
        assert range_alarms(conn) == []  # 9 min out of range: below the 10 min minimum
        feed(worker, conn, sid, [(20, 9.5)])
        [a] = range_alarms(conn, state="open")
        assert (a["asset_id"], a["rule_id"], a["kind"], a["severity"]) == (
            "TRUCK-1",
            "cn_food/chilled/range",
            "excursion",
            "warning",
        )
        assert (a["condition_start"], a["peak_c"], a["escalation"]) == ("2026-01-01T00:10:00.000Z", 9.5, 0)
        # The latency is recorded: the alarm row came after the batch that raised it was committed.
        assert a["trigger_committed_at"] is not None
        assert a["opened_at"] >= a["trigger_committed_at"]
        feed(worker, conn, sid, [(m, 9.0) for m in range(21, 71)])
        [a2] = range_alarms(conn, asset_id="TRUCK-1")
        assert (a2["alarm_id"], a2["severity"], a2["escalation"]) == (a["alarm_id"], "critical", 1)
        assert a2["escalated_at"] is not None
        # 3.8 °C is in range but inside the 0.5 °C hysteresis: the condition has not cleared.
        feed(worker, conn, sid, [(71, 3.8), (72, 3.8)])
        assert range_alarms(conn, state="open")[0]["alarm_id"] == a["alarm_id"]
        feed(worker, conn, sid, [(73, 2.0)])
        [done] = range_alarms(conn)
        assert (done["state"], done["resolved_by"], done["condition_end"]) == (
            "resolved",
            "auto",
            "2026-01-01T01:13:00.000Z",
        )
        # A new excursion opens a new alarm (one unresolved alarm per asset and rule).
        feed(worker, conn, sid, [(m, -2.0) for m in range(74, 86)])
        opened = range_alarms(conn, state="open")
        assert len(opened) == 1
        assert opened[0]["alarm_id"] != a["alarm_id"]
        assert opened[0]["peak_c"] == -2.0
    finally:
        worker.close()


def test_one_unresolved_alarm_per_asset_and_rule(conn: Conn) -> None:
    add_asset(conn, "ROOM-1", "cold_room", "chilled", "storage")
    insert = (
        "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start)"
        " VALUES ('ROOM-1', 'r', 'excursion', 'warning', %s, 'x', now()) RETURNING alarm_id"
    )
    conn.execute(insert, ("open",))
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, ("acknowledged",))
    conn.execute("UPDATE alarm SET state = 'resolved'")
    conn.execute(insert, ("open",))  # a resolved one does not count


def test_acknowledge_and_resolve_seam(conn: Conn) -> None:
    add_asset(conn, "ROOM-1", "cold_room", "chilled", "storage")
    row = conn.execute(
        "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start)"
        " VALUES ('ROOM-1', 'cn_food/chilled/range', 'excursion', 'warning', 'open', 'hot', now())"
        " RETURNING alarm_id"
    ).fetchone()
    assert row is not None
    alarm_id = int(row[0])
    assert alarms.acknowledge(conn, 999_999, by="ops", note="x") is None
    assert alarms.resolve(conn, 999_999, by="ops", note="x") is None
    acked = alarms.acknowledge(conn, alarm_id, by="li.wei", note="door left open, closing")
    assert acked is not None
    assert (acked["state"], acked["acknowledged_by"], acked["ack_note"]) == (
        "acknowledged",
        "li.wei",
        "door left open, closing",
    )
    assert isinstance(acked["acknowledged_at"], str)
    assert acked["acknowledged_at"].endswith("Z")
    json.dumps(acked)  # JSON-ready
    assert [a["alarm_id"] for a in alarms.list_alarms(conn, state="acknowledged")] == [alarm_id]
    done = alarms.resolve(conn, alarm_id, by="li.wei", note="product moved to room 2")
    assert done is not None
    assert (done["state"], done["resolved_by"], done["resolve_note"]) == (
        "resolved",
        "li.wei",
        "product moved to room 2",
    )
    with pytest.raises(AlarmStateError):
        alarms.acknowledge(conn, alarm_id, by="x", note="y")
    with pytest.raises(AlarmStateError):
        alarms.resolve(conn, alarm_id, by="x", note="y")
    with pytest.raises(ValueError, match="unknown alarm state"):
        alarms.list_alarms(conn, state="closed")


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_alarm_published_on_mqtt_and_signed_webhook(
    conn: Conn, db_url: str, mqtt_broker: BrokerAddress
) -> None:
    asset = f"TRUCK-{uuid.uuid4().hex[:8]}"
    sid = truck(conn, asset, f"rc-{asset}")
    got: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    arrived = threading.Event()
    protocol = mqtt.MQTTv5 if mqtt_broker.mqtt5 else mqtt.MQTTv311

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload))
        arrived.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{asset}", protocol=protocol)
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.subscribe(f"cc/v1/alerts/+/{asset}", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{asset}", protocol=protocol)
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()
    _Hook.received = []
    _Hook.fail_first = 1
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = b"s3cret"
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    worker = RulesWorker(db_url, alert_publisher=pub, webhooks=[Webhook(url, secret)])
    worker.notifier._backoff_s = 0.01
    try:
        assert subscribed.wait(10)
        # A ramp (an instant step of 7 °C would also be a rate-of-change sensor fault, an info alarm).
        ramp = [(m, 2.0) for m in range(0, 4)] + [(4.0, 5.0), (5.0, 8.0)]
        feed(worker, conn, sid, ramp + [(m, 9.0) for m in range(6, 16)])
        assert worker.notifier.wait_idle(10)
        assert arrived.wait(10)
        topic, payload = got[0]
        assert topic == f"cc/v1/alerts/warning/{asset}"
        msg = json.loads(payload)
        assert msg["event"] == "opened"
        assert (msg["alarm"]["asset_id"], msg["alarm"]["state"]) == (asset, "open")
        # The webhook failed once (503) and was retried; each attempt carries a valid HMAC signature.
        assert len(_Hook.received) == 2
        for headers, body in _Hook.received:
            want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            assert headers["x-coldchain-signature"] == want
            assert headers["x-coldchain-event"] == "opened"
            assert json.loads(body)["alarm"]["alarm_id"] == msg["alarm"]["alarm_id"]
        assert worker.notifier.failed == 0
    finally:
        worker.close()
        server.shutdown()
        pub.loop_stop()
        pub.disconnect()
        sub.loop_stop()
        sub.disconnect()


def test_door_open_beyond_limit_is_a_break_with_an_alarm(conn: Conn, db_url: str) -> None:
    add_asset(conn, "TRUCK-D", "reefer_truck", "chilled", "transport")  # door_open limit 30 min
    add_device(conn, "rc-d", "TRUCK-D", "reefer_controller")
    door = add_series(conn, "rc-d", "door")
    worker = RulesWorker(db_url)
    try:
        feed(worker, conn, door, [(m, 0.0) for m in range(0, 5)] + [(m, 1.0) for m in range(5, 35)])
        assert alarms.list_alarms(conn) == []  # 29 min open: within the limit
        feed(worker, conn, door, [(m, 1.0) for m in range(35, 40)])
        [a] = alarms.list_alarms(conn, state="open")
        assert (a["rule_id"], a["kind"], a["severity"]) == ("cn_food/chilled/door_open", "door", "critical")
        feed(worker, conn, door, [(40, 0.0), (41, 0.0)])
        [done] = alarms.list_alarms(conn)
        assert (done["alarm_id"], done["state"], done["resolved_by"]) == (a["alarm_id"], "resolved", "auto")
        rows = conn.execute(
            "SELECT kind, rule_id, start_time, end_time, allowed_s FROM chain_break WHERE series_id = %s",
            (door,),
        ).fetchall()
        assert [(r[0], r[1], (r[3] - r[2]).total_seconds(), r[4]) for r in rows] == [
            ("door", "cn_food/chilled/door_open", 2100.0, 1800.0)
        ]
        payloads = conn.execute(
            "SELECT payload FROM verdict_outbox WHERE kind = 'chain_break' AND payload->>'kind' = 'door'"
        ).fetchall()
        assert len(payloads) == 1
        assert payloads[0][0]["rule_id"] == "cn_food/chilled/door_open"
    finally:
        worker.close()

"""Tests for rules.alarms.duties and rules.alarms.escalation: the GSP check of the duties file at load,
and escalation of unacknowledged alarms by e-mail (a local SMTP server), webhook (a local receiver) and
MQTT (the private Mosquitto), through the real worker and PostgreSQL, across a restart, never twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from rules_support import Conn, add_asset, add_device, add_readings, add_series, drain

from coldchain.embedded import free_port
from coldchain.runtime import Services
from coldchain.settings import BrokerAddress, Settings, SettingsError, load_settings
from rules import alarms
from rules.alarms.duties import DutiesError, load_duties, parse_duties
from rules.alarms.escalation import DutyEscalator, Senders, SmtpConfig, claim, deliver
from rules.packs import load_packs
from rules.worker import RulesWorker

PACKS = load_packs()
SECRET = b"duty-s3cret"

PEOPLE = """
[escalation_s]
warning = 1800
critical = 900

[people.alice]
name = "Alice (QA)"
email = "alice@example.cn"

[people.bob]
name = "Bob (warehouse)"
webhook = "{hook}"

[people.carol]
name = "Carol (driver)"
mqtt = true

[people.dan]
name = "Dan (QA head)"
email = "dan@example.cn"

[people.erin]
name = "Erin (director)"
email = "erin@example.cn"
"""

ROUTES = """
[classes.pharma_2_8]
levels = [["alice", "bob", "carol"], ["dan"], ["erin"]]

[default]
levels = [["alice", "bob", "carol"]]
"""


THREE = '[default]\nlevels = [["alice", "bob", "carol"]]\n'


def duties_text(hook: str = "http://127.0.0.1:9/hook", routes: str = ROUTES) -> str:
    return PEOPLE.replace("{hook}", hook) + routes


# -- the check at load ------------------------------------------------------------------------------------


def test_valid_duties_load() -> None:
    d = parse_duties(duties_text().encode(), "duties.toml", PACKS)
    assert d.escalation_s.of("warning") == 1800
    assert d.escalation_s.of("info") == 14_400
    assert d.recipients("pharma_2_8", 1) == [("dan", "email", "dan@example.cn")]
    assert [p for p, _, _ in d.recipients("chilled", 0)] == ["alice", "bob", "carol"]  # the default
    assert d.recipients("pharma_2_8", 3) == []
    assert d.recipients("chilled", 1) == []
    assert d.needs_smtp


@pytest.mark.parametrize(
    ("routes", "fragment"),
    [
        # A drug class with two people at level 0: the GSP asks for three.
        (
            '[classes.pharma_2_8]\nlevels = [["alice", "bob"]]\n' + THREE,
            "duties.toml: classes.pharma_2_8.levels.0: drug class 'pharma_2_8' (cn_drug_gsp) must alarm"
            " at least 3 designated people (drug GSP), has 2",
        ),
        # The same person twice is one person.
        (
            '[default]\nlevels = [["alice", "alice", "bob"]]\n',
            "duties.toml: default.levels.0: Value error, names someone twice",
        ),
        # Drug classes left to a default of one person.
        ('[default]\nlevels = [["alice"]]\n', "classes.vaccine_2_8: drug class 'vaccine_2_8' (vaccines)"),
        # No route at all for drug classes.
        ('[classes.chilled]\nlevels = [["alice"]]\n', "(no entry, no [default])"),
        # References that do not hold.
        (
            '[default]\nlevels = [["alice", "bob", "zed"]]\n',
            "default.levels.0.2: no person 'zed' in [people]",
        ),
        (
            '[classes.pharma_9_9]\nlevels = [["alice"]]\n' + THREE,
            "classes.pharma_9_9: no such product class",
        ),
    ],
)
def test_invalid_duties_name_the_key_path(routes: str, fragment: str) -> None:
    with pytest.raises(DutiesError) as err:
        parse_duties(duties_text(routes=routes).encode(), "duties.toml", PACKS)
    assert fragment in str(err.value)


def test_food_classes_need_no_three_people() -> None:
    goods = {ref.pack_id: ref.pack.goods for ref in PACKS.classes()}
    assert goods == {
        "cn_food": "food",
        "cn_drug_gsp": "drugs",
        "usp": "drugs",
        "vaccines": "drugs",
        "who_pqs": "drugs",
    }
    routes = '[classes.chilled]\nlevels = [["alice"]]\n[default]\nlevels = [["alice", "bob", "carol"]]\n'
    assert parse_duties(duties_text(routes=routes).encode(), "d.toml", PACKS).recipients("chilled", 0)


def test_schema_errors_name_the_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "duties.toml"
    bad.write_text('[people.x]\nname = "X"\nemail = "not-an-address"\n[default]\nlevels = [["x"]]\n')
    with pytest.raises(DutiesError, match=r"duties.toml: people.x.email: String should match pattern"):
        load_duties(bad, PACKS)
    bad.write_text('[people.x]\nname = "X"\n[default]\nlevels = [["x"]]\n')
    with pytest.raises(DutiesError, match=r"people.x: Value error, a person needs at least one of"):
        load_duties(bad, PACKS)
    with pytest.raises(DutiesError, match=r"missing\.toml: cannot read"):
        load_duties(tmp_path / "missing.toml", PACKS)


def test_settings_stop_on_an_invalid_duties_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "duties.toml"
    path.write_text(duties_text(routes='[default]\nlevels = [["alice", "bob"]]\n'))
    monkeypatch.setenv("COLDCHAIN_ALARM_DUTIES_FILE", str(path))
    with pytest.raises(SettingsError) as err:
        load_settings()
    msg = str(err.value)
    assert msg.startswith("invalid settings: alarm_duties_file (COLDCHAIN_ALARM_DUTIES_FILE): ")
    assert "duties.toml: classes.pharma_2_8: drug class 'pharma_2_8'" in msg
    # A valid file with e-mail recipients needs a mail relay.
    path.write_text(duties_text())
    with pytest.raises(SettingsError, match=r"smtp_host \(COLDCHAIN_SMTP_HOST\): .*mail relay"):
        load_settings()
    monkeypatch.setenv("COLDCHAIN_SMTP_HOST", "127.0.0.1")
    settings = load_settings()
    assert settings.duties().recipients("pharma_2_8", 2) == [("erin", "email", "erin@example.cn")]


# -- escalation, end to end --------------------------------------------------------------------------------


class _Inbox:
    """aiosmtpd handler: keeps every message; refuses the next `refuse` ones with a 451 (try later)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self.refuse = 0
        self.received = threading.Semaphore(0)

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            return "451 Requested action aborted: try again later"
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), msg))
        self.received.release()
        return "250 OK"


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Inbox]:
    # The SMTP server's own per-connection lines stay out of the test run's output.
    monkeypatch.setattr(logging.getLogger("mail.log"), "level", logging.WARNING)
    handler = _Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def hook_url() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/duty"
    finally:
        server.shutdown()


class _Mqtt:
    """A publisher for the escalator and a subscriber on carol's duty topic, both connected."""

    def __init__(self, broker: BrokerAddress) -> None:
        proto = mqtt.MQTTv5 if broker.mqtt5 else mqtt.MQTTv311
        self.got: list[tuple[str, bytes]] = []
        self.arrived = threading.Semaphore(0)
        subscribed, connected = threading.Event(), threading.Event()
        self.sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="duty-sub", protocol=proto)
        self.sub.on_message = self._on_message
        self.sub.on_subscribe = lambda *a: subscribed.set()
        self.sub.connect(broker.host, broker.port)
        self.sub.subscribe("cc/v1/alerts/duty/carol", qos=1)
        self.sub.loop_start()
        self.pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="duty-pub", protocol=proto)
        self.pub.on_connect = lambda *a: connected.set()
        self.pub.connect(broker.host, broker.port)
        self.pub.loop_start()
        assert subscribed.wait(10)
        assert connected.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.got.append((msg.topic, msg.payload))
        self.arrived.release()

    def close(self) -> None:
        for c in (self.pub, self.sub):
            c.loop_stop()
            c.disconnect()


@pytest.fixture
def duty_mqtt(mqtt_broker: BrokerAddress) -> Iterator[_Mqtt]:
    m = _Mqtt(mqtt_broker)
    try:
        yield m
    finally:
        m.close()


def _pharma_alarm(conn: Conn, db_url: str) -> dict[str, Any]:
    """A refrigerated-drug truck goes to 9 °C; the real worker opens a range alarm on it."""
    add_asset(conn, "PHARMA-1", "reefer_truck", "pharma_2_8", "transport")
    add_device(conn, "rc-p1", "PHARMA-1", "reefer_controller")
    sid = add_series(conn, "rc-p1", "temp:1")
    worker = RulesWorker(db_url)
    try:
        add_readings(conn, sid, [(0, 5.0), (1, 5.0), (2, 6.5), (3, 8.0)])
        add_readings(conn, sid, [(4, 9.0), (5, 9.0), (6, 9.0)])
        drain(worker)
    finally:
        worker.close()
    [alarm] = [a for a in alarms.list_alarms(conn, state="open") if a["rule_id"].endswith("/range")]
    assert (alarm["product_class"], alarm["severity"]) == ("pharma_2_8", "warning")
    return alarm


def _opened(conn: Conn, alarm_id: int) -> datetime:
    row = conn.execute("SELECT opened_at FROM alarm WHERE alarm_id = %s", (alarm_id,)).fetchone()
    assert row is not None
    opened: datetime = row[0]
    return opened


def _notices(conn: Conn, alarm_id: int) -> list[tuple[int, str, str, str, int]]:
    return [
        (int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]))
        for r in conn.execute(
            "SELECT level, person, channel, status, attempts FROM alarm_notice WHERE alarm_id = %s"
            " ORDER BY level, person",
            (alarm_id,),
        ).fetchall()
    ]


def _escalator(db_url: str, hook: str, inbox_port: int, pub: mqtt.Client, tmp: Path) -> DutyEscalator:
    path = tmp / "duties.toml"
    path.write_text(duties_text(hook))
    senders = Senders(smtp=SmtpConfig("127.0.0.1", inbox_port), mqtt=pub, webhook_secret=SECRET, timeout_s=10)
    return DutyEscalator(db_url, load_duties(path, PACKS), senders)


def test_escalation_by_email_webhook_mqtt_survives_restart_never_twice(
    conn: Conn, db_url: str, hook_url: str, duty_mqtt: _Mqtt, tmp_path: Path, inbox: _Inbox
) -> None:
    handler, port = inbox, inbox.port
    alarm = _pharma_alarm(conn, db_url)
    aid = int(alarm["alarm_id"])
    t_open = _opened(conn, aid)

    # Level 0 at once: the three designated people, each on their own channel.
    esc = _escalator(db_url, hook_url, port, duty_mqtt.pub, tmp_path)
    assert esc.tick(t_open) == 1 + 3
    assert _notices(conn, aid) == [
        (0, "alice", "email", "sent", 1),
        (0, "bob", "webhook", "sent", 1),
        (0, "carol", "mqtt", "sent", 1),
    ]
    [(rcpt, mail)] = handler.mails
    assert rcpt == ["alice@example.cn"]
    assert mail["Subject"].startswith(f"[冷链告警 #{aid}] 警告 PHARMA-1")
    assert "首次通知" in mail.get_content()
    [(headers, body)] = _Hook.received
    assert headers["x-coldchain-signature"] == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers["x-coldchain-event"] == "alarm.duty"
    assert (json.loads(body)["level"], json.loads(body)["alarm"]["alarm_id"]) == (0, aid)
    assert duty_mqtt.arrived.acquire(timeout=10)
    topic, payload = duty_mqtt.got[0]
    assert (topic, json.loads(payload)["person"]) == ("cc/v1/alerts/duty/carol", "carol")

    # Not yet past the warning time (30 min): nothing more, and ticking again repeats nothing.
    assert esc.tick(t_open + timedelta(minutes=29)) == 0
    assert len(handler.mails) == 1
    assert len(_Hook.received) == 1
    esc.close()

    # A restart (a new escalator, a new connection): past 30 min, level 1 goes to Dan, once.
    esc = _escalator(db_url, hook_url, port, duty_mqtt.pub, tmp_path)
    t1 = t_open + timedelta(minutes=30)
    assert esc.tick(t1) == 2
    assert [r for r, _ in handler.mails] == [["alice@example.cn"], ["dan@example.cn"]]
    assert "第 1 级" in handler.mails[1][1].get_content()
    assert esc.tick(t1) == 0
    esc.close()
    esc = _escalator(db_url, hook_url, port, duty_mqtt.pub, tmp_path)
    assert esc.tick(t1 + timedelta(minutes=1)) == 0
    assert len(handler.mails) == 2

    # Claimed but not delivered (the process stopped in between): the next escalator delivers it once;
    # the relay refuses it first (451), so it waits its back-off and goes out on the retry.
    t2 = t1 + timedelta(minutes=30)
    with esc._connection() as c2:
        assert claim(c2, esc.duties, t2) == 1
    esc.close()
    esc = _escalator(db_url, hook_url, port, duty_mqtt.pub, tmp_path)
    handler.refuse = 1
    assert esc.tick(t2) == 0
    assert _notices(conn, aid)[-1] == (2, "erin", "email", "pending", 1)
    assert esc.tick(t2 + timedelta(seconds=4)) == 0  # within the 5 s back-off
    assert esc.tick(t2 + timedelta(seconds=5)) == 1
    assert _notices(conn, aid)[-1] == (2, "erin", "email", "sent", 2)
    assert [r for r, _ in handler.mails][-1] == ["erin@example.cn"]
    # The last level is reached: nothing further, however long it stays open.
    assert esc.tick(t2 + timedelta(days=1)) == 0
    assert (len(handler.mails), len(_Hook.received), len(duty_mqtt.got)) == (3, 1, 1)
    esc.close()


def test_acknowledged_alarm_stops_escalating(
    conn: Conn, db_url: str, hook_url: str, duty_mqtt: _Mqtt, tmp_path: Path, inbox: _Inbox
) -> None:
    alarm = _pharma_alarm(conn, db_url)
    aid = int(alarm["alarm_id"])
    t_open = _opened(conn, aid)
    esc = _escalator(db_url, hook_url, inbox.port, duty_mqtt.pub, tmp_path)
    try:
        assert esc.tick(t_open) == 4
        # Level 1 claimed, then the alarm acknowledged before it went out: it is cancelled, not sent.
        with esc._connection() as c2:
            assert claim(c2, esc.duties, t_open + timedelta(hours=1)) == 1
        alarms.acknowledge(conn, aid, by="qa", note="on it")
        assert esc.tick(t_open + timedelta(hours=1)) == 1
        assert _notices(conn, aid)[-1] == (1, "dan", "email", "cancelled", 0)
        # Acknowledged: no further level, however long.
        assert esc.tick(t_open + timedelta(days=2)) == 0
        assert [r for r, _ in inbox.mails] == [["alice@example.cn"]]
    finally:
        esc.close()


def test_deliver_with_nothing_pending_is_quiet(conn: Conn, db_url: str) -> None:
    senders = Senders()
    assert deliver(conn, senders, datetime.now().astimezone()) == 0


def test_runtime_runs_the_escalator_from_the_settings(
    conn: Conn, db_url: str, tmp_path: Path, inbox: _Inbox
) -> None:
    path = tmp_path / "duties.toml"
    path.write_text(duties_text(routes='[default]\nlevels = [["alice", "dan", "erin"]]\n'))
    settings = Settings(
        alarm_duties_file=path, smtp_host="127.0.0.1", smtp_port=inbox.port, rules_metrics_port=0
    )
    add_asset(conn, "COLD-9", "cold_room", "pharma_2_8", "storage")
    conn.execute(
        "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, product_class, reason, condition_start)"
        " VALUES ('COLD-9', 'cn_drug_gsp/pharma_2_8/range', 'excursion', 'critical', 'open', 'pharma_2_8',"
        " 'above 8 °C', now())"
    )
    services = Services(db_url, None, stages=("rules",), settings=settings)
    services.start()
    try:
        assert "duties" in services.liveness()
        for _ in range(3):
            assert inbox.received.acquire(timeout=30)
    finally:
        services.stop()
    assert sorted(r for rs, _ in inbox.mails for r in rs) == [
        "alice@example.cn",
        "dan@example.cn",
        "erin@example.cn",
    ]

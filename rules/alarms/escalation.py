"""Stage 2 (verdicts): alarm escalation: open alarms to their designated people, level by level.

An open alarm (neither acknowledged nor resolved) goes to level 0 of its class's recipients (see
`rules.alarms.duties`) as soon as the escalator sees it, and to the next level each time it stays open
past its severity's escalation time since the last level. Each step is claimed in the database first
(`alarm.notify_level`, one `alarm_notice` row per person and channel, unique), then delivered one
notice at a time under that notice's row lock and marked sent: a restart resumes the pending notices
and never repeats a sent one, and several escalators share the work. Level 0 is always delivered (the
GSP duty); a later level is cancelled when the alarm was acknowledged or resolved before it went out.
A failed send stays pending and is retried, backing off.

Channels: e-mail (SMTP, the standard library's smtplib), a webhook POST signed as the alarm webhooks
are (`rules.alarms.notify.webhook_headers`, event ``alarm.duty``), and MQTT QoS 1 on the person's
topic ``cc/v1/alerts/duty/{person}``.
"""

from __future__ import annotations

import json
import smtplib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import psycopg
import structlog
from psycopg.rows import dict_row

from rules.alarms import queries
from rules.alarms.duties import Duties
from rules.alarms.notify import MqttPublisher, webhook_headers
from rules.models import iso_utc

log = structlog.get_logger("rules.alarms")

Conn = psycopg.Connection[Any]

DUTY_EVENT = "alarm.duty"
# A failed send is retried after 5 s, doubling up to 10 min (a mail relay that is down for maintenance is
# tried every 10 min, not hammered).
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 600.0

SEVERITY_ZH = {"info": "提示", "warning": "警告", "critical": "严重"}


class SendError(Exception):
    """A notice could not be delivered (it stays pending and is retried)."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "coldchain@localhost"
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice to deliver: its recipient and channel, and the alarm it tells of."""

    notice_id: int
    level: int
    person: str
    channel: str
    address: str
    attempts: int
    alarm: dict[str, Any]


def body(notice: Notice) -> bytes:
    """The JSON body of a webhook or MQTT notice."""
    doc = {"event": DUTY_EVENT, "level": notice.level, "person": notice.person, "alarm": notice.alarm}
    return json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()


def email(notice: Notice, sender: str) -> EmailMessage:
    """The e-mail of a notice (plain text, Chinese labels, the alarm's own reason)."""
    a = notice.alarm
    sev = SEVERITY_ZH.get(str(a["severity"]), str(a["severity"]))
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = notice.address
    msg["Subject"] = f"[冷链告警 #{a['alarm_id']}] {sev} {a['asset_id']}: {a['kind']}"
    level = "首次通知" if notice.level == 0 else f"升级通知 (第 {notice.level} 级: 告警未确认)"
    peak = "" if a.get("peak_c") is None else f"峰值 / peak: {a['peak_c']} °C\n"
    msg.set_content(
        f"{level}\n\n"
        f"告警 / alarm: #{a['alarm_id']}\n"
        f"级别 / severity: {sev} ({a['severity']})\n"
        f"资产 / asset: {a['asset_id']}\n"
        f"规则 / rule: {a['rule_id']}\n"
        f"品类 / class: {a.get('product_class') or '-'}\n"
        f"原因 / reason: {a['reason']}\n"
        f"开始 / since: {a['condition_start']}\n"
        f"{peak}"
        f"开启 / opened: {a['opened_at']}\n\n"
        "请确认此告警 / please acknowledge this alarm.\n"
    )
    return msg


class Senders:
    """The channels' adapters: they move bytes and raise SendError on failure, nothing else."""

    def __init__(
        self,
        *,
        smtp: SmtpConfig | None = None,
        mqtt: MqttPublisher | None = None,
        webhook_secret: bytes = b"",
        timeout_s: float = 10.0,
    ) -> None:
        self._smtp = smtp
        self._mqtt = mqtt
        self._secret = webhook_secret
        self._timeout_s = timeout_s

    def send(self, notice: Notice) -> None:
        try:
            if notice.channel == "email":
                self._email(notice)
            elif notice.channel == "webhook":
                self._webhook(notice)
            elif notice.channel == "mqtt":
                self._publish(notice)
            else:
                raise SendError(f"unknown channel {notice.channel!r}")
        except SendError:
            raise
        except (OSError, smtplib.SMTPException, httpx.HTTPError, RuntimeError, ValueError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from exc

    def _email(self, notice: Notice) -> None:
        cfg = self._smtp
        if cfg is None:
            raise SendError("no SMTP server configured (COLDCHAIN_SMTP_HOST)")
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
            if cfg.starttls:
                smtp.starttls()
            if cfg.user is not None:
                smtp.login(cfg.user, cfg.password or "")
            smtp.send_message(email(notice, cfg.sender))

    def _webhook(self, notice: Notice) -> None:
        data = body(notice)
        headers = webhook_headers(self._secret, data, DUTY_EVENT)
        resp = httpx.post(notice.address, content=data, headers=headers, timeout=self._timeout_s)
        if resp.status_code >= 300:
            raise SendError(f"HTTP {resp.status_code}")

    def _publish(self, notice: Notice) -> None:
        if self._mqtt is None:
            raise SendError("no MQTT broker connected")
        info = self._mqtt.publish(notice.address, body(notice), qos=1)
        # paho: wait until the broker has the message (PUBACK) before the notice counts as sent.
        info.wait_for_publish(timeout=self._timeout_s)
        if not info.is_published():
            raise SendError("the broker did not acknowledge the message in time")


def _due(row: dict[str, Any], duties: Duties, now: datetime) -> bool:
    level = int(row["notify_level"]) + 1
    if not duties.recipients(row["product_class"], level):
        return False
    if row["notify_level"] < 0 or row["notified_at"] is None:
        return True
    wait = timedelta(seconds=duties.escalation_s.of(str(row["severity"])))
    return bool(now >= row["notified_at"] + wait)


def claim(conn: Conn, duties: Duties, now: datetime) -> int:
    """Move every open alarm that is due to its next level and queue that level's notices; return how
    many alarms moved. Each alarm moves in its own short transaction, under its row lock."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(queries.DUTY_CANDIDATES).fetchall()
    moved = 0
    for row in rows:
        if not _due(row, duties, now):
            continue
        level = int(row["notify_level"]) + 1
        with conn.transaction():
            held = conn.execute(
                queries.DUTY_LOCK, {"alarm_id": row["alarm_id"], "notify_level": row["notify_level"]}
            ).fetchone()
            if held is None:  # acknowledged, resolved or moved meanwhile, or locked: next tick decides
                continue
            conn.execute(queries.DUTY_ADVANCE, {"alarm_id": row["alarm_id"], "level": level, "now": now})
            for person, channel, address in duties.recipients(row["product_class"], level):
                conn.execute(
                    queries.NOTICE_INSERT,
                    {
                        "alarm_id": row["alarm_id"],
                        "level": level,
                        "person": person,
                        "channel": channel,
                        "address": address,
                        "now": now,
                    },
                )
        moved += 1
        log.info("alarms.duty_level", alarm_id=row["alarm_id"], level=level, severity=row["severity"])
    return moved


def deliver(conn: Conn, senders: Senders, now: datetime, limit: int = 100) -> int:
    """Deliver up to `limit` pending notices whose attempt is due, one at a time under its row lock;
    return how many were sent or cancelled."""
    done = 0
    for _ in range(limit):
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(queries.NOTICE_NEXT, {"now": now}).fetchone()
            if row is None:
                break
            alarm = {
                k: (iso_utc(v) if isinstance(v, datetime) else v)
                for k, v in row.items()
                if k not in ("notice_id", "level", "person", "channel", "address", "attempts")
            }
            notice = Notice(
                notice_id=row["notice_id"],
                level=row["level"],
                person=row["person"],
                channel=row["channel"],
                address=row["address"],
                attempts=row["attempts"],
                alarm=alarm,
            )
            if notice.level > 0 and alarm["state"] != "open":
                why = f"alarm {alarm['state']}"
                cur.execute(queries.NOTICE_CANCELLED, {"notice_id": notice.notice_id, "why": why})
                done += 1
                continue
            try:
                senders.send(notice)
            except SendError as exc:
                wait_s = min(RETRY_MAX_S, RETRY_FIRST_S * 2**notice.attempts)
                cur.execute(
                    queries.NOTICE_FAILED,
                    {"notice_id": notice.notice_id, "error": str(exc)[:500], "now": now, "wait_s": wait_s},
                )
                log.warning(
                    "alarms.duty_send_failed",
                    alarm_id=alarm["alarm_id"],
                    person=notice.person,
                    channel=notice.channel,
                    error=str(exc),
                )
                continue
            cur.execute(queries.NOTICE_SENT, {"notice_id": notice.notice_id})
            done += 1
    return done


class DutyEscalator:
    """Runs `claim` and `deliver` on its own connection, every `poll_s` (a stage worker of its own, so a
    slow mail relay never holds up the rules worker)."""

    def __init__(self, conninfo: str, duties: Duties, senders: Senders) -> None:
        self._conninfo = conninfo
        self.duties = duties
        self.senders = senders
        self._conn: Conn | None = None

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        return self._conn

    def tick(self, now: datetime | None = None) -> int:
        """One round at `now` (default: the database's clock); return the alarms moved plus notices done."""
        conn = self._connection()
        if now is None:
            row = conn.execute(queries.NOW).fetchone()
            assert row is not None
            now = row[0]
        assert now is not None
        return claim(conn, self.duties, now) + deliver(conn, self.senders, now)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_forever(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """Tick until `stop` is set, waiting `poll_s` after a round with nothing to do."""
        try:
            while not stop.is_set():
                if self.tick() == 0:
                    stop.wait(poll_s)
        finally:
            self.close()

"""Stage 2 (verdicts): the alarm notifiers: MQTT alerts and signed webhooks, after commit.

Every alarm change the worker commits is queued here and delivered off the worker's thread: MQTT
`cc/v1/alerts/{severity}/{asset}` (QoS 1) and webhooks (POST, JSON body,
``X-Coldchain-Signature: sha256=<hex HMAC-SHA256 of the body>``, retried with backoff).
`webhook_headers` is the one definition of a webhook's headers (the ledger's checkpoints use it too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

log = structlog.get_logger("rules.alarms")

SIGNATURE_HEADER = "X-Coldchain-Signature"
EVENT_HEADER = "X-Coldchain-Event"
TOPIC_PREFIX = "cc/v1/alerts"


class MqttPublisher(Protocol):
    """What the notifier needs of a paho-mqtt client (connected and looping, owned by the caller)."""

    def publish(self, topic: str, payload: bytes, qos: int = ..., retain: bool = ...) -> Any: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    secret: bytes


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_headers(secret: bytes, body: bytes, event: str) -> dict[str, str]:
    """The headers of every webhook POST (alarms and ledger checkpoints): JSON, its signature, its event."""
    return {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body), EVENT_HEADER: event}


def alert_topic(severity: str, asset_id: str) -> str:
    return f"{TOPIC_PREFIX}/{severity}/{asset_id}"


class AlarmNotifier:
    """Publishes alarm events after commit, on a thread of its own (MQTT QoS 1, then webhooks)."""

    def __init__(
        self,
        mqtt: MqttPublisher | None = None,
        webhooks: Sequence[Webhook] = (),
        *,
        retries: int = 3,
        backoff_s: float = 0.2,
        timeout_s: float = 5.0,
    ) -> None:
        self._mqtt = mqtt
        self._webhooks = tuple(webhooks)
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return self._mqtt is not None or bool(self._webhooks)

    def start(self) -> None:
        if self._thread is None and self.enabled:
            self._thread = threading.Thread(target=self._run, name="alarm-notifier", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def publish(self, event: str, alarm: dict[str, Any]) -> None:
        """Queue one alarm event (call after the transaction that made it committed)."""
        if self.enabled:
            self.start()
            self._queue.put({"event": event, "alarm": alarm})

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout_s) as http:
            while True:
                item = self._queue.get()
                try:
                    if item is None:
                        return
                    self._deliver(http, item)
                finally:
                    self._queue.task_done()

    def _deliver(self, http: httpx.Client, item: dict[str, Any]) -> None:
        alarm = item["alarm"]
        body = json.dumps(item, sort_keys=True, ensure_ascii=False).encode()
        if self._mqtt is not None:
            try:
                self._mqtt.publish(alert_topic(alarm["severity"], alarm["asset_id"]), body, qos=1)
                self.delivered += 1
            except Exception as exc:  # a broker problem must not stop the rules worker
                self.failed += 1
                log.warning("alarms.mqtt_failed", alarm_id=alarm["alarm_id"], error=str(exc))
        for hook in self._webhooks:
            headers = webhook_headers(hook.secret, body, item["event"])
            for attempt in range(self._retries + 1):
                try:
                    resp = http.post(hook.url, content=body, headers=headers)
                    if resp.status_code < 300:
                        self.delivered += 1
                        break
                    error = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    error = str(exc)
                if attempt == self._retries:
                    self.failed += 1
                    log.warning(
                        "alarms.webhook_failed", url=hook.url, alarm_id=alarm["alarm_id"], error=error
                    )
                else:
                    time.sleep(self._backoff_s * (2**attempt))

"""Composition root: the sinks a ledger checkpoint goes to as it is made, outside the database (a retained
MQTT message, the alert webhooks); the checkpoint log beside the key is the worker's own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from gateway.credentials import LEDGER_CHECKPOINT_TOPIC
from rules.alarms import Webhook, webhook_headers
from traceability.ledger.checkpoint import Checkpoint, Sink

# The value of X-Coldchain-Event on a checkpoint's webhook call (alarms send their lifecycle event there).
WEBHOOK_EVENT = "ledger.checkpoint"
# A webhook that does not answer within this is counted as failed; the worker signs again within a period.
WEBHOOK_TIMEOUT_S = 5.0


def mqtt_sink(client: Any) -> Sink:
    """Publish each checkpoint, retained, QoS 1, on ``cc/v1/ledger/checkpoint`` with the paho ``client``;
    an error paho reports is raised (the worker logs and counts it). Not connected (the broker down, or the
    ledger's login refused) is such an error too: paho keeps the message queued for a reconnect, but
    until then no partner sees the checkpoint, and the operator must hear of it."""
    import paho.mqtt.client as mqtt

    def publish_checkpoint_mqtt(cp: Checkpoint) -> None:
        info = client.publish(LEDGER_CHECKPOINT_TOPIC, cp.as_json(), qos=1, retain=True)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            raise RuntimeError(f"checkpoint {cp.seq} not published on MQTT yet: not connected to the broker")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"MQTT publish of checkpoint {cp.seq} failed: {mqtt.error_string(info.rc)}")

    return publish_checkpoint_mqtt


def webhook_body(cp: Checkpoint) -> bytes:
    """The body POSTed to each webhook: ``{"event": "ledger.checkpoint", "checkpoint": {...}}``."""
    return json.dumps({"event": WEBHOOK_EVENT, "checkpoint": cp.as_dict()}, sort_keys=True).encode()


def webhook_sink(hooks: Sequence[Webhook], *, timeout_s: float = WEBHOOK_TIMEOUT_S) -> Sink:
    """POST each checkpoint to every webhook, signed as alarms are (HMAC-SHA256 of the body in
    X-Coldchain-Signature); a failed or non-2xx call raises after the others were tried."""

    def publish_checkpoint_webhooks(cp: Checkpoint) -> None:
        body = webhook_body(cp)
        failed = []
        with httpx.Client(timeout=timeout_s) as http:
            for hook in hooks:
                headers = webhook_headers(hook.secret, body, WEBHOOK_EVENT)
                try:
                    status = http.post(hook.url, content=body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    failed.append(f"{hook.url}: {type(exc).__name__}")
                    continue
                if status >= 300:
                    failed.append(f"{hook.url}: HTTP {status}")
        if failed:
            raise RuntimeError(f"checkpoint {cp.seq} webhooks failed: {'; '.join(failed)}")

    return publish_checkpoint_webhooks

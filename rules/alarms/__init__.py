"""Stage 2 (verdicts): alarms: their lifecycle in the database and their notifiers (MQTT, webhooks)."""

from rules.alarms.lifecycle import (
    SEVERITIES,
    AlarmStateError,
    Condition,
    acknowledge,
    auto_resolve,
    list_alarms,
    raise_or_update,
    resolve,
)
from rules.alarms.notify import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TOPIC_PREFIX,
    AlarmNotifier,
    MqttPublisher,
    Webhook,
    alert_topic,
    sign,
    webhook_headers,
)

__all__ = [
    "EVENT_HEADER",
    "SEVERITIES",
    "SIGNATURE_HEADER",
    "TOPIC_PREFIX",
    "AlarmNotifier",
    "AlarmStateError",
    "Condition",
    "MqttPublisher",
    "Webhook",
    "acknowledge",
    "alert_topic",
    "auto_resolve",
    "list_alarms",
    "raise_or_update",
    "resolve",
    "sign",
    "webhook_headers",
]

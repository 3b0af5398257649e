"""Stage 1 (ingest): event decoding: discrete device events (door, power, defrost, setpoint, alarm)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.decode.common import parse_time_ms
from gateway.models import EventBatch


def from_document(doc: dict[str, Any], device: str, received_at_ms: int) -> EventBatch:
    """The batch of a schema-valid event document; each event's other fields kept as JSON text."""
    t_ms: list[int] = []
    kinds: list[str] = []
    values: list[str] = []
    for e in doc["events"]:
        t_ms.append(parse_time_ms(e["t"]))
        kinds.append(e["kind"])
        rest = {k: v for k, v in e.items() if k not in ("t", "kind")}
        values.append(msgspec.json.encode(rest).decode())
    return EventBatch(
        device_id=device,
        boot=int(doc["boot"]),
        seq=int(doc["seq"]),
        received_at_ms=received_at_ms,
        t_ms=t_ms,
        event_kind=kinds,
        value_json=values,
    )

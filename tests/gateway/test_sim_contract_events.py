"""Tests: the simulator's event and SenML encoders validate against gateway/schema and decode as meant."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from firmware_sim import encode
from gateway.decode import decode
from gateway.models import EventBatch, TelemetryBatch

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "gateway" / "schema"
S_MS = 1_767_225_600_000


def _validate(kind: str, payload: bytes) -> None:
    schema = json.loads((SCHEMA_DIR / f"{kind}.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(payload))


def test_event_encoder_matches_schema_and_gateway() -> None:
    events: list[encode.Event] = [
        (S_MS, "door", {"state": "open", "door": "rear"}),
        (S_MS + 1, "power", {"state": "battery"}),
        (S_MS + 2, "defrost", {"state": "end"}),
        (S_MS + 3, "setpoint", {"value_c": -18.0, "previous_c": 2.0, "by": "driver"}),
        (S_MS + 4, "alarm", {"code": "CMP-HP", "state": "cleared", "severity": "warning", "text": "ok"}),
    ]
    payload = encode.event("truck-9", 3, 10, events)
    _validate("event", payload)
    b = decode(encode.topic("truck-9", "event"), payload, S_MS)
    assert isinstance(b, EventBatch)
    assert b.event_kind == ["door", "power", "defrost", "setpoint", "alarm"]


def test_senml_encoder_matches_schema_and_gateway() -> None:
    readings: list[tuple[int, str, float | None]] = [
        (S_MS, "temp:1", 2.5),
        (S_MS, "rh", 88.0),
        (S_MS + 60_000, "speed", 72.0),
        (S_MS + 60_000, "door", 1.0),
        (S_MS + 120_000, "temp:1", None),
    ]
    payload = encode.senml("logger-3", readings)
    _validate("senml", payload)
    b = decode(encode.topic("logger-3", "senml"), payload, S_MS + 200_000)
    assert isinstance(b, TelemetryBatch)
    assert b.channel == ["temp:1", "rh", "speed", "door"]
    assert b.t_ms == [S_MS, S_MS, S_MS + 60_000, S_MS + 60_000]
    assert b.value[2] is not None
    assert abs(b.value[2] - 72.0) < 1e-9

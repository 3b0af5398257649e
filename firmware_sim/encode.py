"""Stage 0, devices: the simulator's own encoder of v1 wire payloads (tied to gateway/schema by a test)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final, Literal

TOPIC_PREFIX: Final = "cc/v1/dev/"
WIRE_VERSION: Final = 1

Reading = tuple[int, str, float | None]  # (t_ms, channel, value); None = dropout
TagRead = tuple[int, str, int, float]  # (t_ms, epc, antenna, rssi_dbm)


def topic(device_id: str, kind: Literal["telemetry", "rfid", "status", "event", "senml"]) -> str:
    return f"{TOPIC_PREFIX}{device_id}/{kind}"


def _dumps(doc: object) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON; a device must send null for a dropout.
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def telemetry(device_id: str, boot: int, first_seq: int, readings: Sequence[Reading]) -> bytes:
    """{"v":1,"device":..,"boot":..,"seq":first_seq,"readings":[{"t":ms,"ch":..,"v":..}, ...]}."""
    return _dumps(
        {
            "v": WIRE_VERSION,
            "device": device_id,
            "boot": boot,
            "seq": first_seq,
            "readings": [{"t": t_ms, "ch": ch, "v": v} for t_ms, ch, v in readings],
        }
    )


def rfid(device_id: str, boot: int, first_seq: int, reads: Sequence[TagRead]) -> bytes:
    """{"v":1,"device":..,"boot":..,"seq":first_seq,"reads":[{"t":ms,"epc":..,"ant":..,"rssi":..}, ...]}."""
    return _dumps(
        {
            "v": WIRE_VERSION,
            "device": device_id,
            "boot": boot,
            "seq": first_seq,
            "reads": [{"t": t_ms, "epc": epc, "ant": ant, "rssi": rssi} for t_ms, epc, ant, rssi in reads],
        }
    )


def status(device_id: str, state: Literal["online", "offline"], t_ms: int) -> bytes:
    """{"v":1,"device":..,"status":"online"|"offline","t":ms} (retained; the Last Will says offline)."""
    return _dumps({"v": WIRE_VERSION, "device": device_id, "status": state, "t": t_ms})


# (t_ms, kind, fields): kind door/power/defrost/setpoint/alarm; fields as event.v1.json lists them,
# e.g. (t, "door", {"state": "open"}), (t, "setpoint", {"value_c": 2.0, "previous_c": 4.0}).
Event = tuple[int, str, dict[str, object]]


def event(device_id: str, boot: int, first_seq: int, events: Sequence[Event]) -> bytes:
    """{"v":1,"device":..,"boot":..,"seq":..,"events":[{"t":ms,"kind":..,...fields}, ...]}."""
    return _dumps(
        {
            "v": WIRE_VERSION,
            "device": device_id,
            "boot": boot,
            "seq": first_seq,
            "events": [{"t": t_ms, "kind": kind, **fields} for t_ms, kind, fields in events],
        }
    )


# SenML units of the v1 channels (RFC 8428 section 12.1; %EL from RFC 8798).
SENML_UNITS: Final = {
    "temp": "Cel",
    "setpoint": "Cel",
    "rh": "%RH",
    "lat": "lat",
    "lon": "lon",
    "speed": "m/s",
    "battery": "%EL",
    "door": "/",
    "power": "/",
}


def senml(device_id: str, readings: Sequence[Reading]) -> bytes:
    """A SenML JSON pack (RFC 8428) as an off-the-shelf sensor sends it on cc/v1/dev/{id}/senml.

    Base name "<device>:", base time = the first reading (seconds), each record's t relative to it;
    a probe channel temp:2 is named "temp/2"; speed is sent in m/s (SenML's unit), not km/h."""
    if not readings:
        raise ValueError("a SenML pack needs at least one record")
    bt_ms = readings[0][0]
    records: list[dict[str, object]] = []
    for t_ms, ch, v in readings:
        if v is None:
            continue  # SenML has no dropout marker: a missing sample is simply not sent
        base = ch.split(":", 1)[0]
        rec: dict[str, object] = {
            "n": ch.replace(":", "/"),
            "u": SENML_UNITS[base],
            "v": v / 3.6 if base == "speed" else v,
        }
        if t_ms != bt_ms:
            rec["t"] = (t_ms - bt_ms) / 1000
        records.append(rec)
    records[0] = {"bn": f"{device_id}:", "bt": bt_ms / 1000, **records[0]}
    return _dumps(records)

"""Stage 0, devices: the simulator's own encoder of v1 wire payloads (tied to gateway/schema by a test)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final, Literal

TOPIC_PREFIX: Final = "cc/v1/dev/"
WIRE_VERSION: Final = 1

Reading = tuple[int, str, float | None]  # (t_ms, channel, value); None = dropout
TagRead = tuple[int, str, int, float]  # (t_ms, epc, antenna, rssi_dbm)


def topic(device_id: str, kind: Literal["telemetry", "rfid", "status", "event"]) -> str:
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

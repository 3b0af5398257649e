"""Stage 1 (ingest): the batch types, the wire-to-database contract between decoder and writer."""

from __future__ import annotations

import hashlib
from typing import Final, Literal

import msgspec

# The payload kinds of a v1 topic cc/v1/dev/{device}/{kind}.
Kind = Literal["telemetry", "rfid", "status", "event", "senml"]
KINDS: Final[tuple[Kind, ...]] = ("telemetry", "rfid", "status", "event", "senml")


class TelemetryBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One telemetry message: parallel lists, readings[i] has seq + i."""

    kind: Literal["telemetry"] = "telemetry"
    device_id: str
    boot: int
    seq: int
    received_at_ms: int
    t_ms: list[int]
    channel: list[str]
    value: list[float | None]
    flags: list[int]
    # False for SenML packs: they carry no (boot, seq), so they take no part in gap counting.
    seq_tracked: bool = True

    def __len__(self) -> int:
        return len(self.t_ms)


class RfidBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One RFID message: parallel lists of tag reads, reads[i] has seq + i."""

    kind: Literal["rfid"] = "rfid"
    device_id: str
    boot: int
    seq: int
    received_at_ms: int
    t_ms: list[int]
    epc: list[str]
    antenna: list[int | None]
    rssi: list[float | None]

    def __len__(self) -> int:
        return len(self.t_ms)


class StatusBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A device status message (retained; the Last Will says offline)."""

    kind: Literal["status"] = "status"
    device_id: str
    status: Literal["online", "offline"]
    t_ms: int
    received_at_ms: int

    def __len__(self) -> int:
        return 1


class EventBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One event message: parallel lists of discrete device events (door, power, defrost, setpoint, alarm)."""

    kind: Literal["event"] = "event"
    device_id: str
    boot: int
    seq: int
    received_at_ms: int
    t_ms: list[int]
    event_kind: list[str]
    value_json: list[str]  # the event without t and kind, as JSON text (device_event.value)

    def __len__(self) -> int:
        return len(self.t_ms)


Batch = TelemetryBatch | RfidBatch | StatusBatch | EventBatch


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    """A message the gateway cannot accept: a value bound for dead_letter, never an exception."""

    reason: str  # short snake_case code: bad_topic, payload_too_large, malformed_json, schema, ...
    detail: str = ""
    device_id: str | None = None  # from the topic, when it could be read


class RawMessage(msgspec.Struct, frozen=True):
    """Bytes as received, kept for dead letters: whole, or only a prefix of a payload over the limit."""

    topic: str
    payload: bytes
    received_at_ms: int
    # Set only when `payload` is a prefix (see bounded()): the whole payload's length and sha256.
    whole_bytes: int | None = None
    whole_sha256: bytes | None = None

    def payload_bytes(self) -> int:
        """Length of the whole payload as received."""
        return len(self.payload) if self.whole_bytes is None else self.whole_bytes

    def payload_sha256(self) -> bytes:
        """sha256 of the whole payload as received."""
        return hashlib.sha256(self.payload).digest() if self.whole_sha256 is None else self.whole_sha256

    def bounded(self, max_payload_bytes: int, keep_bytes: int) -> RawMessage:
        """This message, or (payload over `max_payload_bytes`, so refused unread) its first `keep_bytes`
        with the whole payload's length and sha256: a refused payload is never held, queued or spooled
        whole."""
        if self.whole_bytes is not None or len(self.payload) <= max_payload_bytes:
            return self
        return RawMessage(
            self.topic,
            self.payload[:keep_bytes],
            self.received_at_ms,
            whole_bytes=len(self.payload),
            whole_sha256=hashlib.sha256(self.payload).digest(),
        )

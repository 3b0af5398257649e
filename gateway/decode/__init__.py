"""Stage 1 (ingest): pure (sans-I/O) decoding of v1 device payloads into typed batches: decode()."""

from __future__ import annotations

import contextlib
import logging
from typing import Final

from gateway.decode import event, rfid, senml, status, telemetry
from gateway.decode.common import (
    CHANNEL_RANGES,
    CLOCK_SKEW_TOLERANCE_MS,
    FLAG_CLOCK_AHEAD,
    MAX_DEVICE_T_MS,
    MIN_DEVICE_T_MS,
    RejectError,
    check_device,
    load_document,
    parse_time_ms,
    parse_topic,
    schema_text,
)
from gateway.limits import MAX_PAYLOAD_BYTES
from gateway.models import KINDS, Batch, Rejected

__all__ = [
    "CHANNEL_RANGES",
    "CLOCK_SKEW_TOLERANCE_MS",
    "DECODER_FAILED",
    "FLAG_CLOCK_AHEAD",
    "MAX_DEVICE_T_MS",
    "MIN_DEVICE_T_MS",
    "decode",
    "parse_time_ms",
    "parse_topic",
    "schema_text",
]

log = logging.getLogger(__name__)

# Reason of a payload that made the decoder itself fail: a bug in a decoder, kept as a dead letter so
# that no payload can stop ingest; the log has the traceback.
DECODER_FAILED: Final = "decoder_failed"


def decode(
    topic: str,
    payload: bytes,
    received_at_ms: int,
    *,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    payload_bytes: int | None = None,
) -> Batch | Rejected:
    """Decode and validate one MQTT message. Pure: never raises for any topic or payload bytes.

    A payload longer than `max_payload_bytes` is refused before it is read (payload_too_large), as is
    one of which only a prefix was kept: `payload_bytes` is then the whole payload's length."""
    try:
        return _decode(topic, payload, received_at_ms, max_payload_bytes, payload_bytes)
    except Exception as e:  # the last line of defence: any escape would stop the decoder thread
        return _decoder_failed(topic, e)


def _decoder_failed(topic: object, e: Exception) -> Rejected:
    """The dead letter of a payload the decoder failed on; nothing in here may raise in turn."""
    with contextlib.suppress(Exception):  # a broken repr or log handler must not stop ingest either
        log.exception("gateway: decoding a message on %s failed", repr(topic)[:200])
    try:
        parsed = parse_topic(topic) if isinstance(topic, str) else None
    except Exception:
        parsed = None
    return Rejected(
        reason=DECODER_FAILED,
        detail=f"the decoder failed on this payload ({type(e).__name__})",
        device_id=parsed[0] if parsed is not None else None,
    )


def _decode(
    topic: str, payload: bytes, received_at_ms: int, max_payload_bytes: int, whole_bytes: int | None
) -> Batch | Rejected:
    parsed = parse_topic(topic)
    if parsed is None:
        return Rejected(
            reason="bad_topic", detail=f"topic {topic[:200]!r} is not cc/v1/dev/{{device}}/{{kind}}"
        )
    topic_device, kind = parsed
    if kind not in KINDS:
        return Rejected(
            reason="unsupported_kind", detail=f"no v1 decoder for {kind[:50]!r}", device_id=topic_device
        )
    size = len(payload) if whole_bytes is None else whole_bytes
    if size > max_payload_bytes or size != len(payload):
        return Rejected(
            reason="payload_too_large",
            detail=f"{size} bytes > {max_payload_bytes}"
            if size > max_payload_bytes
            else f"{size} bytes, over the limit when received: only {len(payload)} kept",
            device_id=topic_device,
        )
    if kind == "telemetry":
        return telemetry.decode_telemetry(payload, topic_device, received_at_ms)
    doc = load_document(kind, payload, topic_device)
    if isinstance(doc, Rejected):
        return doc
    try:
        if kind == "senml":
            assert isinstance(doc, list)
            return senml.from_document(doc, topic_device, received_at_ms)
        assert isinstance(doc, dict)
        device = check_device(doc, topic_device)
        if kind == "rfid":
            return rfid.from_document(doc, device, received_at_ms)
        if kind == "event":
            return event.from_document(doc, device, received_at_ms)
        return status.from_document(doc, device, received_at_ms)
    except RejectError as e:
        return e.rejected(topic_device)

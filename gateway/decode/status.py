"""Stage 1 (ingest): status decoding: a device's online / offline (retained; the Last Will says offline)."""

from __future__ import annotations

from typing import Any

from gateway.decode.common import parse_time_ms
from gateway.models import StatusBatch


def from_document(doc: dict[str, Any], device: str, received_at_ms: int) -> StatusBatch:
    """The batch of a schema-valid status document."""
    status = doc["status"]
    assert status in ("online", "offline")
    return StatusBatch(
        device_id=device, status=status, t_ms=parse_time_ms(doc["t"]), received_at_ms=received_at_ms
    )

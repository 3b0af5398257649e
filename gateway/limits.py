"""Stage 1 (ingest): the gateway's configurable limits and their defaults, defined once (no I/O)."""

from __future__ import annotations

import dataclasses
from typing import Final

# A v1 message holds at most 5000 items (schema maxItems); 5000 readings of ~100 bytes fit in 1 MiB.
# Larger payloads are refused before they are read (dead letter payload_too_large).
MAX_PAYLOAD_BYTES: Final = 1_048_576
# The broker refuses (closes the publisher's connection on) any MQTT packet larger than the payload
# limit plus this, so a payload far beyond the limit never reaches the gateway, its queue or its spool.
# A PUBLISH's overhead is its fixed header (at most 5 bytes), packet id (2), topic (2 + its bytes: a v1
# topic is under 100) and MQTT 5 properties (a few dozen bytes unless a client adds user properties);
# 64 KiB leaves room for all of them, and payloads just over the limit still arrive and are dead letters
# with their reason (payload_too_large).
PACKET_OVERHEAD_BYTES: Final = 65_536
# Mosquitto's max_packet_size, for the embedded broker and deploy/mosquitto/mosquitto.conf (a test checks
# that file against it).
MAX_PACKET_BYTES: Final = MAX_PAYLOAD_BYTES + PACKET_OVERHEAD_BYTES
# A dead letter keeps this much of the payload (with the full length and sha256): 64 KiB shows any
# malformed message a person would read, and bounds what a hostile publisher can make the database hold.
DEAD_LETTER_PREFIX_BYTES: Final = 65_536
# A (boot, seq) jump beyond this many readings is a device anomaly, not missing readings: a logger
# offline for 30 days with 8 channels at one reading a minute falls 345 600 behind; 1 000 000 is
# three times that, and far below the 9e15 that one message with seq 2**53-1 would otherwise add.
SEQ_JUMP_MAX: Final = 1_000_000


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestLimits:
    """The limits one gateway applies (settings gateway_max_payload_bytes, ... in gateway/config.py)."""

    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    dead_letter_prefix_bytes: int = DEAD_LETTER_PREFIX_BYTES
    seq_jump_max: int = SEQ_JUMP_MAX


DEFAULT_LIMITS: Final = IngestLimits()

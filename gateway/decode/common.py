"""Stage 1 (ingest): what every decoder shares: topics, device times, channel ranges, the schemas."""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, Final

import fastjsonschema
import msgspec

from gateway.models import Kind, Rejected

# Device clocks ahead of the gateway by more than this are flagged (never corrected): 5 min.
CLOCK_SKEW_TOLERANCE_MS: Final = 5 * 60 * 1000
# flags bit 0: the device time was ahead of the receive time beyond CLOCK_SKEW_TOLERANCE_MS.
FLAG_CLOCK_AHEAD: Final = 1
# Device times outside [2000-01-01, 2100-01-01) are an unset or broken clock, not data.
MIN_DEVICE_T_MS: Final = 946_684_800_000
MAX_DEVICE_T_MS: Final = 4_102_444_800_000

TOPIC_PREFIX: Final = "cc/v1/dev/"
_DEVICE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RFC3339_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)

# Physically possible ranges per channel (inclusive). Temperatures: a cold-chain probe reading
# outside -100..150 degC is a broken sensor or encoding, not a temperature.
_TEMP_RANGE_C: Final = (-100.0, 150.0)
CHANNEL_RANGES: Final[dict[str, tuple[float, float]]] = {
    "temp": _TEMP_RANGE_C,
    "setpoint": _TEMP_RANGE_C,
    "rh": (0.0, 100.0),  # relative humidity, %
    "door": (0.0, 1.0),  # 0 closed / 1 open
    "power": (0.0, 1.0),  # 0 off / 1 on
    "lat": (-90.0, 90.0),  # degrees
    "lon": (-180.0, 180.0),  # degrees
    "speed": (0.0, 400.0),  # km/h; nothing on the road or rails goes faster
    "battery": (0.0, 100.0),  # state of charge, %
}
BINARY_CHANNELS: Final = frozenset({"door", "power"})
# RSSI of a UHF tag read, dBm: below -150 is under any receiver's noise floor,
# above 30 is more than the reader itself transmits.
RSSI_RANGE_DBM: Final = (-150.0, 30.0)


class RejectError(Exception):
    """Raised inside a decoder; decode() turns it into a Rejected value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def rejected(self, device_id: str | None) -> Rejected:
        return Rejected(reason=self.reason, detail=self.detail[:500], device_id=device_id)


_validators: dict[str, Callable[[Any], Any]] = {}
_validators_lock = threading.Lock()


def schema_text(kind: Kind) -> str:
    """The JSON Schema (draft 2020-12) of a v1 payload kind, as shipped in gateway/schema/."""
    return resources.files("gateway").joinpath("schema", f"{kind}.v1.json").read_text(encoding="utf-8")


def _validator(kind: Kind) -> Callable[[Any], Any]:
    """The compiled validator of a kind: compiled on first use, once per process."""
    v = _validators.get(kind)
    if v is None:
        with _validators_lock:
            v = _validators.get(kind)
            if v is None:
                v = fastjsonschema.compile(msgspec.json.decode(schema_text(kind)))
                _validators[kind] = v
    return v


def _utf8_error(e: UnicodeDecodeError) -> str:
    bad = bytes(e.object[e.start : e.start + 1]).hex()
    return f"payload is not UTF-8: a string holds the invalid byte 0x{bad}"


def load_document(kind: Kind, payload: bytes, topic_device: str) -> Any:
    """The payload parsed as JSON and valid against the kind's schema, or the Rejected saying why not."""
    try:
        doc = msgspec.json.decode(payload)
    except UnicodeDecodeError as e:
        return Rejected(reason="malformed_json", detail=_utf8_error(e), device_id=topic_device)
    except (msgspec.DecodeError, RecursionError) as e:
        return Rejected(reason="malformed_json", detail=str(e)[:500], device_id=topic_device)
    try:
        _validator(kind)(doc)
    except fastjsonschema.JsonSchemaValueException as e:
        return Rejected(reason="schema", detail=str(e.message)[:500], device_id=topic_device)
    except RecursionError:
        return Rejected(reason="schema", detail="payload nested too deeply", device_id=topic_device)
    return doc


def parse_topic(topic: str) -> tuple[str, str] | None:
    """(device_id, kind) of a cc/v1/dev/{device_id}/{kind} topic, or None."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    parts = topic[len(TOPIC_PREFIX) :].split("/")
    if len(parts) != 2 or not _DEVICE_RE.fullmatch(parts[0]) or not parts[1]:
        return None
    return parts[0], parts[1]


def parse_time_ms(t: object) -> int:
    """Device time as epoch ms: an integer (or integral float) of ms, or an RFC 3339 string with offset."""
    if isinstance(t, bool):
        raise RejectError("bad_time", f"time {t!r} is not a time")
    if isinstance(t, int):
        t_ms = t
    elif isinstance(t, float):
        if not math.isfinite(t) or not t.is_integer():
            raise RejectError("bad_time", f"time {t!r} is not whole epoch milliseconds")
        t_ms = int(t)
    elif isinstance(t, str):
        t_ms = _parse_rfc3339_ms(t)
    else:
        raise RejectError("bad_time", f"time {t!r} is neither epoch ms nor RFC 3339")
    if not MIN_DEVICE_T_MS <= t_ms < MAX_DEVICE_T_MS:
        raise RejectError("bad_time", f"time {t!r} lies outside 2000..2100 (clock not set?)")
    return t_ms


def _parse_rfc3339_ms(s: str) -> int:
    m = _RFC3339_RE.fullmatch(s)
    if m is None:
        raise RejectError("bad_time", f"time {s!r} is not RFC 3339")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    if m.group(8):
        offset_min = 0
    else:
        sign = -1 if m.group(9) == "-" else 1
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise RejectError("bad_time", f"time {s!r} has an impossible UTC offset")
        offset_min = sign * (oh * 60 + om)
    try:
        # Leap seconds (ss = 60) are not representable in epoch time: the clock is wrong anyway.
        naive = dt.datetime(year, month, day, hour, minute, second)
    except ValueError as e:
        raise RejectError("bad_time", f"time {s!r}: {e}") from None
    epoch_s = (naive - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1) - offset_min * 60
    ms = int((frac + "000")[:3])  # truncate sub-millisecond digits
    return epoch_s * 1000 + ms


def number(v: object) -> float:
    """A JSON number as float; the schema already excluded everything else."""
    assert isinstance(v, (int, float))
    f = float(v)
    if not math.isfinite(f):
        raise RejectError("out_of_range", f"value {v!r} is not finite")
    return f


def check_device(doc: dict[str, Any], topic_device: str) -> str:
    """The payload's device, which must be the topic's."""
    device = doc["device"]
    assert isinstance(device, str)
    if device != topic_device:
        raise RejectError(
            "device_mismatch", f"payload device {device!r} differs from topic device {topic_device!r}"
        )
    return device


def clock_flag(t_ms: int, received_at_ms: int) -> int:
    """FLAG_CLOCK_AHEAD when the device time is beyond the skew tolerance ahead of the receive time."""
    return FLAG_CLOCK_AHEAD if t_ms - received_at_ms > CLOCK_SKEW_TOLERANCE_MS else 0


def check_ranges(channel: list[str], value: list[float | None]) -> None:
    """Refuse (out_of_range) the first value outside its channel's physical range."""
    for i, (ch, v) in enumerate(zip(channel, value, strict=True)):
        if v is None:
            continue
        lo, hi = CHANNEL_RANGES[ch.split(":", 1)[0]]
        if not lo <= v <= hi or (ch in BINARY_CHANNELS and v not in (0.0, 1.0)):
            raise RejectError("out_of_range", f"readings[{i}] ({ch}): {v!r} outside {lo:g}..{hi:g}")

"""Stage 1 (ingest): telemetry decoding: a msgspec fast path and the JSON-schema path, equal in result."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
import numpy as np
from msgspec import Meta

from gateway.decode.common import (
    BINARY_CHANNELS,
    CHANNEL_RANGES,
    CLOCK_SKEW_TOLERANCE_MS,
    FLAG_CLOCK_AHEAD,
    MAX_DEVICE_T_MS,
    MIN_DEVICE_T_MS,
    RejectError,
    check_device,
    clock_flag,
    load_document,
    number,
    parse_time_ms,
)
from gateway.models import Rejected, TelemetryBatch


def from_document(doc: dict[str, Any], device: str, received_at_ms: int) -> TelemetryBatch:
    """The batch of a schema-valid telemetry document (the schema path)."""
    t_ms: list[int] = []
    channel: list[str] = []
    value: list[float | None] = []
    flags: list[int] = []
    for i, r in enumerate(doc["readings"]):
        t = parse_time_ms(r["t"])
        ch: str = r["ch"]
        raw = r["v"]
        v: float | None = None
        if raw is not None:
            try:
                v = number(raw)
            except RejectError as e:
                raise RejectError(e.reason, f"readings[{i}] ({ch}): {e.detail}") from None
            lo, hi = CHANNEL_RANGES[ch.split(":", 1)[0]]
            if not lo <= v <= hi or (ch in BINARY_CHANNELS and v not in (0.0, 1.0)):
                raise RejectError("out_of_range", f"readings[{i}] ({ch}): {raw!r} outside {lo:g}..{hi:g}")
        t_ms.append(t)
        channel.append(ch)
        value.append(v)
        flags.append(clock_flag(t, received_at_ms))
    return TelemetryBatch(
        device_id=device,
        boot=int(doc["boot"]),
        seq=int(doc["seq"]),
        received_at_ms=received_at_ms,
        t_ms=t_ms,
        channel=channel,
        value=value,
        flags=flags,
    )


def decode_schema(payload: bytes, topic_device: str, received_at_ms: int) -> TelemetryBatch | Rejected:
    """The schema path: JSON, then telemetry.v1.json, then per-reading checks."""
    doc = load_document("telemetry", payload, topic_device)
    if isinstance(doc, Rejected):
        return doc
    try:
        assert isinstance(doc, dict)
        return from_document(doc, check_device(doc, topic_device), received_at_ms)
    except RejectError as e:
        return e.rejected(topic_device)


# ---- fast path: typed msgspec structs as strict as telemetry.v1.json, then numpy checks ------------
_TIME_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_T = (
    Annotated[int, Meta(ge=0, le=253402300799999)]
    | Annotated[str, Meta(max_length=40, pattern=_TIME_PATTERN)]
)


class _FastReading(msgspec.Struct, forbid_unknown_fields=True):
    t: _T
    ch: Annotated[
        str, Meta(pattern=r"^(temp(:[A-Za-z0-9_-]{1,16})?|rh|door|power|setpoint|lat|lon|speed|battery)$")
    ]
    v: float | None


class _FastTelemetry(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    boot: Annotated[int, Meta(ge=0, le=4294967295)]
    seq: Annotated[int, Meta(ge=0, le=9007199254740991)]
    readings: Annotated[list[_FastReading], Meta(min_length=1, max_length=5000)]


_fast_decoder: Final = msgspec.json.Decoder(_FastTelemetry)
_range_cache: dict[str, tuple[float, float, bool]] = {}


def _range_of(ch: str) -> tuple[float, float, bool]:
    r = _range_cache.get(ch)
    if r is None:
        lo, hi = CHANNEL_RANGES[ch.split(":", 1)[0]]
        r = (lo, hi, ch in BINARY_CHANNELS)
        if len(_range_cache) < 10_000:  # bounded: probe names come from devices
            _range_cache[ch] = r
    return r


def _time_or_bad(t: int | str) -> int:
    """The time in ms, or one outside the device-time range when it cannot be read (reported in order)."""
    try:
        return parse_time_ms(t)
    except RejectError:
        return MIN_DEVICE_T_MS - 1


def decode_fast(payload: bytes, topic_device: str, received_at_ms: int) -> TelemetryBatch | Rejected | None:
    """The fast path: a well-formed message decoded without per-field Python; None: take the schema path."""
    try:
        return _fast(payload, topic_device, received_at_ms)
    except RejectError as e:
        return e.rejected(topic_device)


def _fast(payload: bytes, topic_device: str, received_at_ms: int) -> TelemetryBatch | None:
    try:
        msg = _fast_decoder.decode(payload)
    except (ValueError, RecursionError):  # DecodeError, UnicodeDecodeError: the schema path names it
        return None
    if msg.device != topic_device:
        raise RejectError(
            "device_mismatch", f"payload device {msg.device!r} differs from topic device {topic_device!r}"
        )
    rs = msg.readings
    ts = [r.t for r in rs]
    try:
        t_arr = np.array(ts, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):  # RFC 3339 strings among them
        t_arr = np.array([_time_or_bad(t) for t in ts], dtype=np.int64)
    bad_t = (t_arr < MIN_DEVICE_T_MS) | (t_arr >= MAX_DEVICE_T_MS)
    channel = [r.ch for r in rs]
    value = [r.v for r in rs]
    v_arr = np.array(value, dtype=np.float64)  # None -> NaN (JSON itself has no NaN)
    uniq = set(channel)
    lo: Any
    hi: Any
    if len(uniq) == 1:  # the common case: one channel per message, scalar bounds
        lo, hi, is_binary = _range_of(channel[0])
        binary: Any = is_binary
    else:
        per = {c: _range_of(c) for c in uniq}
        lo = np.array([per[c][0] for c in channel])
        hi = np.array([per[c][1] for c in channel])
        binary = np.array([per[c][2] for c in channel])
    with np.errstate(invalid="ignore"):
        bad_v = (v_arr < lo) | (v_arr > hi)  # infinities too
        if np.any(binary):
            bad_v |= binary & ~np.isnan(v_arr) & (v_arr != 0.0) & (v_arr != 1.0)
    bad = bad_t | bad_v
    if bad.any():
        # The first bad reading, its time before its value: the reason the schema path gives.
        i = int(np.argmax(bad))
        if bad_t[i]:
            parse_time_ms(ts[i])  # raises with the exact reason
        if np.isinf(v_arr[i]):
            raise RejectError("out_of_range", f"readings[{i}] ({channel[i]}): value is not finite")
        lo_i, hi_i, _ = _range_of(channel[i])
        raise RejectError(
            "out_of_range", f"readings[{i}] ({channel[i]}): {value[i]!r} outside {lo_i:g}..{hi_i:g}"
        )
    flags = ((t_arr - received_at_ms) > CLOCK_SKEW_TOLERANCE_MS).astype(np.int64) * FLAG_CLOCK_AHEAD
    return TelemetryBatch(
        device_id=msg.device,
        boot=msg.boot,
        seq=msg.seq,
        received_at_ms=received_at_ms,
        t_ms=t_arr.tolist(),
        channel=channel,
        value=value,
        flags=flags.tolist(),
    )


def decode_telemetry(payload: bytes, topic_device: str, received_at_ms: int) -> TelemetryBatch | Rejected:
    """Telemetry: the fast path when it answers, else the schema path."""
    fast = decode_fast(payload, topic_device, received_at_ms)
    return fast if fast is not None else decode_schema(payload, topic_device, received_at_ms)

"""Stage 1, ingest: pure (sans-I/O) decoding and validation of v1 device payloads into typed batches."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import re
import threading
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Final, Literal

import fastjsonschema
import msgspec
import numpy as np
from msgspec import Meta

from gateway.epc import EpcError, decode_hex, is_epc_hex
from gateway.limits import MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)

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

Kind = Literal["telemetry", "rfid", "status", "event", "senml"]
KINDS: Final[tuple[Kind, ...]] = ("telemetry", "rfid", "status", "event", "senml")

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
_BINARY_CHANNELS: Final = frozenset({"door", "power"})
# RSSI of a UHF tag read, dBm: below -150 is under any receiver's noise floor,
# above 30 is more than the reader itself transmits.
RSSI_RANGE_DBM: Final = (-150.0, 30.0)


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


class _RejectError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


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
        raise _RejectError("bad_time", f"time {t!r} is not a time")
    if isinstance(t, int):
        t_ms = t
    elif isinstance(t, float):
        if not math.isfinite(t) or not t.is_integer():
            raise _RejectError("bad_time", f"time {t!r} is not whole epoch milliseconds")
        t_ms = int(t)
    elif isinstance(t, str):
        t_ms = _parse_rfc3339_ms(t)
    else:
        raise _RejectError("bad_time", f"time {t!r} is neither epoch ms nor RFC 3339")
    if not MIN_DEVICE_T_MS <= t_ms < MAX_DEVICE_T_MS:
        raise _RejectError("bad_time", f"time {t!r} lies outside 2000..2100 (clock not set?)")
    return t_ms


def _parse_rfc3339_ms(s: str) -> int:
    m = _RFC3339_RE.fullmatch(s)
    if m is None:
        raise _RejectError("bad_time", f"time {s!r} is not RFC 3339")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    if m.group(8):
        offset_min = 0
    else:
        sign = -1 if m.group(9) == "-" else 1
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise _RejectError("bad_time", f"time {s!r} has an impossible UTC offset")
        offset_min = sign * (oh * 60 + om)
    try:
        # Leap seconds (ss = 60) are not representable in epoch time: the clock is wrong anyway.
        naive = dt.datetime(year, month, day, hour, minute, second)
    except ValueError as e:
        raise _RejectError("bad_time", f"time {s!r}: {e}") from None
    epoch_s = (naive - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1) - offset_min * 60
    ms = int((frac + "000")[:3])  # truncate sub-millisecond digits
    return epoch_s * 1000 + ms


def _number(v: object) -> float:
    """A JSON number as float; the schema already excluded everything else."""
    assert isinstance(v, (int, float))
    f = float(v)
    if not math.isfinite(f):
        raise _RejectError("out_of_range", f"value {v!r} is not finite")
    return f


def _check_device(doc: dict[str, Any], topic_device: str) -> str:
    device = doc["device"]
    assert isinstance(device, str)
    if device != topic_device:
        raise _RejectError(
            "device_mismatch", f"payload device {device!r} differs from topic device {topic_device!r}"
        )
    return device


def _flag(t_ms: int, received_at_ms: int) -> int:
    return FLAG_CLOCK_AHEAD if t_ms - received_at_ms > CLOCK_SKEW_TOLERANCE_MS else 0


def _telemetry(doc: dict[str, Any], device: str, received_at_ms: int) -> TelemetryBatch:
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
                v = _number(raw)
            except _RejectError as e:
                raise _RejectError(e.reason, f"readings[{i}] ({ch}): {e.detail}") from None
            lo, hi = CHANNEL_RANGES[ch.split(":", 1)[0]]
            if not lo <= v <= hi or (ch in _BINARY_CHANNELS and v not in (0.0, 1.0)):
                raise _RejectError("out_of_range", f"readings[{i}] ({ch}): {raw!r} outside {lo:g}..{hi:g}")
        t_ms.append(t)
        channel.append(ch)
        value.append(v)
        flags.append(_flag(t, received_at_ms))
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


def _rfid(doc: dict[str, Any], device: str, received_at_ms: int) -> RfidBatch:
    t_ms: list[int] = []
    epc: list[str] = []
    antenna: list[int | None] = []
    rssi: list[float | None] = []
    for i, r in enumerate(doc["reads"]):
        t = parse_time_ms(r["t"])
        raw_rssi = r.get("rssi")
        rssi_dbm: float | None = None
        if raw_rssi is not None:
            rssi_dbm = _number(raw_rssi)
            lo, hi = RSSI_RANGE_DBM
            if not lo <= rssi_dbm <= hi:
                detail = f"reads[{i}]: rssi {raw_rssi!r} outside {lo:g}..{hi:g} dBm"
                raise _RejectError("out_of_range", detail)
        ant = r.get("ant")
        t_ms.append(t)
        epc.append(_epc_uri(r["epc"], i))
        antenna.append(None if ant is None else int(ant))
        rssi.append(rssi_dbm)
    return RfidBatch(
        device_id=device,
        boot=int(doc["boot"]),
        seq=int(doc["seq"]),
        received_at_ms=received_at_ms,
        t_ms=t_ms,
        epc=epc,
        antenna=antenna,
        rssi=rssi,
    )


def _epc_uri(epc: str, i: int) -> str:
    """EPC URIs are kept as sent; SGTIN-96 / SSCC-96 tag hex becomes its pure-identity URI."""
    if not is_epc_hex(epc):
        return epc
    try:
        return decode_hex(epc)
    except EpcError as e:
        raise _RejectError("bad_epc", f"reads[{i}]: {e}") from None


def _event(doc: dict[str, Any], device: str, received_at_ms: int) -> EventBatch:
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


# SenML (RFC 8428): a resolved name is "<device>:<channel>" or "<device>/<channel>"; the unit must be
# the channel's SenML unit (RFC 8428 section 12.1, RFC 8798) when given.
SENML_UNITS: Final[dict[str, str]] = {
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
_SENML_CHANNEL_RE: Final = re.compile(
    r"(temp(?:[:/][A-Za-z0-9_-]{1,16})?|rh|door|power|setpoint|lat|lon|speed|battery)"
)
# SenML times below 2**28 s are relative to "now" (RFC 8428 section 4.5.3): the device's clock would be
# replaced by ours, which drug GSP forbids, so such packs are refused.
SENML_RELATIVE_LIMIT_S: Final = 2**28
_MS_PER_S_KMH: Final = 3.6  # m/s -> km/h


def _senml(doc: list[dict[str, Any]], device: str, received_at_ms: int) -> TelemetryBatch:
    bn, bt, bu = "", 0.0, None
    t_ms: list[int] = []
    channel: list[str] = []
    value: list[float | None] = []
    for i, rec in enumerate(doc):
        bn = rec.get("bn", bn)
        bt = float(rec.get("bt", bt))
        bu = rec.get("bu", bu)
        if rec.get("bver", 10) > 10:
            raise _RejectError("schema", f"[{i}]: SenML version {rec['bver']} is not supported")
        name = bn + rec.get("n", "")
        for sep in (":", "/"):
            if name.startswith(device + sep):
                measurement = name[len(device) + 1 :]
                break
        else:
            raise _RejectError(
                "device_mismatch", f"[{i}]: SenML name {name[:100]!r} is not {device!r}:<channel>"
            )
        if not _SENML_CHANNEL_RE.fullmatch(measurement):
            raise _RejectError("schema", f"[{i}]: {measurement[:50]!r} is not a channel")
        ch = measurement.replace("/", ":")
        base = ch.split(":", 1)[0]
        unit = rec.get("u", bu)
        if unit is not None and unit != SENML_UNITS[base]:
            raise _RejectError("bad_unit", f"[{i}] ({ch}): unit {unit!r}, expected {SENML_UNITS[base]!r}")
        if ("v" in rec) == ("vb" in rec):
            raise _RejectError("schema", f"[{i}] ({ch}): a record needs exactly one of v, vb")
        raw = rec["v"] if "v" in rec else float(rec["vb"])
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise _RejectError("schema", f"[{i}] ({ch}): value is not a number")
        t_s = bt + float(rec.get("t", 0.0))
        if not math.isfinite(t_s) or t_s < SENML_RELATIVE_LIMIT_S:
            raise _RejectError(
                "bad_time", f"[{i}]: SenML time {t_s!r} is relative or missing; send absolute time"
            )
        t_ms.append(parse_time_ms(round(t_s * 1000)))
        v = _number(raw)
        if base == "speed":
            v *= _MS_PER_S_KMH
        channel.append(ch)
        value.append(v)
    flags = [_flag(t, received_at_ms) for t in t_ms]
    _check_ranges(channel, value)
    return TelemetryBatch(
        device_id=device,
        boot=0,
        seq=0,
        received_at_ms=received_at_ms,
        t_ms=t_ms,
        channel=channel,
        value=value,
        flags=flags,
        seq_tracked=False,
    )


def _check_ranges(channel: list[str], value: list[float | None]) -> None:
    for i, (ch, v) in enumerate(zip(channel, value, strict=True)):
        if v is None:
            continue
        lo, hi = CHANNEL_RANGES[ch.split(":", 1)[0]]
        if not lo <= v <= hi or (ch in _BINARY_CHANNELS and v not in (0.0, 1.0)):
            raise _RejectError("out_of_range", f"readings[{i}] ({ch}): {v!r} outside {lo:g}..{hi:g}")


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
        r = (lo, hi, ch in _BINARY_CHANNELS)
        if len(_range_cache) < 10_000:  # bounded: probe names come from devices
            _range_cache[ch] = r
    return r


def _fast_telemetry(payload: bytes, topic_device: str, received_at_ms: int) -> TelemetryBatch | None:
    """Decode a well-formed telemetry message without per-field Python; None: take the slow path."""
    try:
        msg = _fast_decoder.decode(payload)
    except (ValueError, RecursionError):  # DecodeError, UnicodeDecodeError: the slow path names it
        return None
    if msg.device != topic_device:
        raise _RejectError(
            "device_mismatch", f"payload device {msg.device!r} differs from topic device {topic_device!r}"
        )
    rs = msg.readings
    ts = [r.t for r in rs]
    try:
        t_arr = np.array(ts, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        ts = [parse_time_ms(t) for t in ts]  # RFC 3339 strings among them
        t_arr = np.array(ts, dtype=np.int64)
    bad_t = (t_arr < MIN_DEVICE_T_MS) | (t_arr >= MAX_DEVICE_T_MS)
    if bad_t.any():
        parse_time_ms(ts[int(np.argmax(bad_t))])  # raises with the exact reason
    channel = [r.ch for r in rs]
    value = [r.v for r in rs]
    v_arr = np.array(value, dtype=np.float64)  # None -> NaN (JSON itself has no NaN)
    if np.isinf(v_arr).any():
        i = int(np.argmax(np.isinf(v_arr)))
        raise _RejectError("out_of_range", f"readings[{i}] ({channel[i]}): value is not finite")
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
        bad = (v_arr < lo) | (v_arr > hi)
        if np.any(binary):
            bad |= binary & ~np.isnan(v_arr) & (v_arr != 0.0) & (v_arr != 1.0)
    if bad.any():
        i = int(np.argmax(bad))
        lo_i, hi_i, _ = _range_of(channel[i])
        raise _RejectError(
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


def _status(doc: dict[str, Any], device: str, received_at_ms: int) -> StatusBatch:
    status = doc["status"]
    assert status in ("online", "offline")
    return StatusBatch(
        device_id=device, status=status, t_ms=parse_time_ms(doc["t"]), received_at_ms=received_at_ms
    )


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


def _utf8_error(e: UnicodeDecodeError) -> str:
    bad = bytes(e.object[e.start : e.start + 1]).hex()
    return f"payload is not UTF-8: a string holds the invalid byte 0x{bad}"


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
        try:
            fast = _fast_telemetry(payload, topic_device, received_at_ms)
        except _RejectError as e:
            return Rejected(reason=e.reason, detail=e.detail[:500], device_id=topic_device)
        if fast is not None:
            return fast
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
    try:
        if kind == "senml":
            assert isinstance(doc, list)
            return _senml(doc, topic_device, received_at_ms)
        assert isinstance(doc, dict)
        device = _check_device(doc, topic_device)
        if kind == "telemetry":
            return _telemetry(doc, device, received_at_ms)
        if kind == "rfid":
            return _rfid(doc, device, received_at_ms)
        if kind == "event":
            return _event(doc, device, received_at_ms)
        return _status(doc, device, received_at_ms)
    except _RejectError as e:
        return Rejected(reason=e.reason, detail=e.detail[:500], device_id=topic_device)

"""Tests: the gateway's pure decoder (unit cases and Hypothesis properties)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.decode import CLOCK_SKEW_TOLERANCE_MS, FLAG_CLOCK_AHEAD, decode, parse_time_ms
from gateway.limits import MAX_PAYLOAD_BYTES
from gateway.models import Batch, Rejected, RfidBatch, StatusBatch, TelemetryBatch

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOPIC = "cc/v1/dev/truck-1/telemetry"


def _tel(readings: list[dict[str, Any]], device: str = "truck-1", **extra: Any) -> bytes:
    doc = {"v": 1, "device": device, "boot": 2, "seq": 40, "readings": readings, **extra}
    return json.dumps(doc).encode()


def _reason(result: Batch | Rejected) -> str:
    assert isinstance(result, Rejected), result
    return result.reason


def test_telemetry_decodes_to_parallel_lists() -> None:
    payload = _tel(
        [
            {"t": T0_MS, "ch": "temp:1", "v": -18.4},
            {"t": "2026-01-01T08:01:00.250+08:00", "ch": "door", "v": 1},
            {"t": "2026-01-01T00:02:00Z", "ch": "rh", "v": None},
        ]
    )
    b = decode(TOPIC, payload, T0_MS)
    assert isinstance(b, TelemetryBatch)
    assert (b.kind, b.device_id, b.boot, b.seq, b.received_at_ms) == ("telemetry", "truck-1", 2, 40, T0_MS)
    assert b.t_ms == [T0_MS, T0_MS + 60_250, T0_MS + 120_000]
    assert b.channel == ["temp:1", "door", "rh"]
    assert b.value == [-18.4, 1.0, None]
    assert b.flags == [0, 0, 0]
    assert len(b) == 3


def test_rfid_and_status_decode() -> None:
    rfid = {
        "v": 1,
        "device": "rfid-qz-dock3",
        "boot": 1,
        "seq": 0,
        "reads": [{"t": T0_MS, "epc": "urn:epc:id:sscc:6901234.0000000001", "ant": 1, "rssi": -52.5}],
    }
    b = decode("cc/v1/dev/rfid-qz-dock3/rfid", json.dumps(rfid).encode(), T0_MS)
    assert isinstance(b, RfidBatch)
    assert (b.epc, b.antenna, b.rssi, b.t_ms) == (
        ["urn:epc:id:sscc:6901234.0000000001"],
        [1],
        [-52.5],
        [T0_MS],
    )
    s = decode(
        "cc/v1/dev/x1/status", b'{"v":1,"device":"x1","status":"offline","t":1767225600000}', T0_MS + 5
    )
    assert s == StatusBatch(device_id="x1", status="offline", t_ms=T0_MS, received_at_ms=T0_MS + 5)


def test_device_time_ahead_is_flagged_not_rewritten() -> None:
    ahead = T0_MS + CLOCK_SKEW_TOLERANCE_MS + 1
    b = decode(
        TOPIC, _tel([{"t": ahead, "ch": "temp", "v": 1.0}, {"t": T0_MS, "ch": "temp", "v": 1.0}]), T0_MS
    )
    assert isinstance(b, TelemetryBatch)
    assert b.t_ms == [ahead, T0_MS]
    assert b.flags == [FLAG_CLOCK_AHEAD, 0]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("cc/v1/dev/truck-1", b"{}", "bad_topic"),
        ("cc/v2/dev/truck-1/telemetry", b"{}", "bad_topic"),
        ("cc/v1/dev/-bad/telemetry", b"{}", "bad_topic"),
        ("cc/v1/dev/truck-1/telemetry/x", b"{}", "bad_topic"),
        ("cc/v1/dev/truck-1/firmware", b"{}", "unsupported_kind"),
        (TOPIC, b"{not json", "malformed_json"),
        (TOPIC, b"", "malformed_json"),
        (
            TOPIC,
            b'{"v":1,"device":"truck-1","boot":1,"seq":0,"readings":[{"t":1,"ch":"temp","v":NaN}]}',
            "malformed_json",
        ),
        (TOPIC, b'{"v":1,"device":"truck-1"}', "schema"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "colour", "v": 1}]), "schema"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "temp", "v": "1"}]), "schema"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "temp", "v": 1}], extra=1), "schema"),
        (TOPIC, _tel([]), "schema"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "temp", "v": 1}], device="truck-2"), "device_mismatch"),
        (TOPIC, _tel([{"t": 5, "ch": "temp", "v": 1}]), "bad_time"),
        (TOPIC, _tel([{"t": "2026-02-30T00:00:00Z", "ch": "temp", "v": 1}]), "bad_time"),
        (TOPIC, _tel([{"t": "2026-01-01T00:00:00", "ch": "temp", "v": 1}]), "schema"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "temp:1", "v": 151}]), "out_of_range"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "temp", "v": -100.5}]), "out_of_range"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "door", "v": 0.5}]), "out_of_range"),
        (TOPIC, _tel([{"t": T0_MS, "ch": "lat", "v": 91}]), "out_of_range"),
        (
            TOPIC,
            b'{"v":1,"device":"truck-1","boot":1,"seq":0,"readings":[{"t":1,"ch":"temp","v":1e400}]}',
            "malformed_json",
        ),
    ],
)
def test_rejections(topic: str, payload: bytes, reason: str) -> None:
    result = decode(topic, payload, T0_MS)
    assert _reason(result) == reason
    assert isinstance(result, Rejected)
    assert result.detail


def test_payload_too_large_is_rejected_before_parsing() -> None:
    assert _reason(decode(TOPIC, b" " * (MAX_PAYLOAD_BYTES + 1), T0_MS)) == "payload_too_large"
    small = _tel([{"t": T0_MS, "ch": "temp", "v": 1}])
    assert isinstance(decode(TOPIC, small, T0_MS), TelemetryBatch)
    assert _reason(decode(TOPIC, small, T0_MS, max_payload_bytes=len(small) - 1)) == "payload_too_large"


# Invalid UTF-8 inside a JSON string: msgspec raises UnicodeDecodeError, which is
# no DecodeError; on every kind it must be a dead letter, on the fast telemetry path and the schema path.
_BAD_UTF8 = [
    (
        "cc/v1/dev/truck-12345-rc/telemetry",
        b'{"v":1,"device":"truck-12345-rc\xff","boot":1,"seq":0,'
        b'"readings":[{"t":1767225600000,"ch":"temp:1","v":2}]}',
    ),
    ("cc/v1/dev/truck-1/telemetry", _tel([{"t": T0_MS, "ch": "temp", "v": 1}]).replace(b"temp", b"te\xc3mp")),
    ("cc/v1/dev/truck-1/rfid", b'{"v":1,"device":"truck-1","boot":1,"seq":0,"reads":[{"t":1,"epc":"\xfe"}]}'),
    ("cc/v1/dev/truck-1/event", b'{"v":1,"device":"truck-1","boot":1,"seq":0,"events":[{"\xed\xa0\x80":1}]}'),
    ("cc/v1/dev/truck-1/status", b'{"v":1,"device":"truck-1","status":"on\x80line","t":1}'),
    ("cc/v1/dev/truck-1/senml", b'[{"bn":"truck-1:\xff","n":"temp","v":1}]'),
]


@pytest.mark.parametrize(("topic", "payload"), _BAD_UTF8)
def test_invalid_utf8_in_a_string_is_a_dead_letter(topic: str, payload: bytes) -> None:
    result = decode(topic, payload, T0_MS)
    assert _reason(result) == "malformed_json"
    assert isinstance(result, Rejected)
    assert "UTF-8" in result.detail


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,  # RecursionError in msgspec
        _tel([{"t": T0_MS, "ch": "temp", "v": 1}]).replace(
            b'"v": 1}', b'"v": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        ),
        _tel([{"t": 10**30, "ch": "temp", "v": 1}]),  # beyond 64 bits
        _tel([{"t": T0_MS, "ch": "temp", "v": 1}]).replace(b'"v": 1}', b'"v": ' + b"9" * 5000 + b"}"),
        _tel([{"t": T0_MS, "ch": "temp", "v": 1}]).replace(b'"seq": 40', b'"seq": 1e999'),
        _tel([{"t": 1e300, "ch": "temp", "v": 1}]),
        _tel([{"t": -(2**63), "ch": "temp", "v": 1}]),
        _tel([{"t": T0_MS, "ch": "temp", "v": 1}]).replace(b'"temp"', b'"\\ud800"'),
    ],
)
def test_hostile_numbers_and_nesting_are_dead_letters(payload: bytes) -> None:
    for kind in ("telemetry", "rfid", "event", "status", "senml"):
        assert isinstance(decode(f"cc/v1/dev/truck-1/{kind}", payload, T0_MS), Rejected)


def test_a_decoder_bug_is_a_dead_letter_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import decode as decode_module

    def broken(doc: dict[str, Any], device: str, received_at_ms: int) -> Batch:
        raise OverflowError("a bug")

    monkeypatch.setattr(decode_module.status, "from_document", broken)
    result = decode("cc/v1/dev/truck-1/status", b'{"v":1,"device":"truck-1","status":"online","t":1}', T0_MS)
    assert _reason(result) == decode_module.DECODER_FAILED
    assert isinstance(result, Rejected)
    assert "a bug" not in result.detail  # exception text stays in the log
    assert result.device_id == "truck-1"


def test_the_fallback_itself_cannot_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback read the topic again with parse_topic: when that raised too, the exception escaped."""
    from gateway import decode as decode_module

    def broken(topic: str) -> tuple[str, str] | None:
        raise MemoryError("a bug in the topic parser")

    monkeypatch.setattr(decode_module, "parse_topic", broken)
    result = decode("cc/v1/dev/truck-1/status", b'{"v":1,"device":"truck-1","status":"online","t":1}', T0_MS)
    assert _reason(result) == decode_module.DECODER_FAILED
    assert isinstance(result, Rejected)
    assert result.device_id is None


@settings(max_examples=200, deadline=None)
@given(topic=st.one_of(st.none(), st.integers(), st.binary(max_size=40), st.lists(st.text(max_size=5))))
def test_a_topic_of_any_type_never_raises(topic: object) -> None:
    """A caller's bug (a topic that is no str) is a dead letter too, never an exception."""
    result = decode(cast(str, topic), b'{"v":1}', T0_MS)
    assert _reason(result) == "decoder_failed"


def test_a_kept_prefix_is_refused_as_too_large_whatever_its_bytes() -> None:
    small = _tel([{"t": T0_MS, "ch": "temp", "v": 1}])
    big = decode(TOPIC, small, T0_MS, payload_bytes=MAX_PAYLOAD_BYTES + 1)
    assert _reason(big) == "payload_too_large"
    assert isinstance(big, Rejected)
    assert big.detail == f"{MAX_PAYLOAD_BYTES + 1} bytes > {MAX_PAYLOAD_BYTES}"
    # A limit raised since (a restart): the prefix is still not the message.
    assert _reason(decode(TOPIC, small, T0_MS, payload_bytes=len(small) + 1)) == "payload_too_large"
    assert isinstance(decode(TOPIC, small, T0_MS, payload_bytes=len(small)), TelemetryBatch)
    assert _reason(decode("nope", small, T0_MS, payload_bytes=MAX_PAYLOAD_BYTES + 1)) == "bad_topic"


def test_rfc3339_forms() -> None:
    assert parse_time_ms("2026-01-01T00:00:00Z") == T0_MS
    assert parse_time_ms("2026-01-01t08:00:00.123456789+08:00") == T0_MS + 123
    assert parse_time_ms("2025-12-31 19:00:00.5-05:00") == T0_MS + 500


# ---- properties ---------------------------------------------------------------------------

topics = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["telemetry", "rfid", "status", "event"]).map(lambda k: f"cc/v1/dev/dev-1/{k}"),
)


@settings(max_examples=300, deadline=None)
@given(topic=topics, payload=st.binary(max_size=300), received_at_ms=st.integers(0, 2**62))
def test_any_bytes_never_raise(topic: str, payload: bytes, received_at_ms: int) -> None:
    assert isinstance(
        decode(topic, payload, received_at_ms), TelemetryBatch | RfidBatch | StatusBatch | Rejected
    )


_VALID = {
    "telemetry": _tel(
        [{"t": T0_MS, "ch": "temp:1", "v": 2.5}, {"t": "2026-01-01T00:00:01Z", "ch": "door", "v": 1}]
    ),
    "rfid": b'{"v":1,"device":"truck-1","boot":1,"seq":0,"reads":[{"t":1767225600000,'
    b'"epc":"urn:epc:id:sgtin:0614141.812345.6789","ant":1,"rssi":-50.5}]}',
    "event": b'{"v":1,"device":"truck-1","boot":1,"seq":0,"events":[{"t":1767225600000,"kind":"door",'
    b'"state":"open","door":"rear"}]}',
    "status": b'{"v":1,"device":"truck-1","status":"online","t":1767225600000}',
    "senml": b'[{"bn":"truck-1:","bt":1767225600,"bu":"Cel","n":"temp","v":3.5}]',
}


@settings(max_examples=1000, deadline=None)
@given(
    kind=st.sampled_from(sorted(_VALID)),
    at=st.floats(0, 1),
    cut=st.integers(0, 8),
    insert=st.binary(min_size=0, max_size=12),
)
def test_bytes_spliced_into_valid_payloads_never_raise(kind: str, at: float, cut: int, insert: bytes) -> None:
    """Any bytes at any place of a valid message (inside strings too) decode to a batch or a reason."""
    valid = _VALID[kind]
    i = int(at * len(valid))
    payload = valid[:i] + insert + valid[i + cut :]
    result = decode(f"cc/v1/dev/truck-1/{kind}", payload, T0_MS)
    assert isinstance(result, Batch | Rejected)
    if isinstance(result, Rejected):
        assert result.reason
        assert result.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
reading_keys = st.fixed_dictionaries(
    {
        "t": json_values | st.integers(T0_MS - 10, T0_MS + 10),
        "ch": json_values | st.just("temp"),
        "v": json_values,
    }
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.fixed_dictionaries(
        {
            "v": st.just(1) | json_values,
            "device": st.just("dev-1") | json_values,
            "boot": st.integers(-1, 2**33) | json_values,
            "seq": st.integers(-1, 2**54) | json_values,
            "readings": st.lists(reading_keys, max_size=4) | json_values,
        }
    )
)
def test_any_json_document_never_raises(doc: dict[str, Any]) -> None:
    result = decode("cc/v1/dev/dev-1/telemetry", json.dumps(doc).encode(), T0_MS)
    assert isinstance(result, TelemetryBatch | Rejected)


channels = st.sampled_from(
    ["temp", "temp:1", "temp:2", "rh", "door", "power", "setpoint", "lat", "lon", "speed"]
)
_ranges = {"temp": (-100.0, 150.0), "setpoint": (-100.0, 150.0), "rh": (0.0, 100.0), "lat": (-90.0, 90.0)}
_ranges |= {"lon": (-180.0, 180.0), "speed": (0.0, 400.0)}


@st.composite
def readings(draw: st.DrawFn) -> tuple[int, str, float | None]:
    ch = draw(channels)
    t = draw(st.integers(946_684_800_000, 4_102_444_799_999))
    if draw(st.booleans()):
        return t, ch, None
    base = ch.split(":")[0]
    if base in ("door", "power"):
        return t, ch, float(draw(st.integers(0, 1)))
    lo, hi = _ranges[base]
    return t, ch, draw(st.floats(lo, hi, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(
    device=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"),
    boot=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 2**53 - 1),
    rows=st.lists(readings(), min_size=1, max_size=30),
    rfc3339=st.booleans(),
)
def test_valid_payloads_round_trip(
    device: str, boot: int, seq: int, rows: list[tuple[int, str, float | None]], rfc3339: bool
) -> None:
    import datetime as dt

    def t_json(t_ms: int) -> int | str:
        if not rfc3339:
            return t_ms
        d = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).replace(microsecond=(t_ms % 1000) * 1000)
        return d.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    payload = {
        "v": 1,
        "device": device,
        "boot": boot,
        "seq": seq,
        "readings": [{"t": t_json(t), "ch": ch, "v": v} for t, ch, v in rows],
    }
    b = decode(f"cc/v1/dev/{device}/telemetry", json.dumps(payload).encode(), 4_200_000_000_000)
    assert isinstance(b, TelemetryBatch), b
    assert (b.device_id, b.boot, b.seq) == (device, boot, seq)
    assert b.t_ms == [t for t, _, _ in rows]
    assert b.channel == [ch for _, ch, _ in rows]
    assert b.value == [v for _, _, v in rows]
    assert b.flags == [0] * len(rows)

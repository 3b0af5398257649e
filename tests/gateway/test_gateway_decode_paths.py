"""Tests: the telemetry fast path (msgspec structs + numpy) and the JSON-schema path decode alike."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.decode import decode
from gateway.decode.common import MAX_DEVICE_T_MS, MIN_DEVICE_T_MS
from gateway.decode.telemetry import decode_fast, decode_schema
from gateway.models import Rejected, TelemetryBatch

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEVICE = "truck-1"
TOPIC = f"cc/v1/dev/{DEVICE}/telemetry"

_times = st.one_of(
    st.integers(T0_MS - 10**9, T0_MS + 10**9),  # around now; some beyond the clock-skew tolerance
    st.sampled_from([MIN_DEVICE_T_MS - 1, MIN_DEVICE_T_MS, MAX_DEVICE_T_MS - 1, MAX_DEVICE_T_MS, 0, -1]),
    st.integers(-(2**63), 2**63),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.123456789+02:00",
            "2026-01-01 00:00:00z",
            "1999-12-31T23:59:59Z",
            "2100-01-01T00:00:00Z",
            "2026-13-45T99:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01",
            "",
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([float(T0_MS), None, True, [], {}]),
)
_channels = st.one_of(
    st.sampled_from(["temp", "temp:p1", "rh", "door", "power", "setpoint", "lat", "lon", "speed", "battery"]),
    st.sampled_from(["temp:", "temp:" + "x" * 17, "TEMP", "co2", "door ", "temp:a/b"]),
    st.text(max_size=8),
)
_values = st.one_of(
    st.none(),
    st.floats(-300, 300, allow_nan=False),
    st.sampled_from([0, 1, 0.5, -0.0, 2, 100, 100.5, 1e308, -1e308, "1e999"]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.text(max_size=3),
)


@st.composite
def _reading(draw: st.DrawFn) -> dict[str, Any]:
    r: dict[str, Any] = {"t": draw(_times), "ch": draw(_channels), "v": draw(_values)}
    if draw(st.integers(0, 20)) == 0:
        del r[draw(st.sampled_from(["t", "ch", "v"]))]
    if draw(st.integers(0, 20)) == 0:
        r["extra"] = 1
    return r


@st.composite
def _document(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": draw(st.sampled_from([1, 1, 1, 1, 2, 1.0, "1"])),
        "device": draw(st.sampled_from([DEVICE, DEVICE, DEVICE, "truck-2", "-bad", "x" * 65])),
        "boot": draw(st.one_of(st.integers(0, 10), st.sampled_from([-1, 2**32, 1.5, None]))),
        "seq": draw(st.one_of(st.integers(0, 10**6), st.sampled_from([-1, 2**53, 2**53 - 1, "0"]))),
        "readings": draw(st.lists(_reading(), min_size=0, max_size=6)),
    }
    if draw(st.integers(0, 15)) == 0:
        del doc[draw(st.sampled_from(sorted(doc)))]
    if draw(st.integers(0, 15)) == 0:
        doc["unknown"] = True
    return doc


def _payload(doc: dict[str, Any]) -> bytes:
    # "1e999" stands for a JSON number that overflows a double (JSON has no Infinity).
    return json.dumps(doc).replace('"1e999"', "1e999").encode()


def _same(a: TelemetryBatch | Rejected, b: TelemetryBatch | Rejected) -> None:
    """Equal batches, or rejections for the same reason (their details may word it differently)."""
    if isinstance(a, Rejected) or isinstance(b, Rejected):
        assert isinstance(a, Rejected), (a, b)
        assert isinstance(b, Rejected), (a, b)
        assert (a.reason, a.device_id) == (b.reason, b.device_id), (a, b)
    else:
        assert a == b


def _check(payload: bytes) -> None:
    schema = decode_schema(payload, DEVICE, T0_MS)
    fast = decode_fast(payload, DEVICE, T0_MS)
    if fast is not None:  # None: the fast path declines, and decode() takes the schema path
        _same(fast, schema)
    result = decode(TOPIC, payload, T0_MS)
    assert isinstance(result, (TelemetryBatch, Rejected))
    _same(result, schema)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_document())
@example(  # a bad value before a bad time: both paths name the first bad reading's reason
    doc={
        "v": 1,
        "device": DEVICE,
        "boot": 1,
        "seq": 0,
        "readings": [{"t": T0_MS, "ch": "door", "v": 0.5}, {"t": 0, "ch": "temp", "v": 1.0}],
    }
)
@example(
    doc={
        "v": 1,
        "device": DEVICE,
        "boot": 1,
        "seq": 0,
        "readings": [
            {"t": T0_MS, "ch": "temp", "v": "1e999"},
            {"t": "2026-13-45T99:00:00Z", "ch": "temp", "v": 1},
        ],
    }
)
def test_fast_and_schema_paths_agree_on_documents(doc: dict[str, Any]) -> None:
    _check(_payload(doc))


@settings(max_examples=1500, deadline=None)
@given(
    doc=_document(),
    at=st.floats(0, 1),
    cut=st.integers(0, 4),
    insert=st.sampled_from([b"", b"0", b"-", b".5", b"e9", b'"', b",", b"}", b"]", b"null", b"\xff", b" "]),
)
def test_fast_and_schema_paths_agree_on_mutated_bytes(
    doc: dict[str, Any], at: float, cut: int, insert: bytes
) -> None:
    raw = _payload(doc)
    i = int(at * len(raw))
    _check(raw[:i] + insert + raw[i + cut :])

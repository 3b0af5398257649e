"""Tests: event, SenML and EPC-hex parts of the v1 wire contract (pure decoder, schema files)."""

from __future__ import annotations

import json

import pytest

from gateway.decode import decode
from gateway.decode.epc import EpcError, decode_hex, encode_sgtin96, encode_sscc96
from gateway.models import EventBatch, Rejected, TelemetryBatch

T0_MS = 1_767_225_600_000
T0_S = T0_MS // 1000


def test_epc_hex_tds_examples() -> None:
    # GS1 EPC TDS example: SGTIN-96, filter 3, company prefix 0614141, item 812345, serial 6789.
    assert decode_hex("3074257BF7194E4000001A85") == "urn:epc:id:sgtin:0614141.812345.6789"
    assert decode_hex(encode_sscc96("0614141", "1234567890", 3)) == "urn:epc:id:sscc:0614141.1234567890"
    assert encode_sscc96("0614141", "1234567890", 3) == "3174257BF4499602D2000000"
    assert decode_hex(encode_sscc96("6901234", "0000000001")) == "urn:epc:id:sscc:6901234.0000000001"
    assert decode_hex(encode_sgtin96("6901234", "012345", 42)) == "urn:epc:id:sgtin:6901234.012345.42"
    with pytest.raises(EpcError):
        decode_hex("E2801160600002054C8A3B2F")  # a TID-like value, not SGTIN/SSCC


def test_rfid_hex_epc_becomes_uri_and_bad_hex_is_dead_lettered() -> None:
    doc = {
        "v": 1,
        "device": "r1",
        "boot": 1,
        "seq": 0,
        "reads": [{"t": T0_MS, "epc": "3074257BF7194E4000001A85"}],
    }
    b = decode("cc/v1/dev/r1/rfid", json.dumps(doc).encode(), T0_MS)
    assert not isinstance(b, Rejected)
    assert b.epc == ["urn:epc:id:sgtin:0614141.812345.6789"]  # type: ignore[union-attr]
    doc["reads"] = [{"t": T0_MS, "epc": "E2801160600002054C8A3B2F"}]
    r = decode("cc/v1/dev/r1/rfid", json.dumps(doc).encode(), T0_MS)
    assert isinstance(r, Rejected)
    assert r.reason == "bad_epc"


def test_event_payload() -> None:
    doc = {
        "v": 1,
        "device": "truck-1",
        "boot": 2,
        "seq": 7,
        "events": [
            {"t": T0_MS, "kind": "door", "state": "open", "door": "rear"},
            {"t": T0_MS + 1, "kind": "power", "state": "off"},
            {"t": T0_MS + 2, "kind": "defrost", "state": "start"},
            {"t": T0_MS + 3, "kind": "setpoint", "value_c": 2.0, "previous_c": 4.0},
            {"t": T0_MS + 4, "kind": "alarm", "code": "HP-01", "state": "raised", "severity": "critical"},
        ],
    }
    b = decode("cc/v1/dev/truck-1/event", json.dumps(doc).encode(), T0_MS)
    assert isinstance(b, EventBatch)
    assert b.event_kind == ["door", "power", "defrost", "setpoint", "alarm"]
    assert json.loads(b.value_json[0]) == {"state": "open", "door": "rear"}
    doc["events"] = [{"t": T0_MS, "kind": "door", "state": "ajar"}]
    r = decode("cc/v1/dev/truck-1/event", json.dumps(doc).encode(), T0_MS)
    assert isinstance(r, Rejected)
    assert r.reason == "schema"


def test_senml_pack_maps_to_channels() -> None:
    pack = [
        {"bn": "logger-7:", "bt": T0_S, "bu": "Cel", "n": "temp", "v": 2.5},
        {"n": "temp/2", "t": 60, "v": 2.7},
        {"n": "rh", "u": "%RH", "t": 60, "v": 88},
        {"n": "door", "u": "/", "t": 120, "vb": True},
        {"n": "speed", "u": "m/s", "t": 120, "v": 10},
    ]
    b = decode("cc/v1/dev/logger-7/senml", json.dumps(pack).encode(), T0_MS + 200_000)
    assert isinstance(b, TelemetryBatch)
    assert b.channel == ["temp", "temp:2", "rh", "door", "speed"]
    assert b.t_ms == [T0_MS, T0_MS + 60_000, T0_MS + 60_000, T0_MS + 120_000, T0_MS + 120_000]
    assert b.value == [2.5, 2.7, 88.0, 1.0, 36.0]
    assert not b.seq_tracked


@pytest.mark.parametrize(
    ("pack", "reason"),
    [
        ([{"bn": "other:", "bt": T0_S, "n": "temp", "u": "Cel", "v": 1}], "device_mismatch"),
        ([{"bn": "logger-7:", "bt": T0_S, "n": "temp", "u": "degF", "v": 1}], "bad_unit"),
        ([{"bn": "logger-7:", "n": "temp", "u": "Cel", "v": 1, "t": -5}], "bad_time"),
        ([{"bn": "logger-7:", "bt": T0_S, "n": "temp", "u": "Cel", "v": 900}], "out_of_range"),
        ([{"bn": "logger-7:", "bt": T0_S, "n": "temp", "vs": "hot"}], "schema"),
        ({"bn": "logger-7:"}, "schema"),
    ],
)
def test_senml_refusals(pack: object, reason: str) -> None:
    r = decode("cc/v1/dev/logger-7/senml", json.dumps(pack).encode(), T0_MS)
    assert isinstance(r, Rejected)
    assert r.reason == reason

"""Tests: against a real Mosquitto and PostgreSQL, no message stops ingest, none is dropped or miscounted."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldchain.settings import BrokerAddress
from gateway import store
from gateway.decode import decode
from gateway.limits import DEAD_LETTER_PREFIX_BYTES, MAX_PAYLOAD_BYTES, IngestLimits
from gateway.models import Batch, RawMessage, Rejected, TelemetryBatch
from gateway.pipeline import Decoder, GatewayService
from tests.gateway_support import T0_MS, publisher_on
from tests.gateway_support import gateway_service as _gateway
from tests.gateway_support import register as _register
from tests.gateway_support import rows as _rows
from tests.gateway_support import telemetry_of as _telemetry
from tests.gateway_support import uid as _uid

SEQ_MAX = 2**53 - 1  # the largest seq the v1 schema allows


def _new_device(db_url: str, prefix: str) -> tuple[str, str]:
    """A device of this test's own, registered, and its telemetry topic."""
    device = f"{prefix}-{_uid()}"
    _register(db_url, device)
    return device, f"cc/v1/dev/{device}/telemetry"


@pytest.fixture
def publisher(mqtt_broker: BrokerAddress) -> Iterator[mqtt.Client]:
    with publisher_on(mqtt_broker) as client:
        yield client


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=30)


def _settle(svc: GatewayService, messages: int, timeout_s: float = 60.0) -> None:
    """Wait until the gateway has received `messages` and committed and acked all of them."""
    deadline = time.monotonic() + timeout_s
    while svc.stats()["messages"] < messages:
        assert svc.error is None, svc.error
        assert time.monotonic() < deadline, f"gateway saw {svc.stats()['messages']} of {messages} messages"
        time.sleep(0.02)
    assert svc.wait_idle(timeout_s)


def _poll(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# ---- one message must not stop ingest -----------------------------------------------------------


def test_invalid_utf8_message_is_dead_lettered_and_ingest_goes_on(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    """The issue's reproduction: the decoder thread died on it, and nothing after it was stored."""
    device = "truck-12345-rc"
    _register(db_url, device)
    topic = f"cc/v1/dev/{device}/telemetry"
    bad = (
        b'{"v":1,"device":"truck-12345-rc\xff","boot":1,"seq":0,'
        b'"readings":[{"t":1767225600000,"ch":"temp:1","v":2}]}'
    )
    _publish(publisher, topic, bad)
    _publish(publisher, topic, _telemetry(device, 0, [2.5]))
    _settle(gateway, 2)
    assert gateway.error is None
    assert all(gateway.liveness().values()), gateway.liveness()
    assert _rows(db_url, "SELECT reason, payload FROM dead_letter") == [("malformed_json", bad)]
    assert _rows(db_url, "SELECT value FROM reading") == [(2.5,)]


def _raising_decoder(topic: str, payload: bytes, received_at_ms: int) -> Batch | Rejected:
    raise RecursionError("a decoder bug")


def _malformed_batch_decoder(topic: str, payload: bytes, received_at_ms: int) -> Batch | Rejected:
    """A batch the writer cannot store (its parallel lists differ in length): the writer dies on it."""
    b = decode(topic, payload, received_at_ms)
    assert isinstance(b, TelemetryBatch)
    return msgspec.structs.replace(b, value=[*b.value, 1.0])


@pytest.mark.parametrize(
    ("decoder", "role", "error_type"),
    [(_raising_decoder, "decoder", RecursionError), (_malformed_batch_decoder, "writer-0", IndexError)],
)
def test_a_thread_that_dies_is_reported_by_error_and_liveness(
    db_url: str,
    mqtt_broker: BrokerAddress,
    publisher: mqtt.Client,
    decoder: Decoder,
    role: str,
    error_type: type[BaseException],
) -> None:
    device = f"die-{_uid()}"
    _register(db_url, device)
    svc = _gateway(db_url, mqtt_broker, decoder=decoder, writers=1)
    assert svc.liveness() == {"decoder": False, "writer-0": False}
    svc.start()
    try:
        assert svc.liveness() == {"decoder": True, "writer-0": True}
        assert svc.error is None
        _publish(publisher, f"cc/v1/dev/{device}/telemetry", _telemetry(device, 0, [2.0]))
        _poll(lambda: svc.error is not None and not svc.liveness()[role], f"{role} did not die")
        assert isinstance(svc.error, error_type)
        # Every thread ends: nothing is stored or acked any more, and the supervisor sees the error.
        _poll(lambda: not any(svc.liveness().values()), f"threads still alive: {svc.liveness()}")
        assert _rows(db_url, "SELECT count(*) FROM reading") == [(0,)]
    finally:
        svc.stop()
    assert svc.liveness() == {"decoder": False, "writer-0": False}


# ---- ingest integrity -------------------------------------------------------------------------


def test_conflicting_duplicate_is_a_dead_letter_and_the_first_value_stays(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    device, topic = _new_device(db_url, "cd")
    first = _telemetry(device, 0, [2.0, 2.5])
    _publish(publisher, topic, first)
    _settle(gateway, 1)
    # Same (series, time) as readings[1], another value; readings[2] is new.
    second = _telemetry(device, 1, [9.75, 3.0], t0_ms=T0_MS + 60_000)
    _publish(publisher, topic, second)
    _settle(gateway, 2)
    values = _rows(
        db_url, "SELECT (extract(epoch FROM time) * 1000)::bigint, value FROM reading ORDER BY time"
    )
    assert values == [(T0_MS, 2.0), (T0_MS + 60_000, 2.5), (T0_MS + 120_000, 3.0)]
    dead = _rows(db_url, "SELECT reason, detail, payload FROM dead_letter")
    assert len(dead) == 1
    reason, detail, payload = dead[0]
    assert reason == "conflicting_duplicate"
    assert payload == second
    assert "temp:1 at 2026-01-01T00:01:00.000+00:00" in detail
    assert "stored 2.5" in detail
    assert "received 9.75" in detail
    # A redelivery (same values) stays harmless: no dead letter, nothing stored twice.
    _publish(publisher, topic, first)
    _settle(gateway, 3)
    assert _rows(db_url, "SELECT count(*) FROM dead_letter") == [(1,)]
    assert _rows(db_url, "SELECT count(*) FROM reading") == [(3,)]
    # A dropout (null) at a stored time is a conflict too; one message repeating a time with two values
    # conflicts with itself.
    _publish(publisher, topic, _telemetry(device, 0, [None]))
    again = json.loads(_telemetry(device, 5, [4.0, 4.0]))
    again["readings"][1]["t"] = again["readings"][0]["t"] = T0_MS + 600_000
    again["readings"][1]["v"] = 4.5
    _publish(publisher, topic, json.dumps(again).encode())
    _settle(gateway, 5)
    details = [d for (d,) in _rows(db_url, "SELECT detail FROM dead_letter ORDER BY dead_letter_id")[1:]]
    assert len(details) == 2
    assert "stored 2.0, received null" in details[0]
    assert "stored 4.0, received 4.5" in details[1]
    assert _rows(db_url, "SELECT value FROM reading WHERE time = %s", _ts(T0_MS + 600_000)) == [(4.0,)]
    assert gateway.stats()["dead_letters"] == 3


def _ts(t_ms: int) -> Any:
    import datetime as dt

    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=t_ms)


def test_a_seq_jump_is_a_device_anomaly_not_missing_readings(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    """One message with seq 2**53-1 made device_seq.missing 9e15; then, counted as the new next_seq, it
    hid every real gap of the device's later messages (all below it)."""
    device, topic = _new_device(db_url, "sj")
    seq = "SELECT next_seq, missing, skipped FROM device_seq WHERE device_id = %s"
    _publish(publisher, topic, _telemetry(device, 0, [2.0]))
    _publish(publisher, topic, _telemetry(device, SEQ_MAX, [2.0], t0_ms=T0_MS + 60_000))
    _settle(gateway, 2)
    assert _rows(db_url, seq, device) == [(1, 0, 0)]  # the jump is pending: nothing counted yet
    anomalies = _rows(
        db_url, "SELECT device_id, boot, kind, expected_seq, seq, skipped, topic FROM device_anomaly"
    )
    assert anomalies == [(device, 1, "seq_jump", 1, SEQ_MAX, SEQ_MAX - 1, topic)]
    assert _rows(db_url, "SELECT count(*) FROM reading") == [(2,)]  # its readings are kept
    # The device carries on from where it was: seq 1, 3 and 4 never arrive, and are missing.
    _publish(publisher, topic, _telemetry(device, 2, [2.0], t0_ms=T0_MS + 120_000))
    _publish(publisher, topic, _telemetry(device, 5, [2.0], t0_ms=T0_MS + 180_000))
    _publish(publisher, topic, _telemetry(device, SEQ_MAX, [2.0], t0_ms=T0_MS + 60_000))  # redelivered
    _settle(gateway, 5)
    assert _rows(db_url, seq, device) == [(6, 3, 0)]
    assert _rows(db_url, "SELECT count(*) FROM device_anomaly") == [(1,)]
    assert gateway.stats()["seq_anomalies"] == 1
    assert gateway.stats()["seq_gaps"] == 3


@pytest.fixture
def windowed_gateway(start_gateway: Callable[..., GatewayService]) -> GatewayService:
    """A started gateway whose seq-jump window is 100 (a setting)."""
    return start_gateway(limits=IngestLimits(seq_jump_max=100))


def test_seq_jump_window_is_a_setting_and_counting_goes_on_after_a_jump(
    db_url: str, windowed_gateway: GatewayService, publisher: mqtt.Client
) -> None:
    device, topic = _new_device(db_url, "sw")
    _publish(publisher, topic, _telemetry(device, 0, [2.0]))
    _publish(publisher, topic, _telemetry(device, 101, [2.0], t0_ms=T0_MS + 60_000))  # 100 missing
    _settle(windowed_gateway, 2)
    seq = "SELECT next_seq, missing, skipped FROM device_seq WHERE device_id = %s"
    assert _rows(db_url, seq, device) == [(102, 100, 0)]
    assert _rows(db_url, "SELECT count(*) FROM device_anomaly") == [(0,)]
    # 101 beyond the window: an anomaly; then the device counts on from there and a gap of 3 is missing.
    _publish(publisher, topic, _telemetry(device, 203, [2.0], t0_ms=T0_MS + 120_000))
    _publish(publisher, topic, _telemetry(device, 207, [2.0], t0_ms=T0_MS + 180_000))
    _settle(windowed_gateway, 4)
    assert _rows(db_url, seq, device) == [(208, 103, 101)]
    assert _rows(db_url, "SELECT expected_seq, seq FROM device_anomaly") == [(102, 203)]
    # A redelivered jump message is no second anomaly.
    _publish(publisher, topic, _telemetry(device, 203, [2.0], t0_ms=T0_MS + 120_000))
    _settle(windowed_gateway, 5)
    assert _rows(db_url, "SELECT count(*) FROM device_anomaly") == [(1,)]
    assert _rows(db_url, seq, device) == [(208, 103, 101)]


def test_a_jump_confirmed_by_an_earlier_message_arriving_later_rebases_too(
    db_url: str, windowed_gateway: GatewayService, publisher: mqtt.Client
) -> None:
    """Reordered (shared subscription): the higher of two rebased messages arrives first."""
    device, topic = _new_device(db_url, "so")
    seq = "SELECT next_seq, missing, skipped FROM device_seq WHERE device_id = %s"
    _publish(publisher, topic, _telemetry(device, 0, [2.0]))
    _publish(publisher, topic, _telemetry(device, 507, [2.0], t0_ms=T0_MS + 60_000))
    _settle(windowed_gateway, 2)
    assert _rows(db_url, seq, device) == [(1, 0, 0)]
    _publish(publisher, topic, _telemetry(device, 500, [2.0], t0_ms=T0_MS + 120_000))
    _settle(windowed_gateway, 3)
    # Re-based at 500: 1..499 skipped, 501..506 missing.
    assert _rows(db_url, seq, device) == [(508, 6, 499)]
    assert _rows(db_url, "SELECT expected_seq, seq FROM device_anomaly") == [(1, 507)]


def test_a_conflicting_duplicate_counts_as_received_not_missing(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    """Its reading was not stored, so its seq counted as missing while its message was a dead letter."""
    device, topic = _new_device(db_url, "cr")
    seq = "SELECT next_seq, missing FROM device_seq WHERE device_id = %s"
    _publish(publisher, topic, _telemetry(device, 0, [2.0, 2.5]))
    _settle(gateway, 1)
    conflicting = _telemetry(device, 2, [9.75, 3.0], t0_ms=T0_MS + 60_000)  # seq 2 conflicts, seq 3 is new
    _publish(publisher, topic, conflicting)
    _settle(gateway, 2)
    assert _rows(db_url, "SELECT reason FROM dead_letter") == [("conflicting_duplicate",)]
    assert _rows(db_url, seq, device) == [(4, 0)]
    # A redelivery of it is neither a second dead letter nor received twice: the next gap still counts.
    _publish(publisher, topic, conflicting)
    _publish(publisher, topic, _telemetry(device, 5, [4.0], t0_ms=T0_MS + 600_000))
    _settle(gateway, 4)
    assert _rows(db_url, "SELECT count(*) FROM dead_letter") == [(1,)]
    assert _rows(db_url, seq, device) == [(6, 1)]
    assert gateway.stats()["seq_gaps"] == 1


def _rfid(device: str, seq: int, ant: int, rssi: float, t_ms: int = T0_MS) -> bytes:
    reads = [{"t": t_ms, "epc": "urn:epc:id:sscc:6901234.0000000001", "ant": ant, "rssi": rssi}]
    return json.dumps({"v": 1, "device": device, "boot": 1, "seq": seq, "reads": reads}).encode()


def _event(device: str, seq: int, state: str, t_ms: int = T0_MS) -> bytes:
    events = [{"t": t_ms, "kind": "door", "state": state, "door": "rear"}]
    return json.dumps({"v": 1, "device": device, "boot": 1, "seq": seq, "events": events}).encode()


def test_rfid_reads_and_events_with_another_value_are_conflicting_duplicates(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    """They were dropped without a trace (ON CONFLICT DO NOTHING); the first stays."""
    device = f"ce-{_uid()}"
    _register(db_url, device)
    rfid, event = f"cc/v1/dev/{device}/rfid", f"cc/v1/dev/{device}/event"
    _publish(publisher, rfid, _rfid(device, 0, 1, -52.5))
    _publish(publisher, event, _event(device, 0, "open"))
    _settle(gateway, 2)
    other_read = _rfid(device, 1, 2, -52.5)  # same reader, EPC and time; another antenna
    other_event = _event(device, 1, "closed")  # same device, kind and time; another value
    _publish(publisher, rfid, other_read)
    _publish(publisher, event, other_event)
    _publish(publisher, rfid, _rfid(device, 0, 1, -52.5))  # a redelivery: harmless
    _publish(publisher, event, _event(device, 0, "open"))
    _settle(gateway, 6)
    dead = _rows(db_url, "SELECT topic, payload, reason, detail FROM dead_letter ORDER BY topic")
    assert [(t, p, r) for t, p, r, _ in dead] == [
        (event, other_event, "conflicting_duplicate"),
        (rfid, other_read, "conflicting_duplicate"),
    ]
    assert "door at 2026-01-01T00:00:00.000+00:00" in dead[0][3]
    assert '"state": "open"' in dead[0][3]
    assert '"state":"closed"' in dead[0][3]
    assert "stored antenna 1, rssi -52.5, received antenna 2, rssi -52.5" in dead[1][3]
    assert _rows(db_url, "SELECT antenna FROM rfid_read") == [(1,)]
    assert _rows(db_url, "SELECT value->>'state' FROM device_event") == [("open",)]
    # The conflicting read was received: no seq gap.
    assert _rows(db_url, "SELECT next_seq, missing FROM device_seq WHERE device_id = %s", device) == [(2, 0)]


def test_dead_letter_keeps_a_bounded_prefix_with_length_and_sha256(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    device = f"dl-{_uid()}"
    _register(db_url, device)
    # Over the gateway's limit, under the broker's packet cap (test_gateway_oversize.py): refused unread.
    huge = b'{"v":1,"device":"' + b"x" * (MAX_PAYLOAD_BYTES + 1000) + b'"}'
    small = b"{not json"
    _publish(publisher, f"cc/v1/dev/{device}/telemetry", huge)
    _publish(publisher, f"cc/v1/dev/{device}/rfid", small)
    _settle(gateway, 2)
    rows = _rows(
        db_url,
        "SELECT reason, payload, payload_bytes, payload_sha256 FROM dead_letter ORDER BY dead_letter_id",
    )
    assert [r[0] for r in rows] == ["payload_too_large", "malformed_json"]
    _, prefix, n, digest = rows[0]
    assert prefix == huge[:DEAD_LETTER_PREFIX_BYTES]
    assert n == len(huge)
    assert digest == hashlib.sha256(huge).digest()
    assert rows[1][1:] == (small, len(small), hashlib.sha256(small).digest())


def test_payload_limits_are_settings(db_url: str, mqtt_broker: BrokerAddress, publisher: mqtt.Client) -> None:
    device = f"pl-{_uid()}"
    _register(db_url, device)
    svc = _gateway(
        db_url, mqtt_broker, limits=IngestLimits(max_payload_bytes=200, dead_letter_prefix_bytes=10)
    )
    svc.start()
    try:
        ok = _telemetry(device, 0, [2.0])
        too_large = _telemetry(device, 1, [2.0] * 10, t0_ms=T0_MS + 60_000)
        assert len(ok) <= 200 < len(too_large)
        _publish(publisher, f"cc/v1/dev/{device}/telemetry", ok)
        _publish(publisher, f"cc/v1/dev/{device}/telemetry", too_large)
        _settle(svc, 2)
        assert _rows(db_url, "SELECT count(*) FROM reading") == [(1,)]
        assert _rows(db_url, "SELECT reason, payload, payload_bytes FROM dead_letter") == [
            ("payload_too_large", too_large[:10], len(too_large))
        ]
    finally:
        svc.stop()


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=12),
    data=st.data(),
)
def test_gap_counting_is_exact_in_any_order_and_split_with_a_stray_jump(
    db_url: str, sizes: list[int], data: st.DataObject
) -> None:
    """Messages of one boot, some lost, one stray seq 2**53-1 among them, delivered in any order and any
    split into transactions (redeliveries included): missing is exactly the readings never delivered."""
    device, topic = _new_device(db_url, "hp")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    sent = data.draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    msgs = [
        _telemetry(device, s, [2.0] * n, t0_ms=T0_MS + s * 60_000)
        for s, n, ok in zip(starts, sizes, sent, strict=True)
        if ok
    ]
    msgs.append(_telemetry(device, SEQ_MAX, [2.0], t0_ms=T0_MS - 60_000))
    msgs += data.draw(st.lists(st.sampled_from(msgs), max_size=3))  # redeliveries
    order = data.draw(st.permutations(msgs))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(order) - 1, 1)), max_size=3)))
    with psycopg.connect(db_url) as conn:
        for part in (order[i:j] for i, j in zip([0, *cuts], [*cuts, len(order)], strict=True)):
            store.write(conn, [(RawMessage(topic, p, T0_MS), decode(topic, p, T0_MS)) for p in part], {})
    last = max((s + n for s, n, ok in zip(starts, sizes, sent, strict=True) if ok), default=0)
    lost = sum(n for s, n, ok in zip(starts, sizes, sent, strict=True) if not ok and s < last)
    assert _rows(
        db_url, "SELECT next_seq, missing, skipped FROM device_seq WHERE device_id = %s", device
    ) == [(last, lost, 0)]
    assert _rows(db_url, "SELECT count(*) FROM device_anomaly WHERE device_id = %s", device) == [(1,)]

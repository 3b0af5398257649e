"""Tests: hostile bytes through a real Mosquitto and gateway into PostgreSQL: stored or dead-lettered."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldchain.settings import BrokerAddress
from gateway.decode import DECODER_FAILED, decode
from gateway.models import KINDS, Batch, EventBatch, Rejected, RfidBatch, TelemetryBatch
from gateway.pipeline import GatewayService
from tests.gateway_support import T0_MS, publisher_on
from tests.gateway_support import register as _register
from tests.gateway_support import rows as _rows
from tests.gateway_support import uid as _uid

SEED = 20_260_101


def _base(device: str, kind: str, j: int, t_j: int | None = None, alt: bool = False) -> bytes:
    """A valid message of `kind`, the j-th: its own seq and device times (those of the t_j-th, when
    given: a duplicate key, which conflicts when `alt` gives its items other values)."""
    t = T0_MS + (j if t_j is None else t_j) * 100_000
    docs: dict[str, Any] = {
        "telemetry": {
            "v": 1,
            "device": device,
            "boot": 1,
            "seq": 3 * j,
            "readings": [
                {"t": t, "ch": "temp:1", "v": 3.5 if alt else 2.5},
                {"t": t + 1000, "ch": "door", "v": 1},
                {"t": t + 2000, "ch": "rh", "v": None},
            ],
        },
        "rfid": {
            "v": 1,
            "device": device,
            "boot": 1,
            "seq": j,
            "reads": [
                {"t": t, "epc": "urn:epc:id:sgtin:0614141.812345.6789", "ant": 2 if alt else 1, "rssi": -50.5}
            ],
        },
        "event": {
            "v": 1,
            "device": device,
            "boot": 1,
            "seq": j,
            "events": [{"t": t, "kind": "door", "state": "closed" if alt else "open", "door": "rear"}],
        },
        "status": {"v": 1, "device": device, "status": "online", "t": t},
        "senml": [
            {"bn": f"{device}:", "bt": t // 1000, "bu": "Cel", "n": "temp:2", "v": 4.5 if alt else 3.5}
        ],
    }
    return json.dumps(docs[kind], separators=(",", ":")).encode()


_SPLICES = (b"9" * 30, b"-1e999", b"[[[[[[", b'"\\u0000"', b"\xff", b"\xed\xa0\x80", b"1e308", b"null", b"{}")


def _mutate(rng: random.Random, b: bytes) -> bytes:
    """1-4 byte-level mutations: flip, insert, delete, splice a hostile token, copy a slice."""
    m = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(m) + 1)
        if op == 0 and m:
            m[min(i, len(m) - 1)] = rng.randrange(256)
        elif op == 1:
            m.insert(i, rng.randrange(256))
        elif op == 2:
            del m[i : i + rng.randint(1, 10)]
        elif op == 3:
            m[i:i] = rng.choice(_SPLICES)
        elif m:
            j = rng.randrange(len(m))
            m[i:i] = m[j : j + rng.randint(1, 20)]
    return bytes(m)


@pytest.fixture
def publisher(mqtt_broker: BrokerAddress) -> Iterator[mqtt.Client]:
    """One device-side connection, QoS 1, many messages in flight."""
    with publisher_on(mqtt_broker, inflight=500) as client:
        yield client


def _wait_all(db_url: str, svc: GatewayService, messages: int, timeout_s: float = 300.0) -> None:
    """Poll until the gateway has received, committed and acked `messages` (a deadline, no sleep-wait)."""
    deadline = time.monotonic() + timeout_s
    while svc.stats()["messages"] < messages:
        assert svc.error is None, svc.error
        assert time.monotonic() < deadline, f"{svc.stats()['messages']} of {messages} messages received"
        time.sleep(0.05)
    assert svc.wait_idle(max(deadline - time.monotonic(), 1.0))


Key = tuple[str, int]  # (channel / epc / event kind, device time ms)


def _event_value(value_json: str) -> str:
    """An event's value in one canonical text, equal where PostgreSQL's jsonb values are equal."""
    return json.dumps(json.loads(value_json), sort_keys=True)


def _keys(b: Batch) -> tuple[str, list[tuple[Key, Any]]]:
    """(table, [(key, value)]) of what a batch stores; two values of one key conflict."""
    if isinstance(b, TelemetryBatch):
        return "reading", [((c, t), v) for c, t, v in zip(b.channel, b.t_ms, b.value, strict=True)]
    if isinstance(b, RfidBatch):
        return "rfid_read", [
            ((e, t), (a, r)) for e, t, a, r in zip(b.epc, b.t_ms, b.antenna, b.rssi, strict=True)
        ]
    if isinstance(b, EventBatch):
        return "device_event", [
            ((k, t), _event_value(v)) for k, t, v in zip(b.event_kind, b.t_ms, b.value_json, strict=True)
        ]
    return "device_status", []


_STORED = {
    "reading": "SELECT s.channel, (extract(epoch FROM r.time) * 1000)::bigint, r.value"
    " FROM reading r JOIN series s USING (series_id) WHERE s.device_id = %s",
    "rfid_read": "SELECT epc, (extract(epoch FROM time) * 1000)::bigint,"
    " json_build_array(antenna, rssi)::text FROM rfid_read WHERE device_id = %s",
    "device_event": "SELECT kind, (extract(epoch FROM time) * 1000)::bigint, value::text FROM device_event"
    " WHERE device_id = %s",
}
_TABLE_OF_KIND = {"telemetry": "reading", "senml": "reading", "rfid": "rfid_read", "event": "device_event"}
# A conflicting_duplicate's detail names each item as "<channel / epc / kind> at <RFC 3339 time>: stored".
_NAMED = re.compile(r"(?:: |; )(\S+) at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00): stored")
_COUNT = re.compile(r"^(\d+) item\(s\) differ")


def _stored_value(table: str, v: Any) -> Any:
    if table == "rfid_read":  # [antenna, rssi] as JSON text
        a, r = json.loads(str(v))
        return (a, r)
    if table == "device_event":
        return _event_value(str(v))
    return v


def _named_conflicts(db_url: str) -> dict[str, set[Key]]:
    """The (item, time) keys the conflicting_duplicate dead letters name, per table."""
    named: dict[str, set[Key]] = {t: set() for t in _STORED}
    query = "SELECT topic, detail FROM dead_letter WHERE reason = 'conflicting_duplicate'"
    for topic, detail in _rows(db_url, query):
        found = _NAMED.findall(detail)
        count = _COUNT.match(detail)
        assert count is not None, detail
        assert int(count.group(1)) == len(found), detail  # each one is named
        for name, iso in found:
            t_ms = round(dt.datetime.fromisoformat(iso).timestamp() * 1000)
            named[_TABLE_OF_KIND[topic.rsplit("/", 1)[1]]].add((name, t_ms))
    return named


# Messages queued in the publisher at a time: a QoS 1 message id is 16 bits, so paho refuses to queue
# more than 65 535 unacknowledged ones.
_PUBLISH_WINDOW: Final = 10_000


def _mutation_fuzz(db_url: str, gw: GatewayService, pub: mqtt.Client, n: int) -> None:
    device = f"mf-{_uid()}"
    _register(db_url, device)
    rng = random.Random(SEED)
    sent: list[tuple[str, bytes]] = []
    for j in range(n):
        kind = KINDS[j % len(KINDS)]
        payload = _base(device, kind, j)
        if j >= len(KINDS) and rng.random() < 0.05:  # the times of an earlier message of its kind
            back = rng.randint(1, min(j // len(KINDS), 50))
            payload = _base(device, kind, j, t_j=j - back * len(KINDS), alt=rng.random() < 0.7)
        if rng.random() < 0.8:  # a fifth stay valid: every one of their readings must be stored
            payload = _mutate(rng, payload)
        sent.append((f"cc/v1/dev/{device}/{kind}", payload))
    for start in range(0, n, _PUBLISH_WINDOW):
        infos = [
            pub.publish(topic, payload, qos=1) for topic, payload in sent[start : start + _PUBLISH_WINDOW]
        ]
        for info in infos:
            info.wait_for_publish(timeout=120)
    _wait_all(db_url, gw, n)

    predicted = [decode(topic, payload, T0_MS) for topic, payload in sent]
    rejected = Counter(r.reason for r in predicted if isinstance(r, Rejected))
    batches = [b for b in predicted if not isinstance(b, Rejected)]
    assert DECODER_FAILED not in rejected, "a decoder raised: run fuzz/fuzz_decode.py on the payload"
    assert len(batches) >= n // 5
    assert len(rejected) >= 5  # the mutations reach many reasons

    # The gateway is alive, and counts add up: received = stored messages + dead letters.
    assert gw.error is None
    assert all(gw.liveness().values()), gw.liveness()
    assert gw.stats()["messages"] == n == len(batches) + rejected.total()
    dead = Counter(
        r for (r,) in _rows(db_url, "SELECT reason FROM dead_letter WHERE reason <> 'conflicting_duplicate'")
    )
    assert dead == rejected  # every bad message is a dead letter, with the decoder's reason

    # Every good reading is stored, nothing else is, and a stored value is one that was sent for its key.
    expected: dict[str, dict[Key, set[Any]]] = {t: {} for t in _STORED}
    for b in batches:
        table, kv = _keys(b)
        for key, value in kv:
            expected.setdefault(table, {}).setdefault(key, set()).add(value)
    for table, query in _STORED.items():
        stored = {(str(k), int(t)): _stored_value(table, v) for k, t, v in _rows(db_url, query, device)}
        assert stored.keys() == expected[table].keys(), table
        assert all(v in expected[table][k] for k, v in stored.items()), table
    # Exactly the keys sent with two or more values are named by conflicting_duplicate dead letters.
    named = _named_conflicts(db_url)
    for table in _STORED:
        assert named[table] == {k for k, vs in expected[table].items() if len(vs) > 1}, table


@pytest.mark.parametrize("n", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_seeded_mutation_fuzz_end_to_end(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client, n: int
) -> None:
    _mutation_fuzz(db_url, gateway, publisher, n)


# Topic levels of the property: the registered device, an unregistered one, the kinds, an unknown kind, or
# any text MQTT allows in a topic level (no wildcard, separator, control or unassigned character, which
# mosquitto refuses as malformed).
_LEVEL = st.sampled_from(("hp-dev", "hp-ghost", *KINDS, "firmware", "")) | st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="+#/"), max_size=12
)
_INSIDE = st.lists(_LEVEL, max_size=4).map(lambda levels: "cc/v1/dev/" + "/".join(levels))
# Outside the subscription (cc/v1/dev/+/+): the gateway never receives these.
_OUTSIDE = st.tuples(
    st.sampled_from(("cc/v1/", "cc/v2/dev/", "cc/v1/devices/", "dev/", "x")), st.lists(_LEVEL, max_size=3)
).map(lambda p: p[0] + "/".join(p[1]))
_TOPICS = (
    st.tuples(st.sampled_from(("hp-dev", "hp-ghost", "bad id!")), st.sampled_from((*KINDS, "firmware"))).map(
        lambda dk: f"cc/v1/dev/{dk[0]}/{dk[1]}"
    )
    | _INSIDE
    | _OUTSIDE
)
_MARKER_TOPIC = "cc/v1/dev/hp-dev/status"
_MARKER = _base("hp-dev", "status", 0)


def _subscribed(topic: str) -> bool:
    """Whether the gateway's filter cc/v1/dev/+/+ matches `topic` (+ matches an empty level too)."""
    return topic.startswith("cc/v1/dev/") and len(topic.split("/")) == 5


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    at=st.floats(0, 1),
    cut=st.integers(0, 8),
    insert=st.binary(max_size=12),
)
def test_spliced_bytes_decode_to_a_batch_or_a_reason(kind: str, at: float, cut: int, insert: bytes) -> None:
    """Pure decode() level, many examples: any bytes anywhere in a valid message of any kind."""
    valid = _base("hp-dev", kind, 0)
    i = int(at * len(valid))
    result = decode(f"cc/v1/dev/hp-dev/{kind}", valid[:i] + insert + valid[i + cut :], T0_MS)
    assert isinstance(result, Batch | Rejected)
    if isinstance(result, Rejected):
        assert result.reason != DECODER_FAILED
        assert result.detail


def test_any_bytes_on_any_topic_are_stored_or_dead_lettered(
    db_url: str, gateway: GatewayService, publisher: mqtt.Client
) -> None:
    """End to end through broker and gateway, a smaller set: each example is one message."""
    _register(db_url, "hp-dev")
    seen = [0]

    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        topic=_TOPICS,
        payload=st.binary(max_size=200)
        | st.tuples(st.sampled_from(KINDS), st.floats(0, 1), st.binary(max_size=8)).map(
            lambda k: (v := _base("hp-dev", k[0], 0))[: int(k[1] * len(v))] + k[2] + v[int(k[1] * len(v)) :]
        ),
    )
    def one(topic: str, payload: bytes) -> None:
        dead_before = _rows(db_url, "SELECT count(*) FROM dead_letter")[0][0]
        publisher.publish(topic, payload, qos=1).wait_for_publish(timeout=30)
        if not _subscribed(topic):
            # Not received: a marker published after it on the same connection arrives, and it alone.
            publisher.publish(_MARKER_TOPIC, _MARKER, qos=1).wait_for_publish(timeout=30)
            seen[0] += 1
            _wait_all(db_url, gateway, seen[0], timeout_s=60)
            assert gateway.stats()["messages"] == seen[0]
            assert _rows(db_url, "SELECT count(*) FROM dead_letter")[0][0] == dead_before
            return
        seen[0] += 1
        _wait_all(db_url, gateway, seen[0], timeout_s=60)
        assert gateway.error is None
        assert gateway.stats()["messages"] == seen[0]
        predicted = decode(topic, payload, T0_MS)
        device = predicted.device_id if isinstance(predicted, Batch) else None
        if isinstance(predicted, Rejected):
            reason: str | None = predicted.reason
        elif device != "hp-dev":
            reason = "unknown_device"
        else:
            reason = None  # stored (a repeat of an earlier example may be a conflicting duplicate)
        last = _rows(db_url, "SELECT reason, payload FROM dead_letter ORDER BY dead_letter_id DESC LIMIT 1")
        dead_after = _rows(db_url, "SELECT count(*) FROM dead_letter")[0][0]
        if reason is not None:
            assert dead_after == dead_before + 1
            assert last == [(reason, payload)]
        else:
            assert not isinstance(predicted, Rejected)
            assert dead_after == dead_before or last[0][0] == "conflicting_duplicate"
            table, kv = _keys(predicted)
            if table in _STORED:
                stored = {(str(k), int(t)) for k, t, _ in _rows(db_url, _STORED[table], device)}
                assert {k for k, _ in kv} <= stored

    one()
    assert all(gateway.liveness().values())

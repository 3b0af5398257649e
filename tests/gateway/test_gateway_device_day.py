"""Tests: the gateway's per device and day counters: messages received, accepted and dead-lettered by
reason, readings counted by seq and the change in readings missing, exact under any order and split."""

from __future__ import annotations

import json
from datetime import date

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import store
from gateway.decode import decode
from gateway.models import RawMessage
from tests.gateway_support import T0_MS
from tests.gateway_support import register as _register
from tests.gateway_support import rows as _rows
from tests.gateway_support import telemetry_of as _telemetry
from tests.gateway_support import uid as _uid

DAY_MS = 86_400_000
D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def _write(conn: psycopg.Connection[tuple[object, ...]], topic: str, payloads: list[bytes], rx: int) -> None:
    store.write(conn, [(RawMessage(topic, p, rx), decode(topic, p, rx)) for p in payloads], {})


def test_days_count_messages_dead_letters_and_gaps(db_url: str) -> None:
    device = f"dd-{_uid()}"
    _register(db_url, device)
    topic = f"cc/v1/dev/{device}/telemetry"
    first = _telemetry(device, 0, [2.0, 2.0, 2.0])
    with psycopg.connect(db_url) as conn:
        _write(
            conn, topic, [first, _telemetry(device, 5, [2.0, 2.0], t0_ms=T0_MS + 5 * 60_000)], T0_MS
        )  # seq 3, 4 lost
        _write(conn, topic, [b"{not json", first], T0_MS)  # a malformed one and a redelivery
        # The next day: a reading arrives whose device time is that day, then the lost seq 3..4 arrive
        # late (device time of the first day: the first day's gap closes).
        _write(conn, topic, [_telemetry(device, 7, [2.0], t0_ms=T0_MS + DAY_MS)], T0_MS + DAY_MS)
        mid = _rows(db_url, "SELECT sum(seq_missing) FROM device_day WHERE device_id = %s", device)
        assert mid == [(2,)]
        _write(conn, topic, [_telemetry(device, 3, [2.0, 2.0], t0_ms=T0_MS + 3 * 60_000)], T0_MS + DAY_MS)
    got = _rows(
        db_url,
        "SELECT day, received, accepted, dead, readings, seq_missing FROM device_day WHERE device_id = %s"
        " ORDER BY day",
        device,
    )
    # Day 1: 3 telemetry messages new (the redelivery stores nothing new), one dead; 7 readings by seq,
    # 2 missing, then filled. Day 2: one message, following on (nothing missing).
    assert got == [(D1, 4, 3, 1, 7, 0), (D2, 1, 1, 0, 1, 0)]
    assert _rows(db_url, "SELECT day, reason, n FROM device_day_dead WHERE device_id = %s", device) == [
        (D1, "malformed_json", 1)
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=10),
    data=st.data(),
)
def test_day_counts_sum_to_the_seq_ledger_in_any_order(
    db_url: str, sizes: list[int], data: st.DataObject
) -> None:
    """Whatever the order and split: the days' readings sum to device_seq.received and their missing
    changes to device_seq.missing."""
    device = f"dh-{_uid()}"
    _register(db_url, device)
    topic = f"cc/v1/dev/{device}/telemetry"
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    sent = data.draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    msgs = [
        _telemetry(device, s, [2.0] * n, t0_ms=T0_MS + s * 3_600_000 * 6)
        for s, n, ok in zip(starts, sizes, sent, strict=True)
        if ok
    ]
    msgs += data.draw(st.lists(st.sampled_from(msgs), max_size=2)) if msgs else []
    order = data.draw(st.permutations(msgs))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(order) - 1, 1)), max_size=3)))
    with psycopg.connect(db_url) as conn:
        for part in (order[i:j] for i, j in zip([0, *cuts], [*cuts, len(order)], strict=True)):
            if part:
                _write(conn, topic, part, T0_MS)
    seq = _rows(db_url, "SELECT coalesce(sum(received), 0), coalesce(sum(missing), 0) FROM device_seq"
                " WHERE device_id = %s", device)  # fmt: skip
    days = _rows(
        db_url,
        "SELECT coalesce(sum(readings), 0), coalesce(sum(seq_missing), 0), coalesce(sum(received), 0)"
        " FROM device_day WHERE device_id = %s",
        device,
    )
    assert days[0][:2] == seq[0]
    assert days[0][2] == sum(sent)  # every distinct message once, redeliveries not again


def test_a_refused_payload_counts_on_its_device_day_when_it_names_one(db_url: str) -> None:
    device = f"dr-{_uid()}"
    _register(db_url, device)
    topic = f"cc/v1/dev/{device}/telemetry"
    bad_value = json.dumps(
        {"v": 1, "device": device, "boot": 1, "seq": 0, "readings": [{"t": T0_MS, "ch": "temp", "v": "warm"}]}
    ).encode()
    with psycopg.connect(db_url) as conn:
        _write(conn, topic, [bad_value, b"{not json"], T0_MS + DAY_MS)  # both received on the second day
    got = _rows(
        db_url,
        "SELECT day, reason, n FROM device_day_dead WHERE device_id = %s ORDER BY day, reason",
        device,
    )
    # The schema violation still names its device time (the first day); the broken JSON has only its
    # receive day.
    assert [(d, n) for d, _, n in got] == [(D1, 1), (D2, 1)]
    assert got[1][1] == "malformed_json"

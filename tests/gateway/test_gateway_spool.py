"""Tests: the on-disk spool (torn tails, order) and exactly-once replay after a crash mid-replay."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import psycopg

from coldchain.settings import BrokerAddress
from gateway import store
from gateway.decode import decode
from gateway.models import RawMessage
from gateway.pipeline import GatewayService
from gateway.spool import Spool
from tests.gateway_support import assert_exactly_once, gateway_config

T0_MS = 1_767_225_600_000


def _msg(device: str, seq: int, n: int = 5) -> RawMessage:
    rs = [{"t": T0_MS + (seq + i) * 1000, "ch": "temp", "v": 1.5} for i in range(n)]
    doc = {"v": 1, "device": device, "boot": 1, "seq": seq, "readings": rs}
    return RawMessage(f"cc/v1/dev/{device}/telemetry", json.dumps(doc).encode(), T0_MS)


def test_spool_appends_reads_in_order_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "spool")
    sp.open()
    sp.append([_msg("d", 0), _msg("d", 5)])
    sp.append([_msg("d", 10)])
    sp.close_current()
    (seg,) = sp.segments()
    with seg.open("ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")  # a crash in the middle of the next append
    records = list(Spool.read(seg))
    assert [i for i, _ in records] == [0, 1]
    assert [len(r) for _, r in records] == [2, 1]
    assert records[1][1][0] == _msg("d", 10)
    reopened = Spool(tmp_path / "spool")
    reopened.open()
    assert reopened.pending()
    reopened.remove(seg)
    assert not reopened.pending()


def test_replay_after_crash_mid_replay_stores_nothing_twice(
    db_url: str, mqtt_broker: BrokerAddress, server_tmp: Path
) -> None:
    dev = f"sp-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'temp_logger')", (dev,))
    bad = RawMessage(f"cc/v1/dev/{dev}/telemetry", b"{broken", T0_MS)
    sp = Spool(server_tmp / "spool")
    sp.open()
    sp.append([_msg(dev, 0), bad])
    sp.append([_msg(dev, 5)])
    sp.close_current()
    (seg,) = sp.segments()
    # A previous gateway replayed record 0 and crashed before deleting the segment.
    first = next(iter(Spool.read(seg)))[1]
    with psycopg.connect(db_url) as conn:
        store.write(
            conn,
            [(r, decode(r.topic, r.payload, r.received_at_ms)) for r in first],
            {},
            spool_mark=(seg.name, 0),
        )
    svc = GatewayService(
        gateway_config(
            db_url, mqtt_broker, client_id=f"gw-{uuid.uuid4().hex[:8]}", shared_group=None,
            spool_dir=server_tmp / "spool",
        )
    )  # fmt: skip
    svc.start()
    try:
        deadline = time.monotonic() + 20
        while seg.exists():
            assert time.monotonic() < deadline, svc.stats()
            time.sleep(0.05)
        assert svc.stats()["replayed_messages"] == 1
    finally:
        svc.stop()
    # The bad message of record 0 is a dead letter once; each record is applied once (records = upto + 1);
    # device_seq.received counts each reading once.
    assert_exactly_once(db_url, {dev: 10})
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letter").fetchone() == (1,)
        assert conn.execute("SELECT upto, records FROM gateway_spool_applied").fetchall() == [(1, 2)]

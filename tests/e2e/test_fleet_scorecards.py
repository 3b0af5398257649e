"""Tests: the fleet simulation played through MQTT, the gateway and the rules on a stepped clock: what the
database holds is what the fault profiles injected, and the carrier scorecards equal the implied ratios."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime

import psycopg
from gateway_support import gateway_service, wait_for
from rules_support import drain

from coldchain.embedded import EmbeddedBroker
from coldchain.fleet import compare, period_of, required_interval_ms, seed_fleet
from firmware_sim.fleet import LATE_MS, MALFORMED, implied, plan_fleet, play_stepped, samples
from firmware_sim.fleet_world import CHANNELS, PRODUCT_CLASS, fleet
from gateway.pipeline import GatewayService
from rules.worker import RulesWorker
from traceability.worker import LedgerWorker

START_MS = int(datetime(2026, 10, 5, tzinfo=UTC).timestamp() * 1000)
FLEET = fleet()  # five carriers, one per profile, two trucks each, over a day (whole days: day counters)
SETTLE_TIMEOUT_S = 60.0
CATCH_UP_BATCHES = 1024


class SteppedClock:
    """The gateway's receive clock: the simulation's time, set by the player before each step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t_ms = START_MS

    def set(self, t_ms: int) -> None:
        with self._lock:
            self._t_ms = t_ms

    def now(self) -> int:
        with self._lock:
            return self._t_ms


def _settle(gateway: GatewayService, published: int) -> None:
    """Return once the gateway has received `published` messages and committed and acked them all."""
    wait_for(
        f"the gateway to receive {published} messages",
        lambda: gateway.stats()["messages"] >= published,
        poll_s=0.001,
    )
    assert gateway.wait_idle(SETTLE_TIMEOUT_S), f"the gateway did not commit {published} messages"


def test_fleet_through_mqtt_gateway_and_rules_matches_its_faults(
    db_url: str, private_broker: EmbeddedBroker
) -> None:
    with psycopg.connect(db_url) as conn:
        seed_fleet(conn, FLEET, START_MS)
        conn.commit()
    clock = SteppedClock()
    gateway = gateway_service(db_url, private_broker.address, clock=clock.now, max_wait_s=0.0)
    plan = plan_fleet(FLEET, START_MS)
    gateway.start()
    try:
        addr = private_broker.address
        sent = play_stepped(addr.host, addr.port, plan, at=clock.set, settle=lambda n: _settle(gateway, n))
    finally:
        gateway.stop()
    assert sent == len(plan)
    # The rules worker catches up on the whole day at once, as one does after a stop: every batch in a
    # few runs (at the default 32 batches a run, the 1 440 steps' batches take some 280 runs here).
    worker = RulesWorker(db_url, batch_limit=CATCH_UP_BATCHES)
    try:
        drain(worker)
        while worker.refresh_rollups():
            pass
    finally:
        worker.close()
    while LedgerWorker(db_url).run_once():
        pass

    carrier_of = {t.device_id: c.party_id for c in FLEET.carriers for t in c.trucks}
    want = implied(FLEET, START_MS, required_interval_ms=required_interval_ms(PRODUCT_CLASS))
    ch = len(CHANNELS)
    with psycopg.connect(db_url) as conn:
        # Sequence: the gateway counts exactly the lost and malformed samples' readings missing.
        seq: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for device, next_seq, missing in conn.execute("SELECT device_id, next_seq, missing FROM device_seq"):
            seq[carrier_of[device]][0] += missing
            seq[carrier_of[device]][1] += next_seq
        assert {c: tuple(v) for c, v in seq.items()} == {
            c: (w["sequence"].numerator, w["sequence"].denominator) for c, w in want.items()
        }
        # Conformance: one dead letter per malformed message, on its device's topic; nothing else refused.
        dead = dict(
            conn.execute("SELECT split_part(topic, '/', 4), count(*) FROM dead_letter GROUP BY 1").fetchall()
        )
        malformed = {d.device_id: int((d.fate == MALFORMED).sum()) for d in samples(FLEET, START_MS)}
        assert dead == {d: n for d, n in malformed.items() if n}
        # Timeliness: every reading received at its device time, or exactly LATE_MS after it.
        lags = dict(
            conn.execute(
                "SELECT (extract(epoch FROM received_at - time) * 1000)::bigint, count(*)"
                " FROM reading GROUP BY 1"
            ).fetchall()
        )
        late = sum(w["timeliness"].denominator - w["timeliness"].numerator for w in want.values())
        stored = sum(w["timeliness"].denominator for w in want.values())
        assert lags == {0: stored - late, LATE_MS: late}
        assert stored % ch == 0
        # Track matching: every trip enters its destination's fence within its window, but the off-track one.
        entered = {
            trip.shipment_id
            for trip in FLEET.trips
            if conn.execute(
                "SELECT 1 FROM geofence_crossing WHERE asset_id = %s AND location_id = %s"
                " AND direction = 'enter' AND crossed_at >= %s AND crossed_at < %s",
                (
                    trip.asset_id,
                    trip.to_location_id,
                    datetime.fromtimestamp((START_MS + trip.start_offset_ms) / 1000, tz=UTC),
                    datetime.fromtimestamp((START_MS + trip.end_offset_ms) / 1000, tz=UTC),
                ),
            ).fetchone()
        }
        assert entered == {t.shipment_id for t in FLEET.trips if not t.off_track}
        assert len(entered) == len(FLEET.trips) - 1

        # The scorecards: every carrier's card equals what its profile implies.
        from traceability.scorecards.compute import scoreboard
        from traceability.scorecards.period import Period

        start, end = period_of(FLEET, START_MS)
        board = scoreboard(conn, Period("fleet", start, end), "carrier")
    assert compare(board, want) == []

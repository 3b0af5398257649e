"""Tests: the port scenario played for real: reefers over MQTT into the gateway, the human steps through the
API's capture endpoint into the ledger, every stage running."""

from __future__ import annotations

from pathlib import Path

import psycopg
from process_support import DEMO_SPEEDUP

from coldchain.embedded import EmbeddedBroker
from coldchain.port_demo import handling_events, run_port_scenario, step_events
from firmware_sim.port_timeline import port_timeline
from firmware_sim.port_world import DURIAN_LOT, port_world

WORLD = port_world()
TIMELINE = port_timeline()


def test_port_scenario_devices_and_human_steps_reach_the_ledger(
    db_url: str, private_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    summary = run_port_scenario(
        db_url, private_broker.address, speedup=DEMO_SPEEDUP, checkpoint_key=tmp_path / "keys" / "ledger.pem"
    )
    sent = summary["sent"]
    start_ms = sent["start_ms"]

    # Devices: every reading published is stored once; nothing is refused.
    assert summary["readings"] == sent["readings_published"] > 10_000
    assert summary["dead_letters"] == 0
    assert list(sent["silent_devices"]) == ["cxru1524184-rc"]
    with psycopg.connect(db_url) as conn:
        received = conn.execute("SELECT sum(received), sum(missing) FROM device_seq").fetchone()
        assert received == (sent["readings_published"], 0)
        lat_lon = conn.execute(
            "SELECT count(DISTINCT s.device_id) FROM reading r JOIN series s USING (series_id)"
            " WHERE s.channel IN ('lat', 'lon')"
        ).fetchone()
        assert lat_lon == (len(TIMELINE.tracks),)
        # Human steps: each captured through the API once, as the port's systems recorded it.
        # In the order the systems recorded them: the port's steps and the units' handlings by time (a step
        # first at the same time), then what the destination recorded after the devices' window.
        recorded = sorted(
            [(s.t_offset_ms, 0, step_events(WORLD, s, start_ms)) for s in TIMELINE.steps]
            + [(h.t_offset_ms, 1, handling_events(WORLD, h, start_ms)) for h in TIMELINE.handlings],
            key=lambda r: (r[0], r[1]),
        )
        expected = [e["eventID"] for _, _, events in recorded for e in events]
        stored = [
            r[0]
            for r in conn.execute(
                "SELECT event_id FROM ledger_event WHERE event_id = ANY(%s) ORDER BY seq", (expected,)
            )
        ]
        assert stored == expected, "captured once each, in the order they happened"
        kinds = [
            r[0]
            for r in conn.execute(
                "SELECT coalesce(event->>'cc:inspection', event->>'cc:customsLine', biz_step)"
                " FROM ledger_event WHERE event_id = ANY(%s) ORDER BY seq",
                (expected,),
            )
        ]
    # One event per batch: the seafood's two batches leave on one truck; the durian's unit is packed and
    # stuffed (two events), then handed on four times.
    assert (
        summary["captured_events"] == len(expected) == len(TIMELINE.steps) + 1 + len(TIMELINE.handlings) + 1
    )
    assert kinds.count("inspection") == 2
    assert kinds.count("disinfection") == 1
    assert kinds.count("first") == 3
    assert kinds.count("second") == 4
    assert kinds.count("departing") == 5
    assert kinds.count("arriving") == 4  # three discharges and the train's arrival at the destination
    assert kinds.count("receiving") == 1

    # The summary: partial releases of the durian add up to its inspected quantity; the ledger verifies.
    assert summary["partial_releases"] == {
        DURIAN_LOT: {"inspected": 18_000.0, "released": [12_000.0, 6_000.0], "remaining": 0.0}
    }
    assert summary["trace_code"] == WORLD.trace_code
    assert summary["ledger_verified"] is True
    assert summary["checkpoint_seq"] == summary["ledger_events"]
    assert {lot: t["status"] for lot, t in summary["traces"].items()} == dict.fromkeys(
        (lot.lot_id for lot in WORLD.base.lots), 200
    )

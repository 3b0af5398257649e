"""Tests: the demo scenario end to end — devices, broker, gateway, rules, ledger and API, all real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from process_support import DEMO_SPEEDUP, servers_under

from coldchain.demo import run_scenario
from coldchain.embedded import EmbeddedBroker
from firmware_sim.world import demo_world

LOT = demo_world().lots[0].lot_id
TRUCK = "TRUCK-GXA-12345"
COLD_ROOM = "COLDROOM-QZ-B2"
HOUR_S = 3600


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_demo_scenario_end_to_end(db_url: str, private_broker: EmbeddedBroker, tmp_path: Path) -> None:
    summary = run_scenario(
        db_url, private_broker.address, speedup=DEMO_SPEEDUP, checkpoint_key=tmp_path / "keys" / "ledger.pem"
    )
    sent = summary["sent"]
    start_s = sent["start_ms"] / 1000

    # Gateway: every reading published is stored once; every malformed payload is a dead letter.
    assert summary["readings"] == sent["readings_published"] > 3000
    assert summary["rfid_reads"] == sent["rfid_reads"]
    assert summary["dead_letters"] == sent["malformed_sent"] == 4
    reasons = {"malformed_json", "schema", "device_mismatch", "unknown_device"}
    assert set(summary["dead_letter_reasons"]) == reasons

    with psycopg.connect(db_url) as conn:
        # Stored once and counted once: UNIQUE(series_id, time) alone would make a count of distinct keys
        # equal count(*) whatever happened, so the (boot, seq) accounting's received count is checked.
        received = conn.execute("SELECT sum(received) FROM device_seq").fetchone()
        assert received == (sent["readings_published"] + sent["rfid_reads"],)
        assert conn.execute("SELECT count(*) FROM ingest_batch").fetchone() == (0,), "outbox drained"
        assert conn.execute("SELECT count(*) FROM verdict_outbox").fetchone() == (0,), "outbox drained"
        excursions = conn.execute(
            "SELECT asset_id, product_class, extract(epoch FROM start_time),"
            " extract(epoch FROM end_time), peak_c FROM excursion ORDER BY start_time"
        ).fetchall()
        breaks = conn.execute(
            "SELECT kind, asset_id, extract(epoch FROM start_time), extract(epoch FROM end_time), allowed_s"
            " FROM chain_break ORDER BY start_time"
        ).fetchall()
        biz_steps = [r[0] for r in conn.execute("SELECT biz_step FROM ledger_event ORDER BY seq")]
        lot_verdicts = [
            r[0]
            for r in conn.execute(
                "SELECT event->>'cc:lotVerdict' FROM ledger_event WHERE biz_step = 'inspecting' ORDER BY seq"
            )
        ]

    # Rules: the door-open stop at S+3h is an excursion on the truck against the chilled class (0-4 °C);
    # the cold room never leaves its range.
    assert excursions, "the door left open makes an excursion"
    for asset_id, product_class, t0, t1, peak_c in excursions:
        assert (asset_id, product_class) == (TRUCK, "chilled")
        assert start_s + 3 * HOUR_S <= float(t0) < float(t1) <= start_s + 4 * HOUR_S
        assert peak_c > 4.0
    # The truck's 40-minute dropout from S+4h10 is longer than the 10-minute transport interval: a break.
    assert breaks, "the telemetry dropout is a chain break"
    for kind, asset_id, t0, t1, allowed_s in breaks:
        assert (kind, asset_id, allowed_s) == ("gap", TRUCK, 600)
        assert float(t0) <= start_s + 4 * HOUR_S + 10 * 60 < start_s + 4 * HOUR_S + 50 * 60 <= float(t1)

    # Ledger: custody events from the dock-door readers, sensor events from the verdicts, chain intact.
    assert summary["ledger_verified"] is True
    assert summary["checkpoint_seq"] == len(biz_steps), "the head is signed before verification"
    assert biz_steps[0] == "packing"
    assert {"storing", "shipping", "receiving"} <= set(biz_steps)
    assert biz_steps.count("sensor_reporting") == len(excursions) + len(breaks)
    # The lot's own verdict reaches the ledger too; its latest version says the chain broke.
    assert lot_verdicts, "lot verdicts are ledger events"
    assert lot_verdicts[-1] == "broken"

    # API: the trace of the lot shows the cold-store leg clean and the truck leg with excursion and break.
    assert summary["trace_status"] == 200
    trace: dict[str, Any] = summary["trace"]
    assert trace["lot_id"] == LOT
    assert trace["verdict"] == "broken"
    legs = {(leg["asset"] or {}).get("asset_id"): leg for leg in trace["custody"]}
    truck, room = legs[TRUCK], legs[COLD_ROOM]
    assert _ts(room["t_end"]) == _ts(truck["t_start"]) == pytest.approx(start_s + 2 * HOUR_S, abs=120)
    assert truck["temperature"]["readings"] > 0
    assert truck["temperature"]["max_c"] > 4.0
    assert truck["temperature"]["out_of_range_s"] > 600
    assert len(truck["excursions"]) == len(excursions)
    assert {b["kind"] for b in truck["chain_breaks"]} == {"gap"}
    assert room["excursions"] == []
    assert room["chain_breaks"] == []
    assert 0.0 <= room["temperature"]["min_c"] <= room["temperature"]["max_c"] <= 4.0


def _coldchain(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    env["COLDCHAIN_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_demo_then_trace_and_verify_on_the_same_data(server_tmp: Path) -> None:
    home = server_tmp / "home"
    demo = _coldchain(home, "demo", "--speedup", str(DEMO_SPEEDUP))
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    last = json.loads(demo.stdout.strip().splitlines()[-1])
    assert last["readings"] > 3000
    assert last["dead_letters"] >= 1
    assert last["excursions"] >= 1
    assert last["chain_breaks"] >= 1
    assert last["ledger_verified"] is True
    assert last["lots"] == 1
    assert last["checkpoint_seq"] == last["ledger_events"]
    assert last["trace_lot"] == LOT
    assert "== demo summary ==" in demo.stdout
    assert servers_under(home) == [], "the demo leaves no server behind"

    # A later command, a new process, the same embedded data directory: it sees the demo's data.
    trace = _coldchain(home, "trace", LOT, "--json")
    assert trace.returncode == 0, trace.stderr[-3000:]
    answer = json.loads(trace.stdout.strip().splitlines()[-1])
    truck_legs = [leg for leg in answer["custody"] if (leg["asset"] or {}).get("asset_id") == TRUCK]
    assert len(truck_legs) == 1
    assert truck_legs[0]["excursions"]

    verify = _coldchain(home, "ledger", "verify", "--json")
    assert verify.returncode == 0, verify.stderr[-3000:]
    verdict = json.loads(verify.stdout.strip().splitlines()[-1])
    assert {k: verdict[k] for k in ("ok", "events", "first_bad_seq", "signed_seq")} == {
        "ok": True,
        "events": last["ledger_events"],
        "first_bad_seq": None,
        "signed_seq": last["ledger_events"],
    }
    human = _coldchain(home, "trace", LOT)
    assert "EXCURSION" in human.stdout
    assert "CHAIN BREAK (gap)" in human.stdout
    assert _coldchain(home, "trace", "urn:epc:class:lgtin:0000000.000000.NOPE").returncode == 1
    assert servers_under(home) == []

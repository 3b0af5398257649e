"""Tests: the port scenario end to end through MQTT and the ledger: shipments in the trace with their legs,
geofence events exactly once, a release without inspection as a flow violation only the right keys see,
partial releases that add up, the trace code on the public scan page; and `coldchain demo --scenario port`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from process_support import DEMO_SPEEDUP, servers_under

from coldchain.embedded import EmbeddedBroker
from coldchain.port_calls import party_key
from coldchain.port_demo import run_port_scenario
from firmware_sim.devices import MINUTE_MS
from firmware_sim.port_timeline import port_timeline
from firmware_sim.port_world import (
    CQ_COLD_STORE,
    CUSTOMS,
    DURIAN_CONTAINER,
    DURIAN_LOT,
    NN_MARKET,
    QZ_COLD_STORE,
    QZ_RAIL,
    RAIL_CARRIER,
    ROAD_BEIBU,
    SEAFOOD_TRUCK,
    SHRIMP_LOT,
    SQUID_LOT,
    TH_SHIPMENT,
    VN_SHIPMENT,
    port_world,
)
from rules.engine import catalog
from rules.engine import flow as flow_rules
from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.epcis import multimodal
from traceability.worker import LedgerWorker

WORLD = port_world()
TIMELINE = port_timeline()
CROSSINGS = """
SELECT event->>'cc:asset', event->'readPoint'->>'id', event->>'cc:geofence', event->'bizTransactionList'
FROM ledger_event WHERE event ? 'cc:geofence' ORDER BY event_time, seq"""


@pytest.fixture
def played(db_url: str, private_broker: EmbeddedBroker, tmp_path: Path) -> dict[str, Any]:
    """The port scenario, played once through every stage on this test's database."""
    return run_port_scenario(
        db_url, private_broker.address, speedup=DEMO_SPEEDUP, checkpoint_key=tmp_path / "keys" / "ledger.pem"
    )


@pytest.fixture
def api(db_url: str, played: dict[str, Any]) -> Iterator[TestClient]:
    """The API over the played scenario's database (no key: each request brings its own)."""
    with TestClient(create_app(db_url), raise_server_exceptions=False) as client:
        yield client


def _keys(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        keys = {
            "inspector": create_key(conn, "inspector", "port inspector"),
            "customs": party_key(conn, "customs", CUSTOMS, "Qinzhou port customs"),
            # The rail operator carries the durian's train, nothing of the seafood shipment.
            "other_carrier": party_key(conn, "carrier", RAIL_CARRIER, "rail operator"),
            # The road carrier of the seafood shipment.
            "own_carrier": party_key(conn, "carrier", ROAD_BEIBU, "seafood road carrier"),
        }
        conn.commit()
    return keys


def _trace(api: TestClient, key: str, lot: str) -> Any:
    return api.get(f"/trace/{lot}", headers={"X-API-Key": key})


def test_port_scenario_done_when(db_url: str, played: dict[str, Any], api: TestClient) -> None:
    keys = _keys(db_url)
    assert played["ledger_verified"] is True

    # The two shipments are in the trace with their legs.
    legs_of = {s.shipment_id: [leg.mode for leg in s.legs] for s in WORLD.shipments}
    for lot, shipment in ((DURIAN_LOT, TH_SHIPMENT), (SHRIMP_LOT, VN_SHIPMENT), (SQUID_LOT, VN_SHIPMENT)):
        answer = _trace(api, keys["inspector"], lot)
        assert answer.status_code == 200, answer.text
        shipments = {s["shipment_id"]: s for s in answer.json()["shipments"]}
        assert set(shipments) == {shipment}
        assert [leg["mode"] for leg in shipments[shipment]["legs"]] == legs_of[shipment]
    assert [(s["shipment_id"], s["status"]) for s in played["shipments"]] == [
        (TH_SHIPMENT, 200),
        (VN_SHIPMENT, 200),
    ]
    assert all(s["legs"] == len(legs_of[s["shipment_id"]]) for s in played["shipments"])
    # The durian reached its destination (the Chongqing cold store recorded the train's arrival and received
    # the unit): delivered. The seafood truck's track ends outside the market's geofence: still in transit.
    assert {s["shipment_id"]: s["state"] for s in played["shipments"]} == {
        TH_SHIPMENT: "delivered",
        VN_SHIPMENT: "in_transit",
    }

    # The geofence events are in the ledger exactly once: the crossings the tracks make, in order, no more,
    # each naming the asset's shipment by its through document; running the stages again adds none.
    def crossings() -> list[tuple[str, str, str, Any]]:
        with psycopg.connect(db_url) as conn:
            return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in conn.execute(CROSSINGS)]

    seen = crossings()
    by_asset: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for asset, location, direction, _ in seen:
        by_asset[asset].append((location, direction))
    declared: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for c in TIMELINE.crossings:
        declared[c.asset_id].append((c.location_id, c.direction))
    assert by_asset == declared
    assert played["geofence_events"] == played["geofence_crossings"] == len(TIMELINE.crossings)
    through = {s.shipment_id: multimodal.document_uri("through", s.through_document) for s in WORLD.shipments}
    for asset, _, _, txns in seen:
        expected = (
            through[TH_SHIPMENT] if asset in ("CXRU1524184", "TRUCK-GXA-60317") else through[VN_SHIPMENT]
        )
        assert {"type": multimodal.BTT_THROUGH_DOCUMENT, "bizTransaction": expected} in txns
    RulesWorker(db_url).run_once()
    LedgerWorker(db_url).run_once()
    assert crossings() == seen

    # The release without inspection is a flow violation, visible to a customs key and invisible to another
    # carrier's key; the batches inspected before release have none.
    with psycopg.connect(db_url) as conn:
        flow = [r[0] for r in conn.execute("SELECT lot_id FROM chain_break WHERE kind = 'flow' ORDER BY 1")]
    assert SQUID_LOT in flow
    assert DURIAN_LOT not in flow
    assert SHRIMP_LOT not in flow
    assert played["flow_violations"] == len(flow)
    # Nothing encloses the squid at its release: the alarm goes on the asset of its shipment's leg then.
    with psycopg.connect(db_url) as conn:
        held = conn.execute(
            "SELECT asset_id FROM chain_break WHERE kind = 'flow' AND lot_id = %s", (SQUID_LOT,)
        ).fetchall()
        alarmed = conn.execute("SELECT asset_id, rule_id, state FROM alarm WHERE kind = 'flow'").fetchall()
    unchecked = catalog.flow_rule_id(flow_rules.RELEASE_WITHOUT_INSPECTION)
    assert held == [(SEAFOOD_TRUCK,)]
    assert alarmed == [(SEAFOOD_TRUCK, f"{unchecked}/{SQUID_LOT}", "open")]
    customs = _trace(api, keys["customs"], SQUID_LOT)
    assert customs.status_code == 200, customs.text
    assert "flow" in {b["kind"] for b in customs.json()["lot_chain_breaks"]}
    assert _trace(api, keys["own_carrier"], SQUID_LOT).status_code == 200
    hidden = _trace(api, keys["other_carrier"], SQUID_LOT)
    assert hidden.status_code == 404
    assert "lot_chain_breaks" not in hidden.text

    # The partial releases add up: two parts of the durian, together what was inspected, nothing left; the
    # time from discharge to the first release is kept.
    assert played["partial_releases"] == {
        DURIAN_LOT: {"inspected": 18_000.0, "released": [12_000.0, 6_000.0], "remaining": 0.0}
    }
    durian = _trace(api, keys["customs"], DURIAN_LOT)
    assert durian.status_code == 200
    flow_of = durian.json()["import_flow"]
    releases = [
        (r["quantity"], r["released_total"], r["inspected"], r["remaining"]) for r in flow_of["releases"]
    ]
    assert releases == [(12_000.0, 12_000.0, 18_000.0, 6_000.0), (6_000.0, 18_000.0, 18_000.0, 0.0)]
    assert flow_of["clearance_s"] == 250 * 60, "discharge at S+50 min, first release at S+300 min"

    # The trace code resolves on the public scan page (no key) to the lot it was issued for.
    assert flow_of["trace_code"] == played["trace_code"] == WORLD.trace_code
    assert played["trace_code_scan_status"] == 200
    scan = api.get(f"/scan/{WORLD.trace_code}")
    assert scan.status_code == 200
    assert WORLD.trace_code in scan.text
    assert "Fresh durian" in scan.text
    assert api.get("/scan/GX0000XX000000").status_code == 404

    _faults_show_where_an_inspector_looks(played, api, keys)


def _faults_show_where_an_inspector_looks(
    played: dict[str, Any], api: TestClient, keys: dict[str, str]
) -> None:
    """Each of the three faults, as the summary shows it and as an inspector finds it (played once)."""
    faults = played["faults"]
    silent_track = next(t for t in TIMELINE.tracks if t.silent_from_offset_ms is not None)
    start_ms = played["sent"]["start_ms"]

    # The container whose telemetry stops at the rail yard: its last reading is the minute before it fell
    # silent; the lot it carries onward has a chain break on the leg that began after that (the train, from
    # the rail yard), where no reading covers it.
    silent = faults["silent_container"]
    last = datetime.fromisoformat(silent["last_reading"])
    assert last == _at(start_ms + silent_track.silent_from_offset_ms - MINUTE_MS)
    assert (silent["asset"], silent["device"], silent["lot"]) == (
        DURIAN_CONTAINER,
        silent_track.device_id,
        DURIAN_LOT,
    )
    assert (silent["leg_location"], silent["chain_break_kind"]) == (QZ_RAIL, "handoff")
    departing, arriving = (
        next(h for h in TIMELINE.handlings if h.kind == kind) for kind in ("departing", "arriving")
    )
    assert datetime.fromisoformat(silent["leg_start"]) == _at(start_ms + departing.t_offset_ms)
    assert datetime.fromisoformat(silent["leg_end"]) == _at(start_ms + arriving.t_offset_ms)
    trace = _trace(api, keys["customs"], DURIAN_LOT).json()
    legs = [
        (leg["location"]["location_id"], leg["asset"]["asset_id"], leg["temperature"]["readings"], leg)
        for leg in trace["custody"]
    ]
    assert [(where, asset) for where, asset, _, _ in legs] == [
        (QZ_COLD_STORE, DURIAN_CONTAINER),
        (QZ_RAIL, DURIAN_CONTAINER),
        (CQ_COLD_STORE, DURIAN_CONTAINER),
        (CQ_COLD_STORE, DURIAN_CONTAINER),
    ]
    cold_store, rail = legs[0][3], legs[1][3]
    assert legs[0][2] > 0, "the leg from the cold store to the rail yard has the container's readings"
    assert datetime.fromisoformat(cold_store["temperature"]["last_reading"]) == last
    assert not cold_store["chain_breaks"]
    assert legs[1][2] == 0
    assert [b["kind"] for b in rail["chain_breaks"]] == ["handoff"]
    assert rail["custodian"]["party_id"] == RAIL_CARRIER
    # The rules stage judged the same leg: the lot is broken, and its first reason is that leg.
    assert trace["verdict"] == "broken"
    assert trace["verdict_reasons"][0] == catalog.leg_not_covered(
        catalog.leg_name(DURIAN_CONTAINER, datetime.fromisoformat(rail["t_start"]))
    )

    # The truck that ends its track outside its destination's geofence: no geofence event enters the
    # market, its shipment stays in transit while the durian's shows delivered.
    stranded = faults["track_outside_destination"]
    assert stranded == {
        "asset": SEAFOOD_TRUCK,
        "shipment": VN_SHIPMENT,
        "destination": NN_MARKET,
        "entered_destination": False,
        "state": "in_transit",
    }
    inspector = {"X-API-Key": keys["inspector"]}
    assert api.get(f"/shipments/{VN_SHIPMENT}", headers=inspector).json()["state"] == "in_transit"
    assert api.get(f"/shipments/{TH_SHIPMENT}", headers=inspector).json()["state"] == "delivered"

    # The release without inspection: a flow chain break on the squid lot.
    assert faults["release_without_inspection"] == {"lots": [SQUID_LOT], "chain_break_kind": "flow"}


def _at(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def test_cli_demo_scenario_port_ends_with_its_json_line(server_tmp: Path) -> None:
    home = server_tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    env["COLDCHAIN_HOME"] = str(home)
    demo = subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "demo", "--scenario", "port", "--speedup", str(DEMO_SPEEDUP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "== port demo summary ==" in demo.stdout
    last = json.loads(demo.stdout.strip().splitlines()[-1])
    assert {"shipments", "geofence_events", "flow_violations", "partial_releases", "trace_code"} <= set(last)
    assert [s["shipment_id"] for s in last["shipments"]] == [TH_SHIPMENT, VN_SHIPMENT]
    assert last["geofence_events"] == len(TIMELINE.crossings)
    assert last["flow_violations"] >= 1
    assert last["partial_releases"][DURIAN_LOT]["remaining"] == 0
    assert last["trace_code"] == WORLD.trace_code
    # Each fault, as the JSON line shows it.
    assert [s["state"] for s in last["shipments"]] == ["delivered", "in_transit"]
    faults = last["faults"]
    assert faults["silent_container"]["asset"] == DURIAN_CONTAINER
    assert faults["silent_container"]["last_reading"] is not None
    assert faults["silent_container"]["chain_break_kind"] == "handoff"
    assert faults["track_outside_destination"]["asset"] == SEAFOOD_TRUCK
    assert faults["track_outside_destination"]["shipment"] == VN_SHIPMENT
    assert faults["track_outside_destination"]["state"] == "in_transit"
    assert faults["release_without_inspection"]["lots"] == [SQUID_LOT]
    assert last["ledger_verified"] is True
    assert last["checkpoint_seq"] == last["ledger_events"]
    assert servers_under(home) == [], "the demo leaves no server behind"
    refused = subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "demo", "--scenario", "harbour"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "unknown scenario 'harbour'" in refused.stderr

"""Tests: a multi-temperature truck on a real PostgreSQL: each compartment's leg shows its own probe as
evidence, the truck's leg none of them, and the trace, its readings endpoint, the dashboards' series view
and the rules stage agree on which series are whose (the registry's asset_evidence_series)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.epcis import builders, multimodal
from traceability.ledger import chain
from traceability.trace import HANDOFF_RULE, trace_lot
from traceability.trace_model import CustodyLeg

S = datetime(2026, 3, 1, tzinfo=UTC)
DEPOT, MARKET = "urn:epc:id:sgln:6901234.00050.0", "urn:epc:id:sgln:6901234.00060.0"
CARRIER, BUYER = "6901234100044", "6901234100051"
TRUCK, FROZEN, CHILLED = "TRUCK-MT-1", "TRUCK-MT-1-FRZ", "TRUCK-MT-1-CHL"
EPC = {a: f"urn:epc:id:giai:6901234.{a}" for a in (TRUCK, FROZEN, CHILLED)}
# A lot in each compartment, and one on the truck's own deck (judged by the truck's own probe).
LOTS = {
    FROZEN: ("urn:epc:class:lgtin:6901234.012345.MTF1", "urn:epc:id:sscc:6901234.0000000101", "frozen"),
    CHILLED: ("urn:epc:class:lgtin:6901234.012345.MTC1", "urn:epc:id:sscc:6901234.0000000102", "pharma_2_8"),
    TRUCK: ("urn:epc:class:lgtin:6901234.012345.MTT1", "urn:epc:id:sscc:6901234.0000000103", "pharma_cold"),
}
# The truck's reefer controller: the frozen compartment's probe, the chilled one's, the truck's own air.
PROBES = {"temp:1": -20.0, "temp:2": 4.0, "temp": 6.0}
EVERY_MIN = 2
LOADED_H, UNLOADED_H = 1.0, 5.0


def h(hours: float) -> datetime:
    return S + timedelta(hours=hours)


def build(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The truck, its two compartments, the controller's probes every 2 min from S to S+6h, and the
    three pallets loaded at the depot at S+1h and received at the market at S+5h. Returns series ids."""
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES (%s, 'Reefer carrier', 'carrier'),"
        " (%s, 'Market buyer', 'receiver')",
        (CARRIER, BUYER),
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind) VALUES (%s, 'Depot', 'cold_store'),"
        " (%s, 'Market', 'market')",
        (DEPOT, MARKET),
    )
    conn.execute(
        "INSERT INTO asset (asset_id, epc, kind, name, mode)"
        " VALUES (%s, %s, 'reefer_truck', 'Truck', 'transport')",
        (TRUCK, EPC[TRUCK]),
    )
    for asset, probe in ((FROZEN, "temp:1"), (CHILLED, "temp:2")):
        conn.execute(
            "INSERT INTO asset (asset_id, epc, kind, name, parent_asset_id, probe, product_class)"
            " VALUES (%s, %s, 'truck_compartment', %s, %s, %s, %s)",
            (asset, EPC[asset], asset, TRUCK, probe, LOTS[asset][2]),
        )
    conn.execute(
        "INSERT INTO device (device_id, kind, accuracy_c) VALUES ('mt-rc', 'reefer_controller', 0.5)"
    )
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES ('mt-rc', %s, %s)", (TRUCK, h(-1))
    )
    series: dict[str, int] = {}
    for channel in (*PROBES, "door"):
        row = conn.execute(
            "INSERT INTO series (device_id, channel) VALUES ('mt-rc', %s) RETURNING series_id", (channel,)
        ).fetchone()
        assert row is not None
        series[channel] = int(row[0])
    rows = []
    for m in range(0, 6 * 60 + 1, EVERY_MIN):
        t = h(m / 60)
        rows.extend((t, series[c], v, t) for c, v in PROBES.items())
        rows.append((t, series["door"], 0.0, t))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)", rows
        )
    for lot, _, product_class in LOTS.values():
        conn.execute(
            "INSERT INTO lot (lot_id, product_class, description) VALUES (%s, %s, 'compartment test')",
            (lot, product_class),
        )
    road = multimodal.conveyance("road", truck_plate="桂A54321")
    events: list[builders.Event] = []
    for asset, (lot, sscc, _) in LOTS.items():
        events.append(
            builders.with_event_id(
                builders.aggregation_event(
                    event_time=h(-0.5),
                    action="ADD",
                    parent_id=sscc,
                    child_quantities=[builders.quantity(lot, 100, "KGM")],
                    biz_step="packing",
                )
            )
        )
        events.append(
            builders.with_event_id(
                builders.aggregation_event(
                    event_time=h(LOADED_H - 0.25),
                    action="ADD",
                    parent_id=EPC[asset],
                    child_epcs=[sscc],
                    biz_step="loading",
                )
            )
        )
    ssccs = [sscc for _, sscc, _ in LOTS.values()]
    events.append(
        multimodal.movement(
            t=h(LOADED_H),
            step="departing",
            epcs=ssccs,
            location=DEPOT,
            conveyance_ext=road,
            custodian=CARRIER,
        )
    )
    for asset, (_, sscc, _) in LOTS.items():
        events.append(
            builders.with_event_id(
                builders.aggregation_event(
                    event_time=h(UNLOADED_H),
                    action="DELETE",
                    parent_id=EPC[asset],
                    child_epcs=[sscc],
                    biz_step="unloading",
                )
            )
        )
    events.append(
        multimodal.movement(
            t=h(UNLOADED_H),
            step="receiving",
            epcs=ssccs,
            location=MARKET,
            conveyance_ext=road,
            custodian=BUYER,
        )
    )
    chain.append_many(conn, events)
    conn.commit()
    return series


@pytest.fixture
def world(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        series = build(conn)
    worker = RulesWorker(db_url)
    try:
        worker.run_once()  # the rules stage judges the lots the ledger put in custody
    finally:
        worker.close()
    return series


@pytest.fixture
def client(db_url: str, world: dict[str, int]) -> Iterator[TestClient]:
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "inspector", "test-inspector")
    with TestClient(create_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key}) as c:
        yield c


def _asset_leg(db_url: str, asset: str) -> CustodyLeg:
    """The custody leg of the pallet loaded on ``asset``, in its lot's trace."""
    with psycopg.connect(db_url) as conn:
        found = trace_lot(conn, LOTS[asset][0])
    assert found is not None
    legs = [leg for leg in found.custody if leg.asset is not None and leg.asset.asset_id == asset]
    assert len(legs) == 1, [(leg.asset, leg.t_start) for leg in found.custody]
    return legs[0]


# Readings of one probe inside a closed leg [S+1h, S+5h): one every EVERY_MIN minutes.
PER_LEG = int((UNLOADED_H - LOADED_H) * 60 / EVERY_MIN)


@pytest.mark.parametrize(("asset", "probe"), [(FROZEN, "temp:1"), (CHILLED, "temp:2"), (TRUCK, "temp")])
def test_each_legs_evidence_is_its_assets_own_probe(
    db_url: str, world: dict[str, int], asset: str, probe: str
) -> None:
    leg = _asset_leg(db_url, asset)
    assert (leg.t_start, leg.t_end) == (h(LOADED_H), h(UNLOADED_H))
    summary = leg.temperature
    assert (summary.readings, summary.series) == (PER_LEG, 1)
    assert summary.min_c == summary.max_c == summary.mean_c == PROBES[probe]
    assert summary.mkt_c == pytest.approx(PROBES[probe], abs=0.01)
    assert (summary.first_reading, summary.last_reading) == (h(LOADED_H), h(UNLOADED_H - EVERY_MIN / 60))
    assert [b.rule_id for b in leg.chain_breaks if b.rule_id == HANDOFF_RULE] == []


def test_the_rules_stage_judged_each_leg_on_the_same_probe(db_url: str, world: dict[str, int]) -> None:
    probe_of = {FROZEN: "temp:1", CHILLED: "temp:2", TRUCK: "temp"}
    with psycopg.connect(db_url) as conn:
        for asset, (lot, _, _) in LOTS.items():
            row = conn.execute(
                "SELECT items FROM verdict_history WHERE subject_kind = 'lot' AND subject_id = %s"
                " ORDER BY version DESC LIMIT 1",
                (lot,),
            ).fetchone()
            assert row is not None, asset
            judged = [(i.get("series_id"), i["verdict"]) for i in row[0] if i["asset_id"] == asset]
            # The leg is covered by the probe the trace shows (the market leg after it, on no asset, is not).
            assert judged == [(world[probe_of[asset]], "pass")], (asset, row[0])


def test_the_readings_endpoint_and_the_series_view_agree_with_the_trace(
    db_url: str, world: dict[str, int], client: TestClient
) -> None:
    with psycopg.connect(db_url) as conn:
        viewed = {
            asset: sorted(
                (channel, is_temp)
                for channel, is_temp in conn.execute(
                    "SELECT channel, is_temp FROM v_series_mount WHERE asset_id = %s", (asset,)
                ).fetchall()
            )
            for asset in LOTS
        }
        # A compartment's probe holds through the vehicle's mount of its device.
        mounted = conn.execute(
            "SELECT series_id, valid_from, valid_to = 'infinity' FROM v_series_mount WHERE asset_id = %s",
            (FROZEN,),
        ).fetchall()
    assert viewed == {
        FROZEN: [("temp:1", True)],
        CHILLED: [("temp:2", True)],
        TRUCK: [("door", False), ("temp", True)],  # its compartments' probes are theirs, not the truck's
    }
    assert mounted == [(world["temp:1"], h(-1), True)]
    for asset, (lot, _, _) in LOTS.items():
        legs = {leg["leg_id"]: leg for leg in client.get(f"/trace/{lot}").json()["custody"]}
        response = client.get(f"/trace/{lot}/readings")
        assert response.status_code == 200, response.text
        charts = [c for c in response.json() if (legs[c["leg_id"]]["asset"] or {}).get("asset_id") == asset]
        assert len(charts) == 1
        temperature = charts[0]["readings"]["temperature"]
        assert [(s["series_id"], s["channel"], s["readings"]) for s in temperature] == [
            (world[channel], channel, PER_LEG) for channel, is_temp in viewed[asset] if is_temp
        ]
        assert {p["v"] for s in temperature for p in s["points"]} == {
            PROBES[channel] for channel, is_temp in viewed[asset] if is_temp
        }
        assert sum(s["readings"] for s in temperature) == legs[charts[0]["leg_id"]]["temperature"]["readings"]

"""Tests: the sea–rail–road chain (ISO 6346 container, B/L + rail waybill + through document, bonded status,
inspection, gates) traced by lot, container number, waybill and SSCC, with per-leg evidence and lineage."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from coldchain.report import format_trace
from rules.packs import load_packs
from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.epcis import builders, multimodal
from traceability.ledger import chain
from traceability.trace import trace
from traceability.trace_model import Trace, from_json, to_json

S = datetime(2026, 3, 1, tzinfo=UTC)
LOT = "urn:epc:class:lgtin:8850000.012345.TH0301"
OUT_LOT = "urn:epc:class:lgtin:6901234.054321.QZCUT1"
SSCC = "urn:epc:id:sscc:8850000.0000000009"
CONTAINER = "CSQU3054383"
PORT, RAIL, BONDED_GATE, BONDED_STORE, MARKET = (
    "urn:epc:id:sgln:6901234.00010.0",
    "urn:epc:id:sgln:6901234.00020.0",
    "urn:epc:id:sgln:6901234.00030.0",
    "urn:epc:id:sgln:6901234.00031.0",
    "urn:epc:id:sgln:6901234.00040.0",
)
LINE, RAILCO, STORE, BUYER = "6901234100006", "6901234100013", "6901234100020", "6901234100037"


def h(hours: float) -> datetime:
    return S + timedelta(hours=hours)


def build(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES (%s, 'Ocean line', 'carrier'),"
        " (%s, 'Sea-rail operator', 'carrier'), (%s, 'Bonded cold store', 'cold_store'),"
        " (%s, 'Nanning buyer', 'receiver')",
        (LINE, RAILCO, STORE, BUYER),
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind) VALUES (%s, 'Qinzhou port terminal', 'port'),"
        " (%s, 'Qinzhou rail container station', 'rail_station'), (%s, 'Bonded zone gate', 'bonded_zone'),"
        " (%s, 'Bonded cold store', 'cold_store'), (%s, 'Nanning market', 'market')",
        (PORT, RAIL, BONDED_GATE, BONDED_STORE, MARKET),
    )
    conn.execute(
        "INSERT INTO asset (asset_id, epc, kind, name, mode) VALUES"
        " ('CONT-CSQU3054383', %s, 'reefer_container', 'Reefer CSQU3054383', 'transport')",
        (multimodal.container_epc(CONTAINER),),
    )
    conn.execute(
        "INSERT INTO lot (lot_id, gtin, batch, product_class, origin_country, hs_code, bonded_status)"
        " VALUES (%s, '08850000123456', 'TH0301', 'chilled', 'TH', '030636', 'bonded')",
        (LOT,),
    )
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('csqu-rc', 'reefer_controller')")
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from)"
        " VALUES ('csqu-rc', 'CONT-CSQU3054383', %s)",
        (h(-10),),
    )
    series = conn.execute(
        "INSERT INTO series (device_id, channel) VALUES ('csqu-rc', 'temp') RETURNING series_id"
    ).fetchone()
    assert series is not None
    # Container telemetry every 5 min from h(0) to h(30): 2 °C, with 9 °C for 30 min at h(10).
    rows = []
    for i in range(0, 30 * 12):
        t = h(i / 12)
        rows.append((t, series[0], 9.0 if 10 <= i / 12 < 10.5 else 2.0, t))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)", rows
        )
    conn.execute(
        "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,"
        " storage_max_gap_s, transport_max_gap_s) VALUES ('chilled', 'cn_food', '1', 'chilled', 0, 4, 'test',"
        " 1800, 600)"
    )
    docs = multimodal.biz_transactions(bill_of_lading="BL-LCB-778", through_document="TD-2026-1")
    rail_docs = multimodal.biz_transactions(rail_waybill="WB-QZ-0042", through_document="TD-2026-1")
    sea = multimodal.conveyance("sea", vessel="IMO9876543", voyage="V031")
    train = multimodal.conveyance("rail", train="X9101")
    truck = multimodal.conveyance("road", truck_plate="桂A12345")
    events = [
        builders.with_event_id(
            builders.aggregation_event(
                event_time=h(-2),
                action="ADD",
                parent_id=SSCC,
                child_quantities=[builders.quantity(LOT, 800, "KGM")],
                biz_step="packing",
            )
        ),
        multimodal.stuffing(t=h(-1), container=CONTAINER, units=[SSCC], location=PORT, transactions=docs),
        multimodal.movement(
            t=h(0),
            step="departing",
            epcs=[SSCC],
            location=PORT,
            conveyance_ext=sea,
            custodian=LINE,
            transactions=docs,
        ),
        multimodal.movement(
            t=h(8),
            step="arriving",
            epcs=[SSCC],
            location=PORT,
            conveyance_ext=sea,
            custodian=LINE,
            gate="port_terminal",
        ),
        multimodal.inspection(t=h(9), epcs=[SSCC], lots=[LOT], location=PORT),
        multimodal.inspection(t=h(9.5), epcs=[SSCC], location=PORT, kind="disinfection"),
        multimodal.bonded(t=h(11), lots=[LOT], status="bonded", line="first", location=BONDED_GATE),
        multimodal.movement(
            t=h(12),
            step="departing",
            epcs=[SSCC],
            location=RAIL,
            conveyance_ext=train,
            custodian=RAILCO,
            transactions=rail_docs,
            gate="rail_station",
        ),
        multimodal.unstuffing(t=h(20), container=CONTAINER, units=[SSCC], location=BONDED_STORE),
        multimodal.movement(
            t=h(20),
            step="receiving",
            epcs=[SSCC],
            location=BONDED_STORE,
            conveyance_ext=train,
            custodian=STORE,
        ),
        multimodal.bonded(t=h(40), lots=[LOT], status="released", line="second", location=BONDED_GATE),
        multimodal.gate_event(
            t=h(41), gate="bonded_zone", direction="out", epcs=[SSCC], location=BONDED_GATE, custodian=BUYER
        ),
        multimodal.movement(
            t=h(44), step="receiving", epcs=[SSCC], location=MARKET, conveyance_ext=truck, custodian=BUYER
        ),
        builders.with_event_id(
            {
                **builders.object_event(event_time=h(50), epcs=None, biz_step="commissioning"),
                "type": "TransformationEvent",
                "inputQuantityList": [builders.quantity(LOT, 100, "KGM")],
                "outputQuantityList": [builders.quantity(OUT_LOT, 90, "KGM")],
            }
        ),
    ]
    for e in events:
        e.pop("action", None) if e["type"] == "TransformationEvent" else None
    chain.append_many(conn, events)
    conn.commit()


@pytest.fixture
def chain_db(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        build(conn)
    RulesWorker(db_url).run_once()  # the rules stage judges the lot the ledger put in custody
    return db_url


def test_container_numbers_are_check_digit_validated() -> None:
    assert multimodal.container_epc("csqu 305438 3") == "urn:epc:id:bic:CSQU3054383"
    with pytest.raises(ValueError, match="ISO 6346"):
        multimodal.container_number("CSQU3054384")
    with pytest.raises(ValueError, match="gate"):
        multimodal.gate_event(t=S, gate="airport", direction="in", epcs=[SSCC], location=PORT)


def test_trace_of_lot_through_sea_rail_road(chain_db: str) -> None:
    with psycopg.connect(chain_db) as conn:
        found = trace(conn, LOT)
    assert found is not None
    result = to_json(found)
    assert from_json(result) == found  # the JSON (as the API serves it) reads back as the same Trace
    report = format_trace(found)
    assert "  verdict: BROKEN" in report
    assert "Ocean line; Qinzhou port terminal; Reefer CSQU3054383" in report
    assert "CHAIN BREAK (handoff) 2026-03-01 20:00 → 2026-03-02 17:00, allowed 0 s" in report
    assert result["query"] == {"id": LOT, "kind": "lot", "lots": [LOT]}
    legs = result["custody"]
    assert [(leg["custodian"] or {}).get("party_id") for leg in legs] == [LINE, RAILCO, STORE, BUYER, BUYER]
    sea, rail = legs[0], legs[1]
    assert sea["asset"]["asset_id"] == rail["asset"]["asset_id"] == "CONT-CSQU3054383"
    assert sea["temperature"]["readings"] > 0
    assert sea["temperature"]["max_c"] == 9.0
    assert 2.0 < sea["temperature"]["mkt_c"] < 9.0
    assert sea["temperature"]["max_gap_s"] == 300.0
    assert sea["temperature"]["out_of_range_s"] == pytest.approx(1800, abs=1)
    # The bonded cold store leg has no asset and no readings, and was handed on: a handoff break.
    store = next(leg for leg in legs if (leg["custodian"] or {}).get("party_id") == STORE)
    assert store["temperature"]["readings"] == 0
    assert [b["kind"] for b in store["chain_breaks"]] == ["handoff"]
    assert result["verdict"] == "broken"
    assert [(b["status"], b["line"]) for b in result["bonded"]] == [
        ("bonded", "first"),
        ("released", "second"),
    ]
    assert result["lot"]["bonded_status"] == "released"
    assert result["backward"]["origin"]["country"] == "TH"
    assert result["backward"]["origin"]["first_event"]["biz_step"] == "packing"
    assert [o["id"] for o in result["forward"]["outputs"]] == [OUT_LOT]
    assert {r["party_id"] for r in result["forward"]["recipients"]} >= {LINE, RAILCO, STORE, BUYER}
    modes = {s["transport_mode"] for s in result["forward"]["shipments"]}
    assert {"sea", "rail", "road"} <= modes
    steps = [e["biz_step"] for e in result["events"]]
    assert "inspecting" in steps
    assert "entering_exiting" in steps


def test_trace_by_container_waybill_bl_sscc_and_output(chain_db: str) -> None:
    with psycopg.connect(chain_db) as conn:
        for ident, kind in (
            (CONTAINER, "container"),
            ("urn:epc:id:bic:CSQU3054383", "container"),
            ("WB-QZ-0042", "document"),  # the rail waybill, linked to the B/L by the through document
            ("BL-LCB-778", "document"),
            (SSCC, "epc"),
            ("TH0301", "lot"),
        ):
            result = trace(conn, ident)
            assert result is not None, ident
            assert result.query is not None, ident
            assert result.query.kind == kind, ident
            assert result.lot_id == LOT, ident
        downstream = trace(conn, OUT_LOT)
        assert isinstance(downstream, Trace)
        assert downstream.backward is not None
        assert [i.id for i in downstream.backward.inputs] == [LOT]
        assert trace(conn, "NOPE-123") is None


def test_api_trace_is_audited_and_role_checked(chain_db: str) -> None:
    with psycopg.connect(chain_db) as conn:
        inspector = create_key(conn, "inspector", "customs officer")
        operator = create_key(conn, "operator", "night shift")
        conn.commit()
    with TestClient(create_app(chain_db), raise_server_exceptions=False) as client:
        assert client.get("/health").status_code == 200  # open
        assert client.get(f"/trace/{CONTAINER}").status_code == 401
        assert client.get(f"/trace/{CONTAINER}", headers={"X-API-Key": "cck_wrong"}).status_code == 401
        ok = client.get(f"/trace/{CONTAINER}", headers={"X-API-Key": inspector})
        assert ok.status_code == 200
        assert ok.json()["query"]["kind"] == "container"
        assert (
            client.get(
                "/epcis/events", headers={"X-API-Key": inspector}, params={"EQ_bizStep": "inspecting"}
            ).status_code
            == 200
        )
        assert (
            client.post("/alarms/1/ack", json={"note": "x"}, headers={"X-API-Key": inspector}).status_code
            == 403
        )
        assert client.get("/trace/x", headers={"X-API-Key": operator}).status_code == 404
    with psycopg.connect(chain_db) as conn:
        rows = conn.execute(
            "SELECT role, method, path, query, status FROM audit_log ORDER BY audit_id"
        ).fetchall()
    assert ("inspector", "GET", f"/trace/{CONTAINER}", "", 200) in rows
    assert ("inspector", "GET", "/epcis/events", "EQ_bizStep=inspecting", 200) in rows
    assert ("inspector", "POST", "/alarms/1/ack", "", 403) in rows


def _mkt_c(terms: list[tuple[float, float]]) -> float:
    """MKT of (weight, °C) pairs, ΔH/R = 10 000 K (the oracle: the textbook formula, weighted)."""
    total = sum(w for w, _ in terms)
    mean = sum(w * math.exp(-10_000 / (c + 273.15)) for w, c in terms) / total
    return 10_000 / -math.log(mean) - 273.15


def test_a_legs_mkt_weighs_each_reading_by_the_time_it_holds(chain_db: str) -> None:
    """A burst of 60 readings a second apart at 25 °C is one minute of the leg, not 60 readings' worth;
    a reading before a gap holds no longer than the allowed recording interval."""
    with psycopg.connect(chain_db) as conn:
        sid = conn.execute("SELECT series_id FROM series WHERE device_id = 'csqu-rc'").fetchone()
        assert sid is not None
        burst = [(h(5) + timedelta(seconds=1 + i), sid[0], 25.0, h(5)) for i in range(60)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)", burst
            )
        conn.execute(  # and a 2-hour hole
            "DELETE FROM reading WHERE series_id = %s AND time > %s AND time < %s", (sid[0], h(20), h(22))
        )
        conn.commit()
        found = trace(conn, LOT)
        assert found is not None
        sea = found.custody[0]
        assert sea.asset is not None
        rows = conn.execute(
            "SELECT time, value FROM reading WHERE series_id = %s AND time >= %s AND time < %s ORDER BY time",
            (sid[0], sea.t_start, sea.t_end),
        ).fetchall()
    allowed = sea.temperature.allowed_gap_s
    # The container's leg is at sea: the class's sea interval, as the rules stage published it from the pack.
    chilled = load_packs().packs["cn_food"].classes["chilled"]
    assert allowed == chilled.max_interval.limit("sea").seconds
    assert allowed != chilled.max_interval.transport.seconds
    held = [(min((b[0] - a[0]).total_seconds(), allowed), a[1]) for a, b in itertools.pairwise(rows)]
    assert sea.temperature.mkt_c == pytest.approx(_mkt_c(held), abs=1e-3)
    assert abs(_mkt_c([(1, c) for _, c in rows]) - _mkt_c(held)) > 0.5  # unweighted would differ


def test_an_excursions_mkt_is_over_the_classs_window_ending_at_its_end(chain_db: str) -> None:
    """A class with an MKT rule (here one hour): each excursion states its series' MKT over the hour up to
    its end, weighted as a leg's; without the rule it states none."""
    with psycopg.connect(chain_db) as conn:
        conn.execute(  # the container's 30 min at 9 °C, as the rules stage records an excursion
            "INSERT INTO excursion (series_id, asset_id, product_class, rule_id, pack_version, start_time,"
            " end_time, open, peak_c, limit_low_c, limit_high_c, readings)"
            " SELECT series_id, 'CONT-CSQU3054383', 'chilled', 'cn_food/chilled/range', '1', %s, %s, false,"
            " 9, 0, 4, 6 FROM series WHERE device_id = 'csqu-rc'",
            (h(10), h(10.5)),
        )
        found = trace(conn, LOT)
        assert found is not None
        assert found.limits is not None
        assert found.limits.mkt_window_s is None
        excursion = found.custody[0].excursions[0]
        assert excursion.mkt_c is None
        conn.execute(
            "UPDATE rule_class SET mkt_limit_c = 8, mkt_window_s = 3600, mkt_dh_r_k = 10000"
            " WHERE product_class = 'chilled'"
        )
        found = trace(conn, LOT)
        assert found is not None
        excursion = found.custody[0].excursions[0]
        rows = conn.execute(
            "SELECT time, value FROM reading WHERE series_id = %s AND time > %s AND time <= %s ORDER BY time",
            (excursion.series_id, excursion.end_time - timedelta(hours=1), excursion.end_time),
        ).fetchall()
    assert found.limits is not None
    assert found.limits.mkt_limit_c == 8
    held = [(min((b[0] - a[0]).total_seconds(), 600), a[1]) for a, b in itertools.pairwise(rows)]
    assert excursion.mkt_c == pytest.approx(_mkt_c(held), abs=1e-3)
    assert excursion.mkt_c != pytest.approx(found.custody[0].temperature.mkt_c, abs=0.1)

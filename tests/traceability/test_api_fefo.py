"""Tests: a lot's shelf life from its inherited history, in the trace and in a location's FEFO list, through
the API over a real PostgreSQL (the ledger and rules workers run on the demo scenario)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from trace_support import LOT, NN_DOCK1, NN_MARKET, QZ_STORE, S, build_scenario, h

from rules.packs import load_packs
from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.epcis import builders
from traceability.ledger import chain
from traceability.worker import LedgerWorker

FRESH = "urn:epc:class:lgtin:6901234.012345.QZ2611B"  # chilled, arrived with no evidence yet
DRUG = "urn:epc:class:lgtin:6901234.054321.PH01"  # a class without a shelf-life model


def _arrive(conn: psycopg.Connection[object], lot: str, product_class: str, pallet: str) -> None:
    """The lot packed on its own pallet, the pallet received at the Nanning market at 7 h."""
    conn.execute(
        "INSERT INTO lot (lot_id, product_class, description) VALUES (%s, %s, 'test lot')",
        (lot, product_class),
    )
    chain.append(
        conn,
        builders.aggregation_event(
            event_time=h(6.5),
            action="ADD",
            parent_id=pallet,
            child_quantities=[builders.quantity(lot, 10, "KGM")],
            biz_step="packing",
            read_point=NN_DOCK1,
        ),
    )
    chain.append(
        conn,
        builders.object_event(
            event_time=h(7),
            epcs=[pallet],
            action="OBSERVE",
            biz_step="receiving",
            read_point=NN_DOCK1,
            biz_location=NN_MARKET,
        ),
    )


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    build_scenario(db_url)
    with psycopg.connect(db_url) as conn:
        _arrive(conn, FRESH, "chilled", "urn:epc:id:sscc:6901234.0000000002")
        _arrive(conn, DRUG, "pharma_2_8", "urn:epc:id:sscc:6901234.0000000003")
        key = create_key(conn, "inspector", "test-inspector")
        capture = create_key(conn, "capture", "test-capture")
        conn.commit()
    while LedgerWorker(db_url).run_once():
        pass
    RulesWorker(db_url).run_once()  # judges the lots the ledger put in custody, and their shelf life
    with TestClient(create_app(db_url), raise_server_exceptions=False, headers={"X-API-Key": key}) as test:
        test.headers["X-Capture-Key"] = capture
        yield test


def _expected_used() -> tuple[float, float]:
    """The demo lot's used fraction by hand, from the scenario's readings (tests/trace_support.py) and the
    chilled class's model. Each reading holds until its series' next one, at most 30 min in the cold room
    and 10 min in the truck; the last reading of a series in a leg holds nothing; the warmer probe counts.
    Cold room [0 h, 2 h): 2 °C every 10 min, 11 × 600 s. Truck [2 h, 6 h): probe 1 is the warmer; readings
    every 10 min from 120 to 240 min (8.5 °C at 180..210) hold 600 s each, 240 holds 600 s of its 60 min
    silence, 300..340 hold 600 s each, 350 holds nothing."""
    model = load_packs()["chilled"].rules.shelf_life
    assert model is not None
    if model.model == "sqrt":
        assert model.t_min_c is not None
        t_min = model.t_min_c

        def rate(x: float) -> float:
            return 0.0 if x <= t_min else ((x - t_min) / (model.ref_c - t_min)) ** 2
    else:
        assert model.ea_kj_mol is not None
        ea = model.ea_kj_mol

        def rate(x: float) -> float:
            return math.exp(ea / 0.008314462618 * (1 / (model.ref_c + 273.15) - 1 / (x + 273.15)))

    held = [(6600.0, 2.0), (2400.0, 8.5), (9 * 600.0 + 5 * 600.0, 3.0)]
    used = sum(dt * rate(x) for dt, x in held) / (model.ref_life_h * 3600)
    return used, model.ref_life_h


def test_the_trace_shows_the_lots_shelf_life_from_its_inherited_history(client: TestClient) -> None:
    body = client.get(f"/trace/{LOT}").json()
    sl = body["shelf_life"]
    used, ref_life_h = _expected_used()
    assert sl["used"] == pytest.approx(used, rel=1e-9)
    assert sl["remaining_h"] == pytest.approx((1 - used) * ref_life_h, rel=1e-9)
    assert (sl["evidence_s"], sl["unevidenced_s"]) == (17400.0, 3600.0)  # cold-room tail + the truck's gap
    assert sl["first_time"] == "2026-03-01T00:00:00Z"
    assert sl["as_of"] == "2026-03-01T05:50:00Z"
    assert sl["verdict_version"] == body["verdict_version"]


def test_fefo_lists_the_lots_at_a_location_first_expired_first(client: TestClient) -> None:
    response = client.get(f"/locations/{quote(NN_MARKET, safe='')}/fefo")
    assert response.status_code == 200
    body = response.json()
    assert body["location_name"] == "Nanning market"
    lots = body["lots"]
    # The demo lot has used part of its life on the way; the fresh one none; the drug has no model: last.
    assert [lot["lot_id"] for lot in lots] == [LOT, FRESH, DRUG]
    used, ref_life_h = _expected_used()
    assert lots[0]["remaining_h"] == pytest.approx((1 - used) * ref_life_h, rel=1e-9)
    assert lots[0]["since"] == "2026-03-01T06:00:00Z"
    assert (lots[0]["verdict"], lots[0]["expired"]) == ("broken", False)
    assert (lots[1]["remaining_h"], lots[1]["used"]) == (ref_life_h, 0.0)
    assert (lots[2]["remaining_h"], lots[2]["model"]) == (None, None)
    assert [lot["lot_id"] for lot in client.get(f"/locations/{NN_MARKET}/fefo?limit=1").json()["lots"]] == [
        LOT
    ]


def test_fefo_of_a_location_the_lots_have_left_is_empty(client: TestClient) -> None:
    body = client.get(f"/locations/{QZ_STORE}/fefo").json()
    assert body["lots"] == []


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


def test_fefo_errors_are_problems(client: TestClient, db_url: str) -> None:
    missing = _problem(client.get("/locations/urn:epc:id:sgln:0000000.00000.0/fefo"), 404)
    assert missing["type"] == "https://ns.coldchain.example/problems/location-not-found"
    _problem(client.get(f"/locations/{NN_MARKET}/fefo?limit=0"), 422)
    _problem(client.get(f"/locations/{NN_MARKET}/fefo", headers={"X-API-Key": ""}), 401)
    # A capture key may capture events, not read lots.
    capture = client.headers["X-Capture-Key"]
    _problem(client.get(f"/locations/{NN_MARKET}/fefo", headers={"X-API-Key": capture}), 403)


def test_fefo_is_in_the_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/locations/{location_id}/fefo"]["get"]
    assert set(op["responses"]) >= {"200", "401", "403", "404", "422"}
    assert "application/problem+json" in op["responses"]["404"]["content"]
    schemas = doc["components"]["schemas"]
    assert "remaining_h" in schemas["FefoLot"]["properties"]
    assert "shelf_life" in schemas["Trace"]["properties"]


def test_a_new_reading_moves_the_stored_shelf_life(client: TestClient, db_url: str) -> None:
    before = client.get(f"/trace/{LOT}").json()["shelf_life"]
    with psycopg.connect(db_url) as conn:  # the truck probe's 5 h reading is replaced by 20 °C
        sid = conn.execute(
            "SELECT series_id FROM series WHERE device_id = 'truck-12345-rc' AND channel = 'temp:1'"
        ).fetchone()
        assert sid is not None
        conn.execute(
            "UPDATE reading SET value = 20.0 WHERE series_id = %s AND time = %s",
            (sid[0], S + timedelta(hours=5)),
        )
        conn.execute(
            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
            ([sid[0]], h(5), h(5)),
        )
        conn.commit()
    RulesWorker(db_url).run_once()
    after = client.get(f"/trace/{LOT}").json()["shelf_life"]
    assert after["used"] > before["used"]
    assert after["remaining_h"] < before["remaining_h"]


def test_a_dropout_holds_no_time_in_the_legs_mkt(client: TestClient, db_url: str) -> None:
    # The cold room reads 2 °C throughout: whatever the weights, its MKT is 2 °C, unless a dropout's held
    # time counted in the denominator without a temperature in the numerator.
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE reading SET value = NULL FROM series s WHERE s.series_id = reading.series_id"
            " AND s.device_id = 'qz-b2-logger' AND s.channel = 'temp' AND reading.time = %s",
            (h(0.5),),
        )
        conn.commit()
    room = client.get(f"/trace/{LOT}").json()["custody"][0]
    assert room["asset"]["asset_id"] == "COLDROOM-QZ-B2"
    assert room["temperature"]["dropouts"] == 1
    assert room["temperature"]["mkt_c"] == pytest.approx(2.0, abs=1e-3)

"""Tests: registering a shipment shows a carrier's or shipper's key nothing it did not see already (no other
party's lot, asset or document linked; a taken id or document answered in words naming no one's shipment);
only the shipper's or consignee's party (or an operator) closes a shipment or adds its profile; a document is
seen with the shipment holding that very document (kind and number); an asset is seen over its legs' windows
only, a unit only while it holds a visible lot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from scope_support import (
    CARRIER_A,
    CARRIER_B,
    DOC_B,
    LOT_A,
    LOT_B,
    LOT_IMP,
    PALLETS,
    SHIPPER_A,
    STORE,
    TRUCK_A,
    TRUCK_B,
    TRUCK_B_EPC,
    World,
    seed_world,
)

from registry.models import Shipment, ShipmentLeg
from registry.shipments import add_shipment
from rules.worker import RulesWorker
from traceability import shipments
from traceability.api.app import create_app
from traceability.api.options import ApiOptions
from traceability.epcis import builders, multimodal
from traceability.ledger import chain

S = datetime.fromisoformat("2026-03-01T00:00:00+00:00")


def _h(hours: float) -> datetime:
    return S + timedelta(hours=hours)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    return seed_world(db_url, tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.db_url, options=ApiOptions(ledger_key=world.ledger_key))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _as(world: World, who: str) -> dict[str, str]:
    return {"X-API-Key": world.keys[who]}


def _post(client: TestClient, world: World, who: str, body: dict[str, Any], path: str = "/shipments") -> Any:
    return client.post(path, json=body, headers=_as(world, who))


def _event_ids(client: TestClient, world: World, who: str) -> set[str]:
    got = client.get("/epcis/events", headers=_as(world, who))
    assert got.status_code == 200, got.text
    return {e["eventID"] for e in got.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]}


def _detail(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["detail"])


def _leg(carrier: str, **kw: Any) -> dict[str, Any]:
    return {"leg_no": 1, "mode": "road", "carrier_party_id": carrier, **kw}


def _seen_by_carrier_a(client: TestClient, world: World) -> tuple[int, int, set[int], set[str]]:
    h = _as(world, "carrier_a")
    alarms = client.get("/alarms", headers=h)
    assert alarms.status_code == 200, alarms.text
    return (
        client.get(f"/trace/{LOT_B}", headers=h).status_code,
        client.get(f"/assets/{TRUCK_B}/readings", headers=h).status_code,
        {a["alarm_id"] for a in alarms.json()},
        _event_ids(client, world, "carrier_a"),
    )


def test_a_carrier_links_no_lot_or_asset_it_does_not_see(client: TestClient, world: World) -> None:
    before = _seen_by_carrier_a(client, world)
    assert before[:2] == (404, 404)
    assert world.alarms[TRUCK_B] not in before[2]
    tries = [
        {"legs": [_leg(CARRIER_A, asset_id=TRUCK_B)], "lots": [{"lot_id": LOT_B}, {"lot_id": LOT_IMP}]},
        {"legs": [_leg(CARRIER_A)], "lots": [{"lot_id": LOT_B}]},
        {"legs": [_leg(CARRIER_A, asset_id=TRUCK_B)]},
        {"legs": [_leg(CARRIER_A)], "lots": [{"lot_id": "urn:epc:class:lgtin:6901234.012345.NONE"}]},
    ]
    for n, body in enumerate(tries):
        detail = _detail(_post(client, world, "carrier_a", {"shipment_id": f"MINE-{n}", **body}), 403)
        assert "does not see" in detail
    assert _seen_by_carrier_a(client, world) == before
    # A shipper naming itself the shipper of another party's lot gets nothing either.
    mine = {"shipper_party_id": SHIPPER_A, "legs": [_leg(CARRIER_A)]}
    stolen = {"shipment_id": "SH-1", **mine, "lots": [{"lot_id": LOT_B}]}
    assert "does not see" in _detail(_post(client, world, "shipper_a", stolen), 403)
    assert client.get(f"/trace/{LOT_B}", headers=_as(world, "shipper_a")).status_code == 404
    # What the key sees already it links: its own truck, the shipper's own lot.
    own = {"shipment_id": "MINE-OK", "legs": [_leg(CARRIER_A, asset_id=TRUCK_A)]}
    assert _post(client, world, "carrier_a", own).status_code == 201
    owned = {"shipment_id": "SH-OK", **mine, "lots": [{"lot_id": LOT_A}]}
    assert _post(client, world, "shipper_a", owned).status_code == 201
    # An operator may link anything registered.
    anything = {
        "shipment_id": "OP-1",
        "legs": [_leg(CARRIER_B, asset_id=TRUCK_A)],
        "lots": [{"lot_id": LOT_B}],
    }
    assert _post(client, world, "operator", anything).status_code == 201


def test_a_leg_reaches_no_further_than_the_window_the_key_sees_the_asset_in(
    client: TestClient, world: World
) -> None:
    with psycopg.connect(world.db_url) as conn:
        leg = ShipmentLeg(1, "road", carrier_party_id=CARRIER_A, asset_id=TRUCK_B)
        window = Shipment("SHP-W", planned_start=_h(10), planned_end=_h(20), legs=(leg,))
        add_shipment(conn, window)
        conn.commit()
    inside = {"planned_start": _h(12).isoformat(), "planned_end": _h(18).isoformat()}
    legs = [_leg(CARRIER_A, asset_id=TRUCK_B)]
    assert (
        _post(client, world, "carrier_a", {"shipment_id": "W-1", "legs": legs, **inside}).status_code == 201
    )
    wider = {"planned_start": _h(0).isoformat(), "planned_end": _h(18).isoformat()}
    assert "does not see" in _detail(
        _post(client, world, "carrier_a", {"shipment_id": "W-2", "legs": legs, **wider}), 403
    )
    assert "does not see" in _detail(
        _post(client, world, "carrier_a", {"shipment_id": "W-3", "legs": legs}), 403
    )


def test_a_taken_id_or_document_is_answered_naming_no_ones_shipment(client: TestClient, world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        add_shipment(
            conn, Shipment("SHP-B2", bill_of_lading="BL77", legs=(ShipmentLeg(1, "sea", CARRIER_B),))
        )
        # Events under a B/L no shipment holds yet.
        event = builders.object_event(
            event_time=_h(8), epcs=[PALLETS[LOT_B]], biz_step="shipping", read_point=STORE
        )
        event["bizTransactionList"] = multimodal.biz_transactions(bill_of_lading="BL-EVENTS")
        chain.append(conn, builders.with_event_id(event))
        conn.commit()
    legs = [_leg(CARRIER_A)]
    answers = [
        _detail(_post(client, world, "carrier_a", {"shipment_id": "SHP-B", "legs": legs}), 409),
        _detail(
            _post(
                client, world, "carrier_a", {"shipment_id": "X-1", "through_document": DOC_B, "legs": legs}
            ),
            409,
        ),
        _detail(
            _post(client, world, "carrier_a", {"shipment_id": "X-2", "bill_of_lading": "BL77", "legs": legs}),
            409,
        ),
        _detail(
            _post(
                client,
                world,
                "carrier_a",
                {"shipment_id": "X-3", "bill_of_lading": "BL-EVENTS", "legs": legs},
            ),
            409,
        ),
    ]
    assert set(answers) == {shipments.TAKEN}
    before = _event_ids(client, world, "carrier_a")
    # The same number as another kind of document is another document: free, and it shows nothing.
    other_kind = {"shipment_id": "X-4", "rail_waybill": "BL77", "road_waybill": DOC_B, "legs": legs}
    assert _post(client, world, "carrier_a", other_kind).status_code == 201
    assert _event_ids(client, world, "carrier_a") == before
    assert client.get(f"/trace/{LOT_B}", headers=_as(world, "carrier_a")).status_code == 404
    # An operator is told which.
    assert "SHP-B" in _detail(_post(client, world, "operator", {"shipment_id": "SHP-B"}), 409)
    assert DOC_B in _detail(
        _post(client, world, "operator", {"shipment_id": "Y", "through_document": DOC_B}), 409
    )


def test_only_the_shippers_or_consignees_party_closes_or_adds_a_profile(
    client: TestClient, world: World
) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE shipment SET product_class = 'chilled' WHERE shipment_id = 'SHP-A'")
        conn.commit()
    RulesWorker(world.db_url).sync_classes()  # the class's limits, as the rules stage publishes them
    profile = {"source": "DS-7 §2", "high_c": 3.5}
    # Carrier A carries SHP-A's leg and sees it, but the shipment is Shipper A's.
    assert client.get("/shipments/SHP-A", headers=_as(world, "carrier_a")).status_code == 200
    assert "ships or receives" in _detail(
        _post(client, world, "carrier_a", profile, "/shipments/SHP-A/profile"), 403
    )
    assert "ships or receives" in _detail(
        _post(client, world, "carrier_a", {}, "/shipments/SHP-A/close"), 403
    )
    # Another's shipment stays unknown, not forbidden.
    _detail(_post(client, world, "carrier_a", {}, "/shipments/SHP-B/close"), 404)
    shown = client.get("/shipments/SHP-A", headers=_as(world, "operator")).json()
    assert shown["profiles"] == []
    assert shown["state"] != "closed"
    assert _post(client, world, "shipper_a", profile, "/shipments/SHP-A/profile").status_code == 201
    assert _post(client, world, "operator", profile, "/shipments/SHP-A/profile").status_code == 201
    assert _post(client, world, "shipper_a", {}, "/shipments/SHP-A/close").status_code == 200
    # A shipment of no shipper: the operator closes it.
    assert "ships or receives" in _detail(
        _post(client, world, "carrier_b", {}, "/shipments/SHP-B/close"), 403
    )
    assert _post(client, world, "operator", {}, "/shipments/SHP-B/close").status_code == 200


def test_a_document_is_seen_with_the_shipment_holding_that_very_document(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES (%s, 'A', 'carrier'), (%s, 'B', 'carrier')",
        (CARRIER_A, CARRIER_B),
    )
    add_shipment(
        conn, Shipment("S-A", through_document="QZ/2026/0001", legs=(ShipmentLeg(1, "road", CARRIER_A),))
    )
    add_shipment(
        conn,
        Shipment(
            "S-B", through_document="0001", bill_of_lading="BL77", legs=(ShipmentLeg(1, "road", CARRIER_B),)
        ),
    )
    add_shipment(
        conn,
        Shipment("S-A2", rail_waybill="BL77", road_waybill="R/1", legs=(ShipmentLeg(1, "rail", CARRIER_A),)),
    )

    def sees(party: str, kind: str, number: str) -> bool:
        uri = multimodal.document_uri(kind, number)
        row = conn.execute("SELECT cc_sees_document('carrier', %s, %s)", (party, uri)).fetchone()
        assert row is not None
        return bool(row[0])

    cases = [
        ("through", "QZ/2026/0001", True, False),
        ("through", "0001", False, True),
        ("through", "2026/0001", False, False),
        ("bl", "BL77", False, True),
        ("waybill", "BL77", True, False),
        ("road_waybill", "R/1", True, False),
        ("road_waybill", "1", False, False),
        ("waybill", "R/1", False, False),
    ]
    for kind, number, a, b in cases:
        assert (sees(CARRIER_A, kind, number), sees(CARRIER_B, kind, number)) == (a, b), (kind, number)


def test_a_lots_shipments_include_one_named_by_its_road_waybill(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        add_shipment(conn, Shipment("SHP-R", road_waybill="RW-9", legs=(ShipmentLeg(1, "road", CARRIER_A),)))
        event = builders.object_event(
            event_time=_h(9),
            epcs=[],
            quantities=[builders.quantity(LOT_A, 5, "KGM")],
            biz_step="shipping",
            read_point=STORE,
        )
        event["bizTransactionList"] = multimodal.biz_transactions(road_waybill="RW-9")
        seq = chain.append(conn, builders.with_event_id(event))
        conn.commit()
        everything = {"role": "admin", "party": None}
        found = shipments.shipments_of_lot(conn, LOT_A, everything, [seq])
        assert "SHP-R" in {s.shipment_id for s in found}


def _mount_logger(conn: psycopg.Connection[Any]) -> None:
    """A logger on truck B all day: temperature and position every hour."""
    conn.execute("INSERT INTO device (device_id, kind) VALUES ('truck-b-logger', 'temp_logger')")
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to) VALUES (%s, %s, %s, NULL)",
        ("truck-b-logger", TRUCK_B, _h(0)),
    )
    for channel, value in (("temp", 4.0), ("lat", 21.9), ("lon", 108.6)):
        row = conn.execute(
            "INSERT INTO series (device_id, channel) VALUES ('truck-b-logger', %s) RETURNING series_id",
            (channel,),
        ).fetchone()
        assert row is not None
        conn.cursor().executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)",
            [(_h(i), row[0], value, _h(i)) for i in range(24)],
        )


def test_an_asset_is_seen_over_its_legs_window_only(client: TestClient, world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        _mount_logger(conn)
        leg = ShipmentLeg(1, "road", carrier_party_id=CARRIER_A, asset_id=TRUCK_B)
        add_shipment(conn, Shipment("SHP-W", planned_start=_h(10), planned_end=_h(14), legs=(leg,)))
        inside = builders.with_event_id(
            builders.object_event(
                event_time=_h(12), epcs=[TRUCK_B_EPC], biz_step="arriving", read_point=STORE
            )
        )
        chain.append(conn, inside)
        conn.commit()
    got = _event_ids(client, world, "carrier_a")
    assert inside["eventID"] in got
    assert world.event_ids[TRUCK_B_EPC] not in got  # truck B's departure at S+5h, outside the leg
    params = {"from": _h(0).isoformat(), "to": _h(24).isoformat()}
    chart = client.get(f"/assets/{TRUCK_B}/readings", headers=_as(world, "carrier_a"), params=params)
    assert chart.status_code == 200, chart.text
    times = {
        datetime.fromisoformat(p["t"].replace("Z", "+00:00"))
        for s in chart.json()["temperature"]
        for p in s["points"]
    }
    assert times == {_h(i) for i in range(10, 14)}
    track = {datetime.fromisoformat(p["t"].replace("Z", "+00:00")) for p in chart.json()["track"]}
    assert track == {_h(i) for i in range(10, 14)}
    full = client.get(f"/assets/{TRUCK_B}/readings", headers=_as(world, "carrier_b"), params=params).json()
    assert len({p["t"] for s in full["temperature"] for p in s["points"]}) == 24


def test_a_unit_is_seen_only_while_it_holds_a_visible_lot(client: TestClient, world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        early = builders.with_event_id(
            builders.object_event(
                event_time=_h(0.5), epcs=[PALLETS[LOT_B]], biz_step="shipping", read_point=STORE
            )
        )
        chain.append(conn, early)
        conn.commit()
    got = _event_ids(client, world, "carrier_b")
    assert world.event_ids[f"{LOT_B} received"] in got  # the pallet received after LOT_B was packed on it
    assert early["eventID"] not in got  # the pallet before it held LOT_B

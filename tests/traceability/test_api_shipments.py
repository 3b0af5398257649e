"""Tests: /shipments registers, lists, shows and closes shipments over a real PostgreSQL, scoped to the
caller's party (another carrier's shipment is 404); a shipment's state follows its ledger events; captured
events naming an unknown through document create its shipment; the trace shows a lot's shipments."""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from registry import shipments as registry_shipments
from registry import store
from registry.models import Location, Lot, Party
from rules.worker import RulesWorker
from traceability.api import auth
from traceability.api.app import create_app
from traceability.epcis import builders, multimodal
from traceability.ledger import chain, checkpoint, rederive

Conn = psycopg.Connection[Any]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CARRIER_A = Party("6901234100006", "Beibu Gulf Reefer", "carrier")
CARRIER_B = Party("6901234200003", "Other Lines", "carrier")
SHIPPER = Party("8850000000001", "Chanthaburi Durian Co", "shipper")
ORIGIN = Location("urn:epc:id:sgln:8850000.00001.0", "Laem Chabang terminal", "port")
DEST = Location("urn:epc:id:sgln:6901234.00020.0", "Qinzhou bonded cold store", "cold_store")
DOCK = Location("urn:epc:id:sgln:6901234.00020.1", "Cold store dock 1", "dock_door", None, DEST.location_id)
LOT = Lot(
    "urn:epc:class:lgtin:8850000.012345.D1", "durian", origin_country="TH", owner_party_id="8850000000001"
)
LOT2 = Lot("urn:epc:class:lgtin:8850000.012345.D2", "durian", origin_country="TH")
DOMESTIC = Lot("urn:epc:class:lgtin:6901234.012345.C1", "chilled", origin_country="CN")
BOX = "CSQU3054383"  # ISO 6346, check digit 3


def _key(conn: Conn, role: str, party: str | None = None) -> str:
    """A key of `role` for `party` (a carrier's and a shipper's key name their party)."""
    secret = auth.KEY_PREFIX + role + "-" + (party or "any") + "-" + "x" * 20
    conn.execute(
        "INSERT INTO api_key (name, role, key_hash, key_prefix, party_id) VALUES (%s, %s, %s, %s, %s)",
        (f"test-{role}", role, auth.hash_key(secret), secret[: auth.SHOWN_CHARS], party),
    )
    return secret


def _body(sid: str = "SHP-1", carrier: str = CARRIER_A.party_id, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "shipment_id": sid,
        "through_document": "TD-" + sid,
        "bill_of_lading": "BL-" + sid,
        "rail_waybill": "RW-" + sid,
        "shipper_party_id": SHIPPER.party_id,
        "product_class": "durian",
        "origin_location_id": ORIGIN.location_id,
        "destination_location_id": DEST.location_id,
        "planned_start": T0.isoformat(),
        "planned_end": (T0 + 72 * HOUR).isoformat(),
        "legs": [
            {
                "leg_no": 1,
                "mode": "sea",
                "carrier_party_id": carrier,
                "container_number": BOX,
                "vessel": "Beibu 1",
                "voyage": "V1",
                "from_location_id": ORIGIN.location_id,
                "to_location_id": DEST.location_id,
            },
            {"leg_no": 2, "mode": "road", "carrier_party_id": carrier, "truck_plate": "桂A12345"},
        ],
        "stops": [DEST.location_id],
        "lots": [{"lot_id": LOT.lot_id, "quantity": 120, "uom": "CT"}],
    }
    body.update(kw)
    return body


class World:
    def __init__(self, client: TestClient, keys: dict[str, str], db_url: str) -> None:
        self.client, self.keys, self.db_url = client, keys, db_url

    def as_(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}

    def post(self, who: str, body: dict[str, Any], path: str = "/shipments") -> Any:
        return self.client.post(path, json=body, headers=self.as_(who))

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.as_(who))


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with psycopg.connect(db_url) as conn:
        store.add_parties(conn, [CARRIER_A, CARRIER_B, SHIPPER])
        store.add_locations(conn, [ORIGIN, DEST, DOCK])
        store.add_lots(conn, [LOT, LOT2, DOMESTIC])
        keys = {
            "admin": _key(conn, "admin"),
            "inspector": _key(conn, "inspector"),
            "capture": _key(conn, "capture"),
            "carrier_a": _key(conn, "carrier", CARRIER_A.party_id),
            "carrier_b": _key(conn, "carrier", CARRIER_B.party_id),
            "shipper": _key(conn, "shipper", SHIPPER.party_id),
            "customs": _key(conn, "customs"),
            "regulator": _key(conn, "regulator"),
        }
        conn.commit()
    RulesWorker(db_url).sync_classes()  # the classes' limits, as the rules stage publishes them
    with TestClient(create_app(db_url), raise_server_exceptions=False) as client:
        yield World(client, keys, db_url)


def _problem(response: Any, status: int, fragment: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert fragment in body.get("detail", ""), body
    return body


# --- POST /shipments ---------------------------------------------------------------------------------


def test_a_registered_shipment_reads_back_with_its_legs_lots_and_state(world: World) -> None:
    created = world.post("admin", _body())
    assert created.status_code == 201, created.text
    got = world.get("admin", "/shipments/SHP-1")
    assert got.status_code == 200
    body = got.json()
    assert body == created.json()
    assert body["state"] == "planned"
    assert body["source"] == "api"
    assert [(leg["leg_no"], leg["mode"], leg["container_number"]) for leg in body["legs"]] == [
        (1, "sea", BOX),
        (2, "road", None),
    ]
    assert body["lots"] == [{"lot_id": LOT.lot_id, "quantity": 120.0, "uom": "CT"}]
    assert body["stops"] == [DEST.location_id]
    listed = world.get("admin", "/shipments").json()
    assert [(s["shipment_id"], s["state"]) for s in listed] == [("SHP-1", "planned")]


def test_a_profile_tighter_than_the_class_is_stored_and_a_looser_one_refused(world: World) -> None:
    tight = {"source": "Shipper spec DS-7 §2", "low_c": 11.0, "high_c": 14.0, "max_gap_s": 300}
    created = world.post("admin", _body(profile=tight))
    assert created.status_code == 201, created.text
    assert created.json()["profiles"] == [{"version": 1, **tight}]
    loose = {"source": "Shipper spec DS-7 §2", "low_c": 9.0}
    _problem(world.post("admin", _body("SHP-2", profile=loose)), 422, "looser than class durian")
    slow = {"source": "Shipper spec DS-7 §2", "max_gap_s": 3600}
    _problem(world.post("admin", _body("SHP-3", profile=slow)), 422, "max_gap_s")
    no_class = _body("SHP-4", profile=tight, product_class="no_such_class")
    _problem(world.post("admin", no_class), 422, "product class")
    assert [s["shipment_id"] for s in world.get("admin", "/shipments").json()] == ["SHP-1"]


def test_a_shipment_that_cannot_be_registered_is_refused_in_words(world: World) -> None:
    assert world.post("admin", _body()).status_code == 201
    _problem(world.post("admin", _body()), 409, "registered already")
    _problem(world.post("admin", _body("SHP-9", through_document="TD-SHP-1")), 409, "TD-SHP-1")
    unknown_lot = _body("SHP-2", lots=[{"lot_id": "urn:epc:class:lgtin:0000000.000000.X"}])
    body = _problem(world.post("admin", unknown_lot), 422, "a lot's lot_id names nothing registered")
    assert "Key (" not in body["detail"]
    assert "violates" not in body["detail"]
    bad_box = _body("SHP-3")
    bad_box["legs"][0]["container_number"] = "CSQU3054384"
    _problem(world.post("admin", bad_box), 422)
    _problem(world.post("admin", _body("SHP-4", legs=[{"leg_no": 1, "mode": "air"}])), 422)
    _problem(world.post("admin", _body("SHP-5", planned_end=T0.isoformat())), 422, "planned end")
    _problem(world.client.post("/shipments", json=_body("SHP-6")), 401)
    _problem(world.post("inspector", _body("SHP-7")), 403)
    _problem(world.post("capture", _body("SHP-8")), 403)
    assert [s["shipment_id"] for s in world.get("admin", "/shipments").json()] == ["SHP-1"]


def test_a_carrier_registers_only_a_shipment_it_carries(world: World) -> None:
    _problem(world.post("carrier_b", _body("SHP-A", lots=[])), 403, "of its own party")
    assert world.get("admin", "/shipments").json() == []
    # The lot is the shipper's: the carrier does not see it, so it links it not.
    _problem(world.post("carrier_a", _body("SHP-A")), 403, "does not see")
    assert world.post("carrier_a", _body("SHP-A", lots=[])).status_code == 201
    assert world.post("shipper", _body("SHP-S")).status_code == 201


# --- GET /shipments, GET /shipments/{id}: scoping ----------------------------------------------------


def test_another_carriers_shipment_is_not_found_and_not_listed(world: World) -> None:
    assert world.post("admin", _body("SHP-A", carrier=CARRIER_A.party_id)).status_code == 201
    assert world.post("admin", _body("SHP-B", carrier=CARRIER_B.party_id)).status_code == 201
    assert world.get("carrier_a", "/shipments/SHP-A").status_code == 200
    _problem(world.get("carrier_a", "/shipments/SHP-B"), 404, "SHP-B")
    _problem(world.get("carrier_b", "/shipments/SHP-A"), 404, "SHP-A")
    _problem(world.get("admin", "/shipments/SHP-NONE"), 404, "SHP-NONE")
    assert [s["shipment_id"] for s in world.get("carrier_a", "/shipments").json()] == ["SHP-A"]
    assert [s["shipment_id"] for s in world.get("carrier_b", "/shipments").json()] == ["SHP-B"]
    everyone = {s["shipment_id"] for s in world.get("inspector", "/shipments").json()}
    assert everyone == {"SHP-A", "SHP-B"}
    assert {s["shipment_id"] for s in world.get("shipper", "/shipments").json()} == {"SHP-A", "SHP-B"}
    assert {s["shipment_id"] for s in world.get("regulator", "/shipments").json()} == {"SHP-A", "SHP-B"}
    # Customs sees the shipments of imported lots (LOT is Thai), not a domestic one's.
    domestic = _body("SHP-D", lots=[{"lot_id": DOMESTIC.lot_id}], through_document="TD-D")
    assert world.post("admin", domestic).status_code == 201
    assert {s["shipment_id"] for s in world.get("customs", "/shipments").json()} == {"SHP-A", "SHP-B"}
    _problem(world.get("customs", "/shipments/SHP-D"), 404)
    assert world.get("customs", "/shipments/SHP-A").status_code == 200
    _problem(world.get("capture", "/shipments"), 403)
    _problem(world.client.get("/shipments/SHP-A"), 401)
    _problem(world.get("admin", "/shipments", state="lost"), 422)
    only = world.get("admin", "/shipments", state="planned", lot=LOT2.lot_id).json()
    assert only == []


# --- POST /shipments/{id}/close --------------------------------------------------------------------


def test_a_shipment_closes_once_and_only_for_whom_sees_it(world: World) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    _problem(world.post("carrier_b", {}, "/shipments/SHP-A/close"), 404, "SHP-A")
    _problem(world.post("inspector", {}, "/shipments/SHP-A/close"), 403)
    _problem(world.post("carrier_a", {}, "/shipments/SHP-A/close"), 403, "ships or receives")
    at = (T0 + 80 * HOUR).isoformat()
    closed = world.post("shipper", {"at": at}, "/shipments/SHP-A/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    assert datetime.fromisoformat(closed.json()["closed_at"]) == T0 + 80 * HOUR
    _problem(world.post("shipper", {}, "/shipments/SHP-A/close"), 409, "closed already")
    _problem(world.post("admin", {}, "/shipments/SHP-NONE/close"), 404)


def test_profile_versions_add_up_and_are_scoped(world: World) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    path = "/shipments/SHP-A/profile"
    _problem(world.post("carrier_a", {"source": "DS-7 §2", "high_c": 14.0}, path), 403, "ships or receives")
    first = world.post("admin", {"source": "DS-7 §2", "high_c": 14.0}, path)
    assert first.status_code == 201, first.text
    second = world.post("shipper", {"source": "DS-7 §3", "max_gap_s": 300}, path)
    assert [(p["version"], p["source"]) for p in second.json()["profiles"]] == [
        (1, "DS-7 §2"),
        (2, "DS-7 §3"),
    ]
    _problem(world.post("admin", {"source": "x", "high_c": 16.0}, path), 422, "looser")
    _problem(world.post("admin", {"source": "x", "high_c": 12.0, "low_c": 13.0}, path), 422, "not below")
    _problem(world.post("admin", {"high_c": 12.0}, path), 422)
    _problem(world.post("carrier_b", {"source": "x", "high_c": 14.0}, path), 404, "SHP-A")
    _problem(world.post("inspector", {"source": "x", "high_c": 14.0}, path), 403)
    _problem(world.post("admin", {"source": "x", "high_c": 14.0}, "/shipments/SHP-NONE/profile"), 404)
    assert len(world.get("admin", "/shipments/SHP-A").json()["profiles"]) == 2


# --- state from the ledger -------------------------------------------------------------------------


def _step(step: str, t: datetime, place: str, docs: list[dict[str, str]], **kw: Any) -> builders.Event:
    return multimodal.movement(
        t=t,
        step=step,
        epcs=[multimodal.container_epc(BOX)],
        location=place,
        conveyance_ext=multimodal.conveyance("sea", vessel="Beibu 1", voyage="V1"),
        transactions=docs,
        **kw,
    )


def test_the_state_follows_the_shipments_ledger_events(world: World) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    through = multimodal.biz_transactions(through_document="TD-SHP-A")
    by_bl = multimodal.biz_transactions(bill_of_lading="BL-SHP-A")

    def state() -> str:
        got = world.get("carrier_a", "/shipments/SHP-A").json()
        return str(got["state"])

    with psycopg.connect(world.db_url) as conn:
        other = _step("departing", T0, ORIGIN.location_id, multimodal.biz_transactions(through_document="X"))
        chain.append(conn, other)
        conn.commit()
        assert state() == "planned"
        chain.append(conn, _step("departing", T0 + HOUR, ORIGIN.location_id, through))
        conn.commit()
        assert state() == "in_transit"
        chain.append(
            conn, _step("arriving", T0 + 40 * HOUR, ORIGIN.location_id, by_bl)
        )  # not the destination
        conn.commit()
        assert state() == "in_transit"
        chain.append(
            conn, _step("arriving", T0 + 48 * HOUR, DOCK.location_id, by_bl)
        )  # under the destination
        conn.commit()
        assert state() == "arrived"
        receiving = _step("receiving", T0 + 50 * HOUR, DEST.location_id, through)
        chain.append(conn, receiving)
        conn.commit()
        got = world.get("carrier_a", "/shipments/SHP-A").json()
        assert got["state"] == "delivered"
        assert datetime.fromisoformat(got["departed_at"]) == T0 + HOUR
        assert datetime.fromisoformat(got["arrived_at"]) == T0 + 48 * HOUR
        assert datetime.fromisoformat(got["delivered_at"]) == T0 + 50 * HOUR
        chain.append(conn, _step("departing", T0 + 60 * HOUR, DEST.location_id, through))  # late, later
        chain.declare_error(conn, str(receiving["eventID"]))  # the receiving was wrong
        conn.commit()
        assert state() == "arrived"
    assert world.post("admin", {}, "/shipments/SHP-A/close").status_code == 200
    assert state() == "closed"


def test_the_document_uri_of_sql_is_the_one_of_the_builders(conn: Conn) -> None:
    for kind in multimodal.DOCUMENT_KINDS:
        row = conn.execute("SELECT cc_document_uri(%s, %s)", (kind, "N-1/2")).fetchone()
        assert row == (multimodal.document_uri(kind, "N-1/2"),)
        assert multimodal.document_number(multimodal.document_uri(kind, "N-1/2")) == (kind, "N-1/2")


# --- shipments from captured events ----------------------------------------------------------------


def _captured(t: datetime, through: str, lots: list[str], **docs: str) -> builders.Event:
    event = multimodal.movement(
        t=t,
        step="departing",
        epcs=[multimodal.container_epc(BOX)],
        location=ORIGIN.location_id,
        conveyance_ext=multimodal.conveyance("sea", vessel="Beibu 2", voyage="V9"),
        custodian=CARRIER_A.party_id,
        transactions=multimodal.biz_transactions(through_document=through, **docs),
    )
    event["quantityList"] = [builders.quantity(lot, 10, "CT") for lot in lots]
    return builders.with_event_id({k: v for k, v in event.items() if k != "eventID"})


def test_a_captured_through_document_that_matches_no_shipment_creates_one(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        unknown_lot = "urn:epc:class:lgtin:0000000.000000.NOPE"
        chain.append(conn, _captured(T0, "TD-NEW", [LOT.lot_id, unknown_lot], bill_of_lading="BL-NEW"))
        chain.append(conn, _captured(T0 + HOUR, "TD-NEW", [LOT2.lot_id]))
        conn.commit()
        found = registry_shipments.get_shipment(conn, "TD-TD-NEW")
        assert found is not None
        assert (found.source, found.through_document, found.bill_of_lading) == ("epcis", "TD-NEW", "BL-NEW")
        assert [(lot.lot_id, lot.quantity, lot.uom) for lot in found.lots] == [
            (LOT.lot_id, 10.0, "CT"),
            (LOT2.lot_id, 10.0, "CT"),
        ]
        assert [(leg.mode, leg.container_number, leg.vessel, leg.carrier_party_id) for leg in found.legs] == [
            ("sea", BOX, "Beibu 2", CARRIER_A.party_id)
        ]
        # Rederiving the ledger finds the shipment there: nothing created twice, the tables consistent.
        conn.commit()
        assert rederive.rederive(conn, apply=False).consistent
        count = conn.execute("SELECT count(*) FROM shipment").fetchone()
        assert count == (1,)
    # The carrier of its leg sees it, in transit (its departing event names it); the other carrier does not.
    assert world.get("carrier_a", "/shipments/TD-TD-NEW").json()["state"] == "in_transit"
    _problem(world.get("carrier_b", "/shipments/TD-TD-NEW"), 404)


def test_a_captured_shipment_gets_its_leg_whether_the_events_come_together_or_apart(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        first = _captured(T0, "TD-APART", [LOT.lot_id])
        no_conveyance = builders.with_event_id(
            {k: v for k, v in first.items() if k not in ("eventID", "cc:transportMode", "epcList")}
        )
        chain.append(conn, no_conveyance)
        conn.commit()
        found = registry_shipments.get_shipment(conn, "TD-TD-APART")
        assert found is not None
        assert found.legs == ()
        chain.append(conn, _captured(T0 + HOUR, "TD-APART", [LOT2.lot_id]))
        chain.append(conn, _captured(T0 + 2 * HOUR, "TD-APART", []))  # the first leg stays the first
        conn.commit()
        found = registry_shipments.get_shipment(conn, "TD-TD-APART")
        assert found is not None
        assert [(leg.leg_no, leg.mode, leg.container_number, leg.carrier_party_id) for leg in found.legs] == [
            (1, "sea", BOX, CARRIER_A.party_id)
        ]
    assert world.get("carrier_a", "/shipments/TD-TD-APART").status_code == 200


def test_a_captured_document_of_a_registered_shipment_changes_it_not(world: World) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    with psycopg.connect(world.db_url) as conn:
        # Another through document number, but the B/L of SHP-A: the same shipment.
        chain.append(conn, _captured(T0, "TD-OTHER", [LOT2.lot_id], bill_of_lading="BL-SHP-A"))
        chain.append(conn, _captured(T0, "TD-SHP-A", [LOT2.lot_id]))
        conn.commit()
        assert conn.execute("SELECT shipment_id FROM shipment").fetchall() == [("SHP-A",)]
        found = registry_shipments.get_shipment(conn, "SHP-A")
        assert found is not None
        assert [lot.lot_id for lot in found.lots] == [LOT.lot_id]


def test_an_event_without_a_through_document_creates_no_shipment(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        event = copy.deepcopy(_captured(T0, "TD-X", [LOT.lot_id]))
        event["bizTransactionList"] = multimodal.biz_transactions(bill_of_lading="BL-ONLY")
        chain.append(conn, builders.with_event_id({k: v for k, v in event.items() if k != "eventID"}))
        conn.commit()
        assert conn.execute("SELECT count(*) FROM shipment").fetchone() == (0,)


# --- the trace -------------------------------------------------------------------------------------


def test_the_trace_shows_the_shipments_a_lot_travelled_in(world: World) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    with psycopg.connect(world.db_url) as conn:
        through = multimodal.biz_transactions(through_document="TD-SHP-A")
        chain.append(conn, _step("departing", T0 + HOUR, ORIGIN.location_id, through))
        conn.commit()
    got = world.get("admin", f"/trace/{LOT.lot_id}")
    assert got.status_code == 200, got.text
    (ref,) = got.json()["shipments"]
    assert (ref["shipment_id"], ref["state"], ref["quantity"], ref["uom"]) == (
        "SHP-A",
        "in_transit",
        120.0,
        "CT",
    )
    assert [(leg["leg_no"], leg["mode"], leg["carrier_name"]) for leg in ref["legs"]] == [
        (1, "sea", CARRIER_A.name),
        (2, "road", CARRIER_A.name),
    ]
    assert ref["legs"][0]["container_number"] == BOX
    assert world.get("admin", f"/trace/{LOT2.lot_id}").json()["shipments"] == []
    # A lot the shipment does not list, named by an event under its B/L, travelled in it too (no quantity).
    with psycopg.connect(world.db_url) as conn:
        event = _captured(T0 + 2 * HOUR, "TD-SHP-A", [LOT2.lot_id])
        event["bizTransactionList"] = multimodal.biz_transactions(bill_of_lading="BL-SHP-A")
        chain.append(conn, builders.with_event_id({k: v for k, v in event.items() if k != "eventID"}))
        conn.commit()
    (ref2,) = world.get("admin", f"/trace/{LOT2.lot_id}").json()["shipments"]
    assert (ref2["shipment_id"], ref2["quantity"], len(ref2["legs"])) == ("SHP-A", None, 2)
    (ref,) = world.get("admin", f"/trace/{LOT.lot_id}").json()["shipments"]
    assert ref["quantity"] == 120.0


def _signed_in(world: World) -> None:
    form = world.client.get("/ui/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    data = {"key": world.keys["inspector"], "csrf": found.group(1), "next": "/ui/"}
    assert world.client.post("/ui/signin", data=data, follow_redirects=False).status_code == 303


def test_the_trace_page_shows_the_shipments_in_both_languages(world: World) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    with psycopg.connect(world.db_url) as conn:
        through = multimodal.biz_transactions(through_document="TD-SHP-A")
        chain.append(conn, _step("departing", T0 + HOUR, ORIGIN.location_id, through))
        conn.commit()
    _signed_in(world)
    path = "/ui/trace/" + quote(LOT.lot_id, safe="")
    en = world.client.get(path, headers={"Accept-Language": "en"})
    assert en.status_code == 200, en.text
    assert "Shipment SHP-A" in en.text
    assert "in transit" in en.text
    assert BOX in en.text
    zh = world.client.get(path, headers={"Accept-Language": "zh-CN"})
    assert "货运 SHP-A" in zh.text
    assert "运输中" in zh.text
    assert "海运" in zh.text
    other = world.client.get("/ui/trace/" + quote(LOT2.lot_id, safe=""), headers={"Accept-Language": "en"})
    assert other.status_code == 200
    assert "Shipment SHP-A" not in other.text


def test_the_pdf_report_lists_the_shipments(world: World, tmp_path: Path) -> None:
    assert world.post("admin", _body("SHP-A")).status_code == 201
    with psycopg.connect(world.db_url) as conn:
        chain.append(conn, _captured(T0 + HOUR, "TD-SHP-A", [LOT.lot_id]))  # the lot leaves in it
        conn.commit()
    assert checkpoint.CheckpointWorker(world.db_url, tmp_path / checkpoint.KEY_FILE).run_once() is not None
    got = world.get("admin", f"/trace/{quote(LOT.lot_id, safe='')}/report.pdf", lang="zh-CN")
    assert got.status_code == 200, got.text
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(got.content)
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    flat = "".join(text.split())
    assert "本批次所经货运" in flat
    assert "SHP-A" in flat
    assert "运输中" in flat
    assert "一单制单号TD-SHP-A" in flat


def test_a_shipment_id_with_slashes_reads_and_closes(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        chain.append(conn, _captured(T0, "2026/TD/7", [LOT.lot_id]))
        conn.commit()
    got = world.get("carrier_a", "/shipments/TD-2026/TD/7")
    assert got.status_code == 200, got.text
    assert got.json()["through_document"] == "2026/TD/7"
    _problem(world.post("carrier_a", {}, "/shipments/TD-2026/TD/7/close"), 403)
    closed = world.post("admin", {}, "/shipments/TD-2026/TD/7/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    _problem(world.get("carrier_b", "/shipments/TD-2026/TD/7"), 404)


@given(kind=st.sampled_from(multimodal.DOCUMENT_KINDS), number=st.text(min_size=1, max_size=40))
def test_a_document_number_reads_back_from_its_uri(kind: str, number: str) -> None:
    assert multimodal.document_number(multimodal.document_uri(kind, number)) == (kind, number)


DOC_PREFIX = multimodal.document_uri("k", "n").removesuffix("k/n")


@given(
    head=st.sampled_from(["", DOC_PREFIX, DOC_PREFIX[:-1], "urn:epcglobal:cbv:bt:" + DOC_PREFIX]),
    kind=st.one_of(st.sampled_from(multimodal.DOCUMENT_KINDS), st.text(max_size=12)),
    sep=st.sampled_from(["/", "", ":"]),
    number=st.text(max_size=40),
)
def test_any_other_text_is_no_document(head: str, kind: str, sep: str, number: str) -> None:
    uri = head + kind + sep + number
    found = multimodal.document_number(uri)
    if head == DOC_PREFIX and sep == "/" and kind in multimodal.DOCUMENT_KINDS and number:
        assert found == (kind, number)
    if found is not None:
        assert found[0] in multimodal.DOCUMENT_KINDS
        assert found[1]
        assert multimodal.document_uri(*found) == uri

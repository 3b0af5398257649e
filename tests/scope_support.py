"""Tests: a world of two carriers, a shipper and customs, for who may see what: two shipments (one carrier
each, one of them carrying an imported bonded lot), their trucks with an alarm each, the lots' events at one
cold store, a truck's departure under its through document, an import inspection, a signed checkpoint, and
a key of each role (carriers and shipper of their party)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from registry.models import Shipment, ShipmentLeg, ShipmentLot
from registry.shipments import add_shipment
from rules.alarms import lifecycle
from traceability.api.auth import create_key
from traceability.epcis import builders, multimodal
from traceability.ledger import chain, checkpoint

S = datetime(2026, 3, 1, tzinfo=UTC)
CARRIER_A, CARRIER_B, SHIPPER_A, CUSTOMS = "6901234200001", "6901234200002", "6901234200003", "6901234200004"
STORE = "urn:epc:id:sgln:6901234.00050.0"
TRUCK_A, TRUCK_B = "TRUCK-A", "TRUCK-B"
TRUCK_A_EPC, TRUCK_B_EPC = "urn:epc:id:giai:6901234.1001", "urn:epc:id:giai:6901234.1002"
LOT_A = "urn:epc:class:lgtin:6901234.012345.SCA1"  # domestic, owned by SHIPPER_A, in carrier A's shipment
LOT_B = "urn:epc:class:lgtin:6901234.012345.SCB1"  # domestic, in carrier B's shipment
LOT_IMP = "urn:epc:class:lgtin:8850000.012345.SCI1"  # Thai, bonded, in carrier B's shipment
DOC_A, DOC_B = "TD-SCOPE-A", "TD-SCOPE-B"
# The pallet each lot is packed on and received in at the cold store.
PALLETS = {
    LOT_A: "urn:epc:id:sscc:6901234.0000000701",
    LOT_B: "urn:epc:id:sscc:6901234.0000000702",
    LOT_IMP: "urn:epc:id:sscc:6901234.0000000703",
}
# A pallet named only on an event under carrier B's through document: visible through the document alone.
PALLET_B = "urn:epc:id:sscc:6901234.0000000777"
ROLES = ("carrier_a", "carrier_b", "shipper_a", "customs", "inspector", "regulator", "operator")


@dataclass(frozen=True, slots=True)
class World:
    db_url: str
    ledger_key: Path
    keys: dict[str, str]
    alarms: dict[str, int]  # asset id -> its open alarm
    event_ids: dict[str, str]  # what the event is of -> its eventID


def _h(hours: float) -> datetime:
    return S + timedelta(hours=hours)


def _registry(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES (%s, 'Carrier A', 'carrier'),"
        " (%s, 'Carrier B', 'carrier'), (%s, 'Shipper A', 'shipper'), (%s, 'Qinzhou customs', 'customs')",
        (CARRIER_A, CARRIER_B, SHIPPER_A, CUSTOMS),
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind) VALUES (%s, 'Cold store', 'cold_store')", (STORE,)
    )
    conn.execute(
        "INSERT INTO asset (asset_id, epc, kind, name, mode, operator_party_id) VALUES"
        " (%s, %s, 'reefer_truck', 'Truck A', 'transport', %s),"
        " (%s, %s, 'reefer_truck', 'Truck B', 'transport', %s)",
        (TRUCK_A, TRUCK_A_EPC, CARRIER_A, TRUCK_B, TRUCK_B_EPC, CARRIER_B),
    )
    conn.execute(
        "INSERT INTO lot (lot_id, gtin, batch, product_class, origin_country, bonded_status, owner_party_id)"
        " VALUES (%s, '06901234123456', 'SCA1', 'chilled', 'CN', NULL, %s),"
        " (%s, '06901234123456', 'SCB1', 'chilled', 'CN', NULL, NULL),"
        " (%s, '08850000123456', 'SCI1', 'chilled', 'TH', 'bonded', NULL)",
        (LOT_A, SHIPPER_A, LOT_B, LOT_IMP),
    )
    add_shipment(
        conn,
        Shipment(
            "SHP-A",
            through_document=DOC_A,
            shipper_party_id=SHIPPER_A,
            legs=(ShipmentLeg(1, "road", carrier_party_id=CARRIER_A, asset_id=TRUCK_A),),
            lots=(ShipmentLot(LOT_A, 100, "KGM"),),
        ),
    )
    add_shipment(
        conn,
        Shipment(
            "SHP-B",
            through_document=DOC_B,
            legs=(ShipmentLeg(1, "road", carrier_party_id=CARRIER_B, asset_id=TRUCK_B),),
            lots=(ShipmentLot(LOT_B, 50, "KGM"), ShipmentLot(LOT_IMP, 800, "KGM")),
        ),
    )


def _events(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The ledger's events; what each is of -> its eventID (a lot: its packing; ``received(lot)``: its
    pallet received at the cold store)."""
    made: dict[str, dict[str, Any]] = {}
    for i, lot in enumerate((LOT_A, LOT_B, LOT_IMP)):
        made[lot] = builders.aggregation_event(
            event_time=_h(1 + i),
            action="ADD",
            parent_id=PALLETS[lot],
            child_quantities=[builders.quantity(lot, 10, "KGM")],
            biz_step="packing",
            read_point=STORE,
        )
        made[received(lot)] = builders.object_event(
            event_time=_h(1.5 + i),
            epcs=[PALLETS[lot]],
            biz_step="receiving",
            read_point=STORE,
            biz_location=STORE,
        )
    departing = builders.object_event(
        event_time=_h(5), epcs=[TRUCK_B_EPC], biz_step="departing", read_point=STORE
    )
    departing["bizTransactionList"] = multimodal.biz_transactions(through_document=DOC_B)
    made[TRUCK_B_EPC] = departing
    pallet = builders.object_event(event_time=_h(6), epcs=[PALLET_B], biz_step="shipping", read_point=STORE)
    pallet["bizTransactionList"] = multimodal.biz_transactions(through_document=DOC_B)
    made[PALLET_B] = pallet
    made["inspection"] = multimodal.inspection(t=_h(7), epcs=[], lots=[LOT_IMP], location=STORE)
    ids: dict[str, str] = {}
    for what, event in made.items():
        event = builders.with_event_id(event)
        chain.append(conn, event)
        ids[what] = str(event["eventID"])
    return ids


def received(lot: str) -> str:
    """The key of ``World.event_ids`` of the lot's pallet received at the cold store."""
    return f"{lot} received"


def _alarm(conn: psycopg.Connection[Any], asset_id: str) -> int:
    found = lifecycle.raise_or_update(
        conn,
        lifecycle.Condition(
            asset_id=asset_id,
            rule_id="cn_food/chilled/range",
            kind="excursion",
            severity="critical",
            series_id=None,
            product_class="chilled",
            pack_version="1.0.0",
            reason="out of range for 1800 s",
            condition_start=_h(3),
            condition_end=_h(3.5),
            peak_c=8.5,
            trigger_committed_at=None,
        ),
    )
    assert found is not None
    return int(found[1]["alarm_id"])


def seed_world(db_url: str, key_dir: Path) -> World:
    ledger_key = key_dir / "ledger-ed25519.pem"
    with psycopg.connect(db_url) as conn:
        _registry(conn)
        event_ids = _events(conn)
        alarms = {asset: _alarm(conn, asset) for asset in (TRUCK_A, TRUCK_B)}
        checkpoint.sign_head(conn, checkpoint.load_or_create_key(ledger_key), now=datetime.now(UTC))
        keys = {
            "carrier_a": create_key(conn, "carrier", "carrier A", CARRIER_A),
            "carrier_b": create_key(conn, "carrier", "carrier B", CARRIER_B),
            "shipper_a": create_key(conn, "shipper", "shipper A", SHIPPER_A),
            "customs": create_key(conn, "customs", "Qinzhou customs", CUSTOMS),
            "inspector": create_key(conn, "inspector", "inspector"),
            "regulator": create_key(conn, "regulator", "regulator"),
            "operator": create_key(conn, "operator", "operator"),
        }
        conn.commit()
    return World(db_url, ledger_key, keys, alarms, event_ids)

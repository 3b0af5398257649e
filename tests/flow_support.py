"""Tests: an imported cold-chain food flow at Qinzhou: two batches of one container discharged, inspected,
the durian disinfected, entered into the bonded cold store and released in two parts with a trace code,
the seafood released without inspection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

import registry.store as registry
from registry.models import Asset, Location, Lot, Party
from traceability.epcis import builders, multimodal
from traceability.ledger import chain

T0 = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
DURIAN = "urn:epc:class:lgtin:8850000.077001.DUR2604"
SEAFOOD = "urn:epc:class:lgtin:8930000.055001.SEA2604"
CONTAINER = "CSQU3054383"
PORT = "urn:epc:id:sgln:6901234.00110.0"
INSPECTION_SITE = "urn:epc:id:sgln:6901234.00120.0"
BONDED_GATE = "urn:epc:id:sgln:6901234.00130.0"
BONDED_STORE = "urn:epc:id:sgln:6901234.00140.0"
COLD_ROOM = "COLDROOM-QZ-BONDED"
TRACE_CODE = "QZ-DUR-2604-0001"
SITE = "Qinzhou designated supervision site"
FIRST_SITE = "Qinzhou bonded cold store"


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def seed_registry(conn: psycopg.Connection[Any]) -> None:
    registry.add_parties(conn, [Party("6901234000905", "Qinzhou Bonded Cold Store Co.", "cold_store")])
    registry.add_locations(
        conn,
        [
            Location(PORT, "Qinzhou port terminal", "port"),
            Location(INSPECTION_SITE, SITE, "inspection_site"),
            Location(BONDED_GATE, "Qinzhou bonded zone gate", "bonded_zone"),
            Location(BONDED_STORE, FIRST_SITE, "cold_store", party_id="6901234000905"),
        ],
    )
    registry.add_assets(
        conn,
        [
            Asset(
                COLD_ROOM,
                "cold_room",
                "Bonded cold room 1",
                location_id=BONDED_STORE,
                product_class="chilled",
                mode="storage",
            ),
            Asset(
                "CONT-" + CONTAINER,
                "reefer_container",
                "Reefer " + CONTAINER,
                epc=multimodal.container_epc(CONTAINER),
                product_class="chilled",
            ),
        ],
    )
    registry.add_lots(
        conn,
        [
            Lot(DURIAN, "chilled", description="Fresh durian", origin_country="TH", bonded_status="bonded"),
            Lot(
                SEAFOOD, "chilled", description="Chilled shrimp", origin_country="VN", bonded_status="bonded"
            ),
        ],
    )


def flow_events() -> list[builders.Event]:
    """Discharge at h0; durian inspected (asks for disinfection), disinfected, trace code, entered, released
    600 then 300 of 1000 KGM and onward by rail; seafood entered and released with no inspection at all."""
    sea = multimodal.conveyance("rail", train="X9101")
    return [
        multimodal.discharge(
            t=h(0),
            lot=DURIAN,
            quantity=1000,
            uom="KGM",
            location=PORT,
            container=CONTAINER,
            vessel="IMO9876543",
        ),
        multimodal.discharge(
            t=h(0), lot=SEAFOOD, quantity=500, uom="KGM", location=PORT, container=CONTAINER
        ),
        multimodal.inspection_result(
            t=h(1),
            lot=DURIAN,
            quantity=1000,
            uom="KGM",
            conformant=True,
            certificates=["CIQ-2604-001", "PHY-TH-88"],
            site=SITE,
            location=INSPECTION_SITE,
            disinfection_required=True,
        ),
        multimodal.disinfection(
            t=h(1.5), lot=DURIAN, quantity=1000, uom="KGM", site=SITE, location=INSPECTION_SITE
        ),
        multimodal.first_line_entry(t=h(2), lot=DURIAN, quantity=1000, uom="KGM", location=BONDED_STORE),
        multimodal.first_line_entry(t=h(2), lot=SEAFOOD, quantity=500, uom="KGM", location=BONDED_STORE),
        multimodal.trace_code_issue(
            t=h(2.5), lot=DURIAN, code=TRACE_CODE, site=FIRST_SITE, location=BONDED_STORE
        ),
        multimodal.second_line_release(t=h(4), lot=DURIAN, quantity=600, uom="KGM", location=BONDED_STORE),
        multimodal.second_line_release(t=h(5), lot=SEAFOOD, quantity=500, uom="KGM", location=BONDED_STORE),
        multimodal.second_line_release(t=h(30), lot=DURIAN, quantity=300, uom="KGM", location=BONDED_STORE),
        multimodal.onward(
            t=h(31), lot=DURIAN, quantity=900, uom="KGM", location=BONDED_GATE, conveyance_ext=sea
        ),
    ]


def seed_flow(conn: psycopg.Connection[Any]) -> None:
    seed_registry(conn)
    chain.append_many(conn, flow_events())
    conn.commit()

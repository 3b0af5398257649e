"""Tests: the one builder of geofence events (multimodal.geofence_event): valid EPCIS, the agreed fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from traceability.epcis import builders, multimodal
from traceability.ledger import chain

T = datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
PORT = "urn:epc:id:sgln:6901234.00010.0"
BOX = "urn:epc:id:bic:CSQU3054383"
LOT = "urn:epc:class:lgtin:6901234.012345.DUR1"


def test_arriving_over_the_asset_with_the_through_document() -> None:
    e = multimodal.geofence_event(
        t=T,
        direction="enter",
        location=PORT,
        asset_id="REEFER-1",
        asset_epc=BOX,
        shipment_id="SHP-1",
        transactions=multimodal.biz_transactions(through_document="TD-1"),
    )
    chain.validate_all([e])
    assert (e["type"], e["bizStep"], e["disposition"]) == ("ObjectEvent", "arriving", "in_progress")
    assert e["eventTime"] == "2026-01-01T08:30:00.000Z"
    assert e["readPoint"] == e["bizLocation"] == {"id": PORT}
    assert e["epcList"] == [BOX]
    assert e["bizTransactionList"] == [
        {
            "type": multimodal.BTT_THROUGH_DOCUMENT,
            "bizTransaction": multimodal.document_uri("through", "TD-1"),
        }
    ]
    assert (e["cc:geofence"], e["cc:asset"], e["cc:shipment"]) == ("enter", "REEFER-1", "SHP-1")
    assert e["eventID"] == builders.event_hash({k: v for k, v in e.items() if k != "eventID"})


def test_departing_over_the_lots_without_a_location() -> None:
    e = multimodal.geofence_event(
        t=T,
        direction="exit",
        location=PORT,
        asset_id="TRUCK-1",
        shipment_id="SHP-1",
        lots=[builders.quantity(LOT, 1200, "KGM")],
    )
    chain.validate_all([e])
    assert (e["bizStep"], e["disposition"]) == ("departing", "in_transit")
    assert "bizLocation" not in e
    assert "epcList" not in e
    assert e["quantityList"] == [{"epcClass": LOT, "quantity": 1200, "uom": "KGM"}]
    assert "bizTransactionList" not in e, "no document given"


def test_every_document_of_the_shipment_is_a_biz_transaction() -> None:
    documents = multimodal.biz_transactions(
        bill_of_lading="BL-1", rail_waybill="RW-1", through_document="TD/2026/1", road_waybill="RD-1"
    )
    e = multimodal.geofence_event(
        t=T, direction="exit", location=PORT, asset_id="R", asset_epc=BOX, transactions=documents
    )
    chain.validate_all([e])
    assert e["bizTransactionList"] == documents
    assert {multimodal.document_number(t["bizTransaction"]) for t in e["bizTransactionList"]} == {
        ("bl", "BL-1"),
        ("waybill", "RW-1"),
        ("through", "TD/2026/1"),
        ("road_waybill", "RD-1"),
    }


def test_a_superseding_event_is_another_event_of_the_same_crossing() -> None:
    first = multimodal.geofence_event(t=T, direction="enter", location=PORT, asset_id="R", asset_epc=BOX)
    again = multimodal.geofence_event(
        t=T, direction="enter", location=PORT, asset_id="R", asset_epc=BOX, supersedes=first["eventID"]
    )
    chain.validate_all([again])
    assert again[multimodal.SUPERSEDES_KEY] == first["eventID"]
    assert again["eventID"] != first["eventID"]
    assert {k: v for k, v in again.items() if k not in ("eventID", multimodal.SUPERSEDES_KEY)} == {
        k: v for k, v in first.items() if k != "eventID"
    }


def test_without_a_shipment_there_is_no_shipment_field() -> None:
    e = multimodal.geofence_event(t=T, direction="enter", location=PORT, asset_id="R", asset_epc=BOX)
    assert "cc:shipment" not in e
    assert "bizTransactionList" not in e


def test_refusals() -> None:
    with pytest.raises(ValueError, match="direction"):
        multimodal.geofence_event(t=T, direction="in", location=PORT, asset_id="R", asset_epc=BOX)
    with pytest.raises(ValueError, match="nothing to report on"):
        multimodal.geofence_event(t=T, direction="enter", location=PORT, asset_id="R")

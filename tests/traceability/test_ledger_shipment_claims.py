"""Tests: the shipments a document's events name are created and filled together exactly as one by one."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry import shipments as registry_shipments
from registry import store
from registry.models import Lot, Party, Shipment, ShipmentLeg, ShipmentLot
from traceability.ledger import shipments
from traceability.ledger.shipments import Claim

Conn = psycopg.Connection[Any]
CARRIER = Party("6901234100006", "Beibu Gulf Reefer", "carrier")
LOTS = [Lot(f"urn:epc:class:lgtin:8850000.012345.L{n}", "durian") for n in range(3)]
UNREGISTERED = "urn:epc:class:lgtin:8850000.012345.NONE"
THROUGH, BL, RAIL = ["T1", "T2", "T3", "T4"], ["B1", "B2"], ["W1", "W2"]


@pytest.fixture
def tx(db_url: str) -> Any:
    """A connection in a transaction, over a registry of one carrier and three lots."""
    with psycopg.connect(db_url) as conn:
        store.add_parties(conn, [CARRIER])
        store.add_lots(conn, LOTS)
        conn.commit()
        yield conn


def _leg(carrier: str | None, container: str = "CSQU3054383") -> ShipmentLeg:
    return ShipmentLeg(1, "sea", carrier, container_number=container, vessel="Beibu 1")


legs = st.one_of(
    st.none(),
    st.builds(_leg, st.sampled_from([CARRIER.party_id, None, "6901234999999"])),  # the last: no such party
)
claims = st.builds(
    Claim,
    st.sampled_from(THROUGH),
    st.one_of(st.none(), st.sampled_from(BL)),
    st.one_of(st.none(), st.sampled_from(RAIL)),
    st.none(),
    st.dictionaries(
        st.sampled_from([lot.lot_id for lot in LOTS] + [UNREGISTERED]),
        st.sampled_from([None, 10.0]),
        max_size=3,
    ).map(lambda lots: {lot: ShipmentLot(lot, q, "KGM" if q else None) for lot, q in lots.items()}),
    legs,
)
# Shipments in the registry before: the API's or the ledger's, some under the id the ledger would give a
# through document that they do not carry.
existing = st.lists(
    st.builds(
        lambda sid, through, bl, source, leg: Shipment(
            sid, through_document=through, bill_of_lading=bl, source=source, legs=(leg,) if leg else ()
        ),
        st.sampled_from(["SHP-1", "SHP-2", "TD-T1", "TD-T2"]),
        st.one_of(st.none(), st.sampled_from(THROUGH)),
        st.one_of(st.none(), st.sampled_from(BL)),
        st.sampled_from(["api", "epcis"]),
        st.one_of(st.none(), st.just(_leg(CARRIER.party_id, "CSQU1111112"))),
    ),
    max_size=3,
)


def _registry(conn: Conn) -> tuple[list[tuple[Any, ...]], ...]:
    return (
        conn.execute(
            "SELECT shipment_id, through_document, bill_of_lading, rail_waybill, road_waybill, source"
            " FROM shipment ORDER BY shipment_id"
        ).fetchall(),
        conn.execute(
            "SELECT shipment_id, leg_no, mode, carrier_party_id, container_number, vessel FROM shipment_leg"
            " ORDER BY shipment_id, leg_no"
        ).fetchall(),
        conn.execute(
            "SELECT shipment_id, lot_id, quantity, uom FROM shipment_lot ORDER BY shipment_id, lot_id"
        ).fetchall(),
    )


def _outcome(conn: Conn, before: list[Shipment], claimed: list[Claim], apply: Any) -> Any:
    """What ``apply`` makes of the claims over a registry holding ``before``; nothing of it stays."""
    with conn.transaction(force_rollback=True):
        for shipment in before:
            try:
                with conn.transaction():
                    registry_shipments.add_shipment(conn, shipment)
            except psycopg.errors.UniqueViolation:
                pass  # a through document taken by an earlier one: that shipment is not there
        created = apply(conn, claimed)
        return created, _registry(conn)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=existing, claimed=st.lists(claims, max_size=5))
@example(  # two claims share a bill of lading: the second finds the shipment the first creates
    before=[],
    claimed=[Claim("T1", "B1", lots={LOTS[0].lot_id: ShipmentLot(LOTS[0].lot_id)}), Claim("T2", "B1")],
)
@example(before=[Shipment("TD-T1", through_document="T4")], claimed=[Claim("T1"), Claim("T2")])  # id taken
@example(  # a leg's carrier is no registered party
    before=[], claimed=[Claim("T1", leg=_leg("6901234999999")), Claim("T2", leg=_leg(None))]
)
def test_claims_applied_together_come_out_as_applied_one_by_one(
    tx: Conn, before: list[Shipment], claimed: list[Claim]
) -> None:
    together = _outcome(tx, before, claimed, shipments.apply)
    assert together == _outcome(tx, before, claimed, shipments.apply_each)


def test_claims_that_share_no_number_are_applied_in_a_few_statements(tx: Conn) -> None:
    """The batch path itself (not the one-by-one fallback) writes what one by one would."""
    claimed = [
        Claim("T1", "B1", lots={LOTS[0].lot_id: ShipmentLot(LOTS[0].lot_id, 5.0, "KGM")}, leg=_leg(None)),
        Claim("T2", rail_waybill="W1", lots={UNREGISTERED: ShipmentLot(UNREGISTERED)}),
        Claim("T3", lots={LOTS[1].lot_id: ShipmentLot(LOTS[1].lot_id)}, leg=_leg(CARRIER.party_id)),
    ]
    before = [Shipment("TD-T3", through_document="T3", source="epcis")]
    batch = shipments._apply_together
    together = _outcome(tx, before, claimed, lambda conn, c: batch(conn, shipments.merge(c)))
    assert together == _outcome(tx, before, claimed, shipments.apply_each)
    created, (rows, legs_, lots) = together
    assert created == ["TD-T1", "TD-T2"]
    assert [r[0] for r in rows] == ["TD-T1", "TD-T2", "TD-T3"]
    assert ("TD-T3", 1, "sea", CARRIER.party_id, "CSQU3054383", "Beibu 1") in legs_
    assert ("TD-T1", LOTS[0].lot_id, 5.0, "KGM") in lots
    assert ("TD-T3", LOTS[1].lot_id, None, None) in lots
    assert all(lot[1] != UNREGISTERED for lot in lots)

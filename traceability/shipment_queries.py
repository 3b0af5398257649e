"""Stage 3, trace: the SQL serving shipments, each filtered by what the caller sees (cc_sees_shipment)."""

from __future__ import annotations

from typing import Final

# The shipments the caller sees, newest first, with the state the ledger gives them (shipment_state).
SHIPMENTS: Final = """
SELECT s.shipment_id, s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill,
       s.shipper_party_id, s.consignee_party_id, s.product_class, s.origin_location_id,
       s.destination_location_id, s.planned_start, s.planned_end, s.source, st.state
FROM shipment s
JOIN shipment_state st USING (shipment_id)
WHERE cc_sees_shipment(%(role)s, %(party)s, s.shipment_id)
  AND (%(state)s::text IS NULL OR st.state = %(state)s)
  AND (%(lot)s::text IS NULL OR EXISTS (
        SELECT 1 FROM shipment_lot sl WHERE sl.shipment_id = s.shipment_id AND sl.lot_id = %(lot)s))
ORDER BY s.created_at DESC, s.shipment_id
LIMIT %(limit)s"""

# One shipment's state and the times it reached each, when the caller sees it (no row: unknown or unseen).
SHIPMENT_STATE: Final = """
SELECT state, departed_at, arrived_at, delivered_at, closed_at FROM shipment_state
WHERE shipment_id = %(shipment_id)s AND cc_sees_shipment(%(role)s, %(party)s, %(shipment_id)s)"""

SEES_SHIPMENT: Final = "SELECT cc_sees_shipment(%(role)s, %(party)s, %(shipment_id)s)"

# The shipments that carried a lot and the caller sees, by planned start: those listing it (with its quantity)
# and those whose through document, B/L or rail waybill one of the lot's events (at %(seqs)s) names.
SHIPMENTS_OF_LOT: Final = """
WITH named AS (
    SELECT DISTINCT bt ->> 'bizTransaction' AS uri
    FROM ledger_event e, jsonb_array_elements(coalesce(e.event -> 'bizTransactionList', '[]')) AS bt
    WHERE e.seq = ANY(%(seqs)s)
),
linked AS (
    SELECT shipment_id, quantity, uom FROM shipment_lot WHERE lot_id = %(lot)s
    UNION ALL
    SELECT s.shipment_id, NULL, NULL FROM shipment s
    WHERE EXISTS (SELECT 1 FROM named WHERE named.uri IN (
        cc_document_uri('through', s.through_document),
        cc_document_uri('bl', s.bill_of_lading),
        cc_document_uri('waybill', s.rail_waybill)))
),
one AS (SELECT DISTINCT ON (shipment_id) * FROM linked ORDER BY shipment_id, quantity IS NULL)
SELECT s.shipment_id, s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill,
       s.origin_location_id, s.destination_location_id, s.planned_start, s.planned_end, st.state,
       one.quantity, one.uom
FROM one
JOIN shipment s USING (shipment_id)
JOIN shipment_state st USING (shipment_id)
WHERE cc_sees_shipment(%(role)s, %(party)s, s.shipment_id)
ORDER BY s.planned_start NULLS LAST, s.shipment_id"""

LEGS_OF_SHIPMENTS: Final = """
SELECT l.shipment_id, l.leg_no, l.mode, l.carrier_party_id, p.name, l.asset_id, l.container_number, l.vessel,
       l.voyage, l.train, l.truck_plate, l.from_location_id, l.to_location_id, l.planned_start, l.planned_end
FROM shipment_leg l LEFT JOIN party p ON p.party_id = l.carrier_party_id
WHERE l.shipment_id = ANY(%s)
ORDER BY l.shipment_id, l.leg_no"""

# What a product class allows as the rules stage published it from its pack: the range and the tightest
# recording interval over every mode (least() skips the modes the pack gives none for).
CLASS_BOUNDS: Final = """
SELECT product_class, low_c, high_c,
       least(storage_max_gap_s, transport_max_gap_s, road_max_gap_s, rail_max_gap_s, sea_max_gap_s)
FROM rule_class WHERE product_class = %s"""

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

# Whether the caller may change a shipment it sees as a whole (close it, add the shipper's profile): the roles
# that read everything, and the shipper's or the consignee's party (a carrier carries a leg, it does not own
# the shipment).
OWNS_SHIPMENT: Final = """
SELECT cc_sees_all(%(role)s) OR (%(role)s = 'shipper' AND EXISTS (
    SELECT 1 FROM shipment WHERE shipment_id = %(shipment_id)s
      AND %(party)s IN (shipper_party_id, consignee_party_id)))"""

# What a new shipment names that the caller does not see already, as (what, which): a lot (cc_sees_lot); a
# leg's asset, or the registered asset carrying its container number as EPC, unless one window the caller sees
# it in (cc_asset_windows) covers the leg's planned window (%(leg_from)s / %(leg_to)s, NULL: unbounded); a
# document (%(kinds)s / %(numbers)s, cc_document_uri) that a shipment holds or a ledger event names. Linking
# any of them would show the caller what it does not see; none for the roles that read everything.
UNSEEN_REFERENCES: Final = """
SELECT 'lot', x FROM unnest(%(lots)s::text[]) x WHERE NOT cc_sees_lot(%(role)s, %(party)s, x)
UNION ALL
SELECT 'asset', coalesce(l.asset_id, l.container)
FROM unnest(%(leg_assets)s::text[], %(leg_containers)s::text[], %(leg_from)s::timestamptz[],
            %(leg_to)s::timestamptz[]) AS l (asset_id, container, t_from, t_to)
LEFT JOIN asset a ON a.asset_id = l.asset_id OR a.epc = 'urn:epc:id:bic:' || l.container
WHERE NOT cc_sees_all(%(role)s)
  AND ((a.asset_id IS NULL AND l.asset_id IS NOT NULL)
       OR (a.asset_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM cc_asset_windows(%(role)s, %(party)s, a.asset_id) w
               WHERE w.t_from <= coalesce(l.t_from, '-infinity') AND coalesce(l.t_to, 'infinity') <= w.t_to)))
UNION ALL
SELECT d.kind, d.number FROM unnest(%(kinds)s::text[], %(numbers)s::text[]) AS d (kind, number)
WHERE NOT cc_sees_document(%(role)s, %(party)s, cc_document_uri(d.kind, d.number))
  AND (EXISTS (SELECT 1 FROM shipment s WHERE cc_document_uri(d.kind, d.number) = ANY (cc_shipment_documents(
                   s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill)))
       OR EXISTS (SELECT 1 FROM biz_transaction b
                  WHERE b.biz_transaction = cc_document_uri(d.kind, d.number)))"""

SEES_ALL: Final = "SELECT cc_sees_all(%(role)s)"

# The shipments that carried a lot and the caller sees, by planned start: those listing it (with its quantity)
# and those one of whose documents (cc_shipment_documents) one of the lot's events (at %(seqs)s) names.
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
    WHERE EXISTS (SELECT 1 FROM named WHERE named.uri = ANY (cc_shipment_documents(
        s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill)))
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

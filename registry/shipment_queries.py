"""Stage 0½, reference data: the SQL that writes and reads shipments and geofences."""

from __future__ import annotations

from typing import Final

INSERT_SHIPMENT: Final = """
INSERT INTO shipment (shipment_id, through_document, bill_of_lading, rail_waybill, road_waybill,
                      shipper_party_id, consignee_party_id, product_class, origin_location_id,
                      destination_location_id, planned_start, planned_end, source, closed_at)
VALUES (%(shipment_id)s, %(through_document)s, %(bill_of_lading)s, %(rail_waybill)s, %(road_waybill)s,
        %(shipper_party_id)s, %(consignee_party_id)s, %(product_class)s, %(origin_location_id)s,
        %(destination_location_id)s, %(planned_start)s, %(planned_end)s, %(source)s, %(closed_at)s)
ON CONFLICT (shipment_id) DO NOTHING"""

# Which of the given shipment ids exist.
EXISTING_SHIPMENTS: Final = "SELECT shipment_id FROM shipment WHERE shipment_id = ANY(%s)"

INSERT_LEG: Final = """
INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id, container_number, vessel,
                          voyage, train, truck_plate, from_location_id, to_location_id, planned_start,
                          planned_end)
VALUES (%(shipment_id)s, %(leg_no)s, %(mode)s, %(carrier_party_id)s, %(asset_id)s, %(container_number)s,
        %(vessel)s, %(voyage)s, %(train)s, %(truck_plate)s, %(from_location_id)s, %(to_location_id)s,
        %(planned_start)s, %(planned_end)s)"""

# A shipment's first leg, when it has no leg yet (a shipment the ledger created before an event named its
# conveyance).
INSERT_FIRST_LEG: Final = """
INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id, container_number, vessel,
                          voyage, train, truck_plate, from_location_id, to_location_id, planned_start,
                          planned_end)
SELECT %(shipment_id)s, %(leg_no)s, %(mode)s, %(carrier_party_id)s, %(asset_id)s, %(container_number)s,
       %(vessel)s, %(voyage)s, %(train)s, %(truck_plate)s, %(from_location_id)s, %(to_location_id)s,
       %(planned_start)s, %(planned_end)s
WHERE NOT EXISTS (SELECT 1 FROM shipment_leg WHERE shipment_id = %(shipment_id)s)
ON CONFLICT DO NOTHING"""

INSERT_STOP: Final = "INSERT INTO shipment_stop (shipment_id, stop_no, location_id) VALUES (%s, %s, %s)"

INSERT_SHIPMENT_LOT: Final = """
INSERT INTO shipment_lot (shipment_id, lot_id, quantity, uom) VALUES (%s, %s, %s, %s)"""

UPSERT_GEOFENCE: Final = """
INSERT INTO geofence (location_id, shape, center_lat, center_lon, radius_m, polygon)
VALUES (%(location_id)s, %(shape)s, %(center_lat)s, %(center_lon)s, %(radius_m)s, %(polygon)s::jsonb)
ON CONFLICT (location_id) DO UPDATE SET
    shape = EXCLUDED.shape, center_lat = EXCLUDED.center_lat, center_lon = EXCLUDED.center_lon,
    radius_m = EXCLUDED.radius_m, polygon = EXCLUDED.polygon"""

GEOFENCES: Final = """
SELECT location_id, shape, center_lat, center_lon, radius_m, polygon FROM geofence ORDER BY location_id"""

SHIPMENT_OF_ASSET: Final = "SELECT shipment_of_asset(%s, %s)"

SHIPMENT: Final = """
SELECT shipment_id, through_document, bill_of_lading, rail_waybill, road_waybill, shipper_party_id,
       consignee_party_id, product_class, origin_location_id, destination_location_id, planned_start,
       planned_end, source, closed_at
FROM shipment WHERE shipment_id = %s"""

LEGS: Final = """
SELECT leg_no, mode, carrier_party_id, asset_id, container_number, vessel, voyage, train, truck_plate,
       from_location_id, to_location_id, planned_start, planned_end
FROM shipment_leg WHERE shipment_id = %s ORDER BY leg_no"""

STOPS: Final = "SELECT location_id FROM shipment_stop WHERE shipment_id = %s ORDER BY stop_no"

LOTS: Final = "SELECT lot_id, quantity, uom FROM shipment_lot WHERE shipment_id = %s ORDER BY lot_id"

# For each set of numbers (the arrays' n-th elements, n from 1), the shipment its through document, bill of
# lading or waybill number names (the through document first); sets that name none have no row.
SHIPMENTS_BY_DOCUMENTS: Final = """
SELECT d.n, s.shipment_id, s.source
FROM unnest(%(through)s::text[], %(bl)s::text[], %(rail)s::text[], %(road)s::text[])
     WITH ORDINALITY AS d (through, bl, rail, road, n)
CROSS JOIN LATERAL (
    SELECT shipment_id, source FROM shipment
    WHERE through_document = d.through OR bill_of_lading = d.bl OR rail_waybill = d.rail
       OR road_waybill = d.road
    ORDER BY (through_document = d.through) IS TRUE DESC, shipment_id
    LIMIT 1
) s"""

# A shipment's lots, the registered ones only; a lot it carries already keeps its quantity.
LINK_LOTS: Final = """
INSERT INTO shipment_lot (shipment_id, lot_id, quantity, uom)
SELECT %(shipment_id)s, lot.lot_id, q.quantity, q.uom
FROM unnest(%(lots)s::text[], %(quantities)s::float8[], %(uoms)s::text[]) AS q (lot_id, quantity, uom)
JOIN lot ON lot.lot_id = q.lot_id
ON CONFLICT (shipment_id, lot_id) DO NOTHING"""

CLOSE_SHIPMENT: Final = """
UPDATE shipment SET closed_at = %(at)s WHERE shipment_id = %(shipment_id)s AND closed_at IS NULL
RETURNING closed_at"""

CLOSED_AT: Final = "SELECT closed_at FROM shipment WHERE shipment_id = %s"

PROFILES: Final = """
SELECT version, source, low_c, high_c, max_gap_s FROM shipment_profile WHERE shipment_id = %s
ORDER BY version"""

# The next version of a shipment's profile; the row lock on the shipment keeps two writers from taking the
# same number.
ADD_PROFILE: Final = """
WITH s AS (SELECT shipment_id FROM shipment WHERE shipment_id = %(shipment_id)s FOR UPDATE)
INSERT INTO shipment_profile (shipment_id, version, low_c, high_c, max_gap_s, source)
SELECT s.shipment_id,
       1 + coalesce((SELECT max(version) FROM shipment_profile p WHERE p.shipment_id = s.shipment_id), 0),
       %(low_c)s, %(high_c)s, %(max_gap_s)s, %(source)s
FROM s
RETURNING version"""

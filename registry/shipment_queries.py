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

INSERT_LEG: Final = """
INSERT INTO shipment_leg (shipment_id, leg_no, mode, carrier_party_id, asset_id, container_number, vessel,
                          voyage, train, truck_plate, from_location_id, to_location_id, planned_start,
                          planned_end)
VALUES (%(shipment_id)s, %(leg_no)s, %(mode)s, %(carrier_party_id)s, %(asset_id)s, %(container_number)s,
        %(vessel)s, %(voyage)s, %(train)s, %(truck_plate)s, %(from_location_id)s, %(to_location_id)s,
        %(planned_start)s, %(planned_end)s)"""

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

"""Stage 0½, reference data: the registry's SQL, the only statements that write its tables."""

from __future__ import annotations

from typing import Final

# Bulk adds: one statement per table, a column array per parameter; existing keys are kept.
# Foreign keys within one statement (a location's parent, an asset's parent) are checked at its end.
ADD_PARTIES: Final = """
INSERT INTO party (party_id, name, role)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
ON CONFLICT DO NOTHING"""

ADD_LOCATIONS: Final = """
INSERT INTO location (location_id, name, kind, party_id, parent_location_id, lat, lon)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::double precision[], %s::double precision[])
ON CONFLICT DO NOTHING"""

ADD_ASSETS: Final = """
INSERT INTO asset (asset_id, kind, name, epc, parent_asset_id, operator_party_id, location_id,
                   product_class, mode, probe)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::text[], %s::text[])
ON CONFLICT DO NOTHING"""

ADD_DEVICES: Final = """
INSERT INTO device (device_id, kind, accuracy_c, status, calibration_due)
SELECT * FROM unnest(%s::text[], %s::text[], %s::double precision[], %s::text[], %s::date[])
ON CONFLICT DO NOTHING"""

ADD_MOUNTS: Final = """
INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])
ON CONFLICT DO NOTHING"""

ADD_LOTS: Final = """
INSERT INTO lot (lot_id, product_class, gtin, batch, description, origin_country, hs_code, bonded_status,
                 owner_party_id)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::text[])
ON CONFLICT DO NOTHING"""

# Single-row upserts: insert, or overwrite every column of the row already there.
UPSERT_PARTY: Final = """
INSERT INTO party (party_id, name, role) VALUES (%(party_id)s, %(name)s, %(role)s)
ON CONFLICT (party_id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role"""

UPSERT_LOCATION: Final = """
INSERT INTO location (location_id, name, kind, party_id, parent_location_id, lat, lon)
VALUES (%(location_id)s, %(name)s, %(kind)s, %(party_id)s, %(parent_location_id)s, %(lat)s, %(lon)s)
ON CONFLICT (location_id) DO UPDATE SET
    name = EXCLUDED.name, kind = EXCLUDED.kind, party_id = EXCLUDED.party_id,
    parent_location_id = EXCLUDED.parent_location_id, lat = EXCLUDED.lat, lon = EXCLUDED.lon"""

UPSERT_ASSET: Final = """
INSERT INTO asset (asset_id, kind, name, epc, parent_asset_id, operator_party_id, location_id,
                   product_class, mode, probe)
VALUES (%(asset_id)s, %(kind)s, %(name)s, %(epc)s, %(parent_asset_id)s, %(operator_party_id)s,
        %(location_id)s, %(product_class)s, %(mode)s, %(probe)s)
ON CONFLICT (asset_id) DO UPDATE SET
    kind = EXCLUDED.kind, name = EXCLUDED.name, epc = EXCLUDED.epc,
    parent_asset_id = EXCLUDED.parent_asset_id,
    operator_party_id = EXCLUDED.operator_party_id, location_id = EXCLUDED.location_id,
    product_class = EXCLUDED.product_class, mode = EXCLUDED.mode, probe = EXCLUDED.probe"""

UPSERT_DEVICE: Final = """
INSERT INTO device (device_id, kind, accuracy_c, status, calibration_due)
VALUES (%(device_id)s, %(kind)s, %(accuracy_c)s, %(status)s, %(calibration_due)s)
ON CONFLICT (device_id) DO UPDATE SET
    kind = EXCLUDED.kind, accuracy_c = EXCLUDED.accuracy_c, status = EXCLUDED.status,
    calibration_due = EXCLUDED.calibration_due"""

UPSERT_LOT: Final = """
INSERT INTO lot (lot_id, product_class, gtin, batch, description, origin_country, hs_code, bonded_status,
                 owner_party_id)
VALUES (%(lot_id)s, %(product_class)s, %(gtin)s, %(batch)s, %(description)s, %(origin_country)s,
        %(hs_code)s, %(bonded_status)s, %(owner_party_id)s)
ON CONFLICT (lot_id) DO UPDATE SET
    product_class = EXCLUDED.product_class, gtin = EXCLUDED.gtin, batch = EXCLUDED.batch,
    description = EXCLUDED.description, origin_country = EXCLUDED.origin_country,
    hs_code = EXCLUDED.hs_code, bonded_status = EXCLUDED.bonded_status,
    owner_party_id = EXCLUDED.owner_party_id"""

# An operator enrols a device: a new one is inserted, a known one takes the kind and is active again;
# its accuracy and calibration date stay as they were.
ENROL_DEVICE: Final = """
INSERT INTO device (device_id, kind) VALUES (%s, %s)
ON CONFLICT (device_id) DO UPDATE SET kind = EXCLUDED.kind, status = 'active'"""

CLOSE_MOUNT: Final = "UPDATE device_mount SET valid_to = %s WHERE device_id = %s AND valid_to IS NULL"
OPEN_MOUNT: Final = "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES (%s, %s, %s)"

INSERT_SERIES: Final = """
INSERT INTO series (device_id, channel)
SELECT d, c FROM unnest(%s::text[], %s::text[]) AS u(d, c)
ON CONFLICT (device_id, channel) DO NOTHING"""
SELECT_SERIES: Final = """
SELECT s.series_id, s.device_id, s.channel
FROM series s JOIN unnest(%s::text[], %s::text[]) AS u(d, c) ON s.device_id = u.d AND s.channel = u.c"""

# Reads: the columns in the order of the record types' fields.
SELECT_PARTY: Final = "SELECT party_id, name, role FROM party WHERE party_id = %s"
SELECT_LOCATION: Final = """
SELECT location_id, name, kind, party_id, parent_location_id, lat, lon FROM location WHERE location_id = %s"""
SELECT_ASSET: Final = """
SELECT asset_id, kind, name, epc, parent_asset_id, operator_party_id, location_id, product_class, mode,
       probe
FROM asset WHERE asset_id = %s"""
# The transport mode an asset's recording interval is chosen by (registry/migrations/0003).
SELECT_TRANSPORT_MODE: Final = "SELECT asset_transport_mode(%s)"
SELECT_DEVICE: Final = """
SELECT device_id, kind, accuracy_c, status, calibration_due FROM device WHERE device_id = %s"""
SELECT_LOT: Final = """
SELECT lot_id, product_class, gtin, batch, description, origin_country, hs_code, bonded_status, owner_party_id
FROM lot WHERE lot_id = %s"""
SELECT_MOUNTS: Final = """
SELECT device_id, asset_id, valid_from, valid_to FROM device_mount WHERE device_id = %s ORDER BY valid_from"""
SELECT_DEVICE_STATUSES: Final = "SELECT device_id, status FROM device WHERE device_id = ANY(%s)"
SELECT_ALL_SERIES: Final = "SELECT series_id, device_id, channel FROM series ORDER BY device_id, channel"

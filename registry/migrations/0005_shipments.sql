-- Stage 0½, reference data: shipments (the through document 一单制 and its legs, stops and lots), geofences on
-- locations, the party a lot belongs to, and a shipper's per-shipment alarm profile.

-- A location's geofence: a circle (centre and radius) or a polygon (a closed ring of [lon, lat] pairs, WGS 84,
-- the GeoJSON order). A location has at most one; a point on the boundary is inside.
CREATE TABLE geofence (
    location_id text PRIMARY KEY REFERENCES location,
    shape       text NOT NULL CHECK (shape IN ('circle', 'polygon')),
    center_lat  double precision CHECK (center_lat BETWEEN -90 AND 90),
    center_lon  double precision CHECK (center_lon BETWEEN -180 AND 180),
    radius_m    double precision CHECK (radius_m > 0),
    polygon     jsonb,                          -- [[lon, lat], ...], at least 3 distinct vertices
    CHECK (
        (shape = 'circle' AND center_lat IS NOT NULL AND center_lon IS NOT NULL AND radius_m IS NOT NULL
            AND polygon IS NULL)
        OR (shape = 'polygon' AND polygon IS NOT NULL AND jsonb_typeof(polygon) = 'array'
            AND jsonb_array_length(polygon) >= 3 AND radius_m IS NULL)
    )
);

-- The party a lot belongs to (its owner: the shipper or importer who registered it); NULL: not stated.
ALTER TABLE lot ADD COLUMN owner_party_id text REFERENCES party;
CREATE INDEX lot_owner ON lot (owner_party_id) WHERE owner_party_id IS NOT NULL;

-- A shipment: what a carrier is paid for, a customs officer clears and a regulator scores. Its through
-- document (一单制) links the ocean bill of lading, the rail waybill and the road waybill.
-- State (planned, in_transit, arrived, delivered, closed) is not stored here: it follows the shipment's EPCIS
-- events and geofence crossings (derived by the ledger stage); `closed_at` is the one state set by hand.
CREATE TABLE shipment (
    shipment_id        text PRIMARY KEY,         -- internal code, e.g. SHP-2026-0001
    through_document   text UNIQUE,              -- 一单制 number
    bill_of_lading     text,
    rail_waybill       text,
    road_waybill       text,
    shipper_party_id   text REFERENCES party,
    consignee_party_id text REFERENCES party,
    product_class      text,                     -- class code from a rule pack
    origin_location_id      text REFERENCES location,
    destination_location_id text REFERENCES location,
    planned_start      timestamptz,
    planned_end        timestamptz,
    source             text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'cli', 'epcis', 'seed')),
    closed_at          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (planned_end IS NULL OR planned_start IS NULL OR planned_end > planned_start)
);
CREATE INDEX shipment_bol ON shipment (bill_of_lading) WHERE bill_of_lading IS NOT NULL;
CREATE INDEX shipment_rail_waybill ON shipment (rail_waybill) WHERE rail_waybill IS NOT NULL;
CREATE INDEX shipment_road_waybill ON shipment (road_waybill) WHERE road_waybill IS NOT NULL;
CREATE INDEX shipment_shipper ON shipment (shipper_party_id);
CREATE INDEX shipment_consignee ON shipment (consignee_party_id);

-- A leg: one mode, one carrier, one conveyance. A container (ISO 6346, kept from origin to market: 一箱到底)
-- may ride a vessel's voyage, a train and a truck; `asset_id` is the registered asset carrying the goods on
-- this leg (the container, the truck, the cold room) when it is registered.
CREATE TABLE shipment_leg (
    shipment_id      text NOT NULL REFERENCES shipment ON DELETE CASCADE,
    leg_no           integer NOT NULL CHECK (leg_no >= 1),
    mode             text NOT NULL CHECK (mode IN ('sea', 'rail', 'road', 'cold_store')),
    carrier_party_id text REFERENCES party,
    asset_id         text REFERENCES asset,
    container_number text,                       -- ISO 6346, check digit validated by the writer
    vessel           text,
    voyage           text,
    train            text,
    truck_plate      text,
    from_location_id text REFERENCES location,
    to_location_id   text REFERENCES location,
    planned_start    timestamptz,
    planned_end      timestamptz,
    PRIMARY KEY (shipment_id, leg_no)
);
CREATE INDEX shipment_leg_carrier ON shipment_leg (carrier_party_id);
CREATE INDEX shipment_leg_asset ON shipment_leg (asset_id) WHERE asset_id IS NOT NULL;
CREATE INDEX shipment_leg_container ON shipment_leg (container_number) WHERE container_number IS NOT NULL;

-- Stops between origin and destination, in order (each a location, usually with a geofence).
CREATE TABLE shipment_stop (
    shipment_id text NOT NULL REFERENCES shipment ON DELETE CASCADE,
    stop_no     integer NOT NULL CHECK (stop_no >= 1),
    location_id text NOT NULL REFERENCES location,
    PRIMARY KEY (shipment_id, stop_no)
);

-- The lots a shipment carries, with their quantities.
CREATE TABLE shipment_lot (
    shipment_id text NOT NULL REFERENCES shipment ON DELETE CASCADE,
    lot_id      text NOT NULL REFERENCES lot,
    quantity    double precision CHECK (quantity > 0),
    uom         text,                            -- UN/CEFACT code as in EPCIS quantityList (KGM, CT, ...)
    PRIMARY KEY (shipment_id, lot_id)
);
CREATE INDEX shipment_lot_lot ON shipment_lot (lot_id);

-- A shipper's alarm profile for one shipment: its specification, tighter than the class and never looser
-- (checked by the writer against the rule pack), versioned; the newest version applies, every version is kept.
CREATE TABLE shipment_profile (
    shipment_id text NOT NULL REFERENCES shipment ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    low_c       double precision,
    high_c      double precision,
    max_gap_s   double precision CHECK (max_gap_s > 0),
    source      text NOT NULL,                   -- the shipper's specification it cites (document, clause)
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shipment_id, version),
    CHECK (low_c IS NULL OR high_c IS NULL OR low_c < high_c)
);

-- The shipment an asset carries goods for at `at`: a leg naming the asset (or, for a container asset, its
-- ISO 6346 number) whose planned window holds `at`, else the shipment not closed at `at` with such a leg
-- whose planned start is latest before `at`. NULL when none. The one mapping from an asset to its shipment.
CREATE FUNCTION shipment_of_asset(p_asset_id text, p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
SELECT s.shipment_id
FROM shipment s
JOIN shipment_leg l USING (shipment_id)
LEFT JOIN asset a ON a.asset_id = p_asset_id
WHERE (l.asset_id = p_asset_id
       OR (l.container_number IS NOT NULL AND a.epc = 'urn:epc:id:bic:' || l.container_number))
  AND (s.closed_at IS NULL OR s.closed_at > p_at)
  AND coalesce(l.planned_start, s.planned_start, '-infinity') <= p_at
ORDER BY (p_at < coalesce(l.planned_end, s.planned_end, 'infinity')) DESC,
         coalesce(l.planned_start, s.planned_start) DESC NULLS LAST, s.shipment_id
LIMIT 1
$$;

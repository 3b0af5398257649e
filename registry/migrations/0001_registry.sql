-- Stage 0½, reference data: parties, locations, assets, devices, time-versioned mounts, series and lots.
CREATE TABLE party (
    party_id   text PRIMARY KEY,               -- GLN or internal code
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('shipper', 'carrier', 'cold_store', 'port', 'customs',
                                             'retailer', 'receiver', 'regulator', 'other'))
);

CREATE TABLE location (
    location_id text PRIMARY KEY,              -- SGLN EPC URI, e.g. urn:epc:id:sgln:6901234.00001.0
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('cold_store', 'dock_door', 'port', 'yard', 'bonded_zone',
                                              'rail_station', 'market', 'inspection_site', 'other')),
    party_id    text REFERENCES party,
    parent_location_id text REFERENCES location,
    lat         double precision,
    lon         double precision
);

CREATE TABLE asset (
    asset_id        text PRIMARY KEY,          -- internal code, e.g. TRUCK-GX-A12345
    epc             text UNIQUE,               -- GIAI / BIC EPC URI of the asset's own tag, if any
    kind            text NOT NULL CHECK (kind IN ('reefer_truck', 'truck_compartment', 'reefer_container',
                                                  'rail_wagon', 'vessel', 'cold_room', 'passive_box')),
    name            text NOT NULL,
    parent_asset_id text REFERENCES asset,
    operator_party_id text REFERENCES party,
    location_id     text REFERENCES location,  -- fixed assets (cold rooms) sit at a location
    product_class   text,                      -- configured rule profile (class code from a rule pack)
    mode            text NOT NULL DEFAULT 'transport' CHECK (mode IN ('storage', 'transport'))
);

CREATE TABLE device (
    device_id       text PRIMARY KEY,          -- the MQTT client id and topic segment
    kind            text NOT NULL CHECK (kind IN ('temp_logger', 'reefer_controller', 'rfid_reader',
                                                  'gps_tracker', 'gateway_box')),
    accuracy_c      double precision NOT NULL DEFAULT 0.5,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'decommissioned')),
    calibration_due date,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Which asset a device was mounted on, over time. valid_to NULL = still mounted.
CREATE TABLE device_mount (
    device_id  text NOT NULL REFERENCES device,
    asset_id   text NOT NULL REFERENCES asset,
    valid_from timestamptz NOT NULL,
    valid_to   timestamptz,
    PRIMARY KEY (device_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX device_mount_asset ON device_mount (asset_id, valid_from);

-- A series is one channel of one device: (device, channel) -> series_id.
CREATE TABLE series (
    series_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id text NOT NULL REFERENCES device,
    channel   text NOT NULL,                   -- temp, temp:2, rh, door, power, setpoint, lat, lon, ...
    UNIQUE (device_id, channel)
);

CREATE TABLE lot (
    lot_id        text PRIMARY KEY,            -- LGTIN class URI, e.g. urn:epc:class:lgtin:6901234.012345.L1
    gtin          text,
    batch         text,
    product_class text NOT NULL,               -- class code from a rule pack
    description   text,
    origin_country text,                       -- ISO 3166 alpha-2
    hs_code       text,
    bonded_status text CHECK (bonded_status IN ('bonded', 'released', 'domestic')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

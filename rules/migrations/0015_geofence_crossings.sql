-- Stage 2 (verdicts): assets crossing geofences, and the outbox that hands each crossing to the ledger.

-- An asset entering (its first position inside after one outside) or leaving (first position outside after
-- one inside) a location's geofence, on device time. Late positions re-judge the window they fall in: a
-- crossing they move is replaced (and the ledger's event of it corrected), one they remove is deleted (and
-- its event declared wrong), so the table holds the crossings the positions stored now make, once each.
-- Judged under the fence as it was when the positions were judged: changing a fence does not re-judge
-- positions already judged.
CREATE TABLE geofence_crossing (
    asset_id    text NOT NULL REFERENCES asset,
    location_id text NOT NULL REFERENCES location,
    direction   text NOT NULL CHECK (direction IN ('enter', 'exit')),
    crossed_at  timestamptz NOT NULL,             -- device time of the first position inside / outside
    device_id   text NOT NULL,                    -- the device whose position it was
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    judged_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, location_id, direction, crossed_at)
);
CREATE INDEX geofence_crossing_asset_time ON geofence_crossing (asset_id, crossed_at);

-- Transactional outbox to the ledger: one row per crossing added, moved or withdrawn (payload:
-- rules.models.CrossingPayload), written in the transaction that changes geofence_crossing; the ledger
-- stage takes rows FOR UPDATE SKIP LOCKED and deletes them in the transaction that appends their events.
CREATE TABLE geofence_outbox (
    outbox_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Stage 3 (ledger): indexes for the worker's and the trace query's lookups.
-- Open containment of a child (closed on every move) and goods inside an asset or at a location.
CREATE INDEX containment_open_child ON containment (child_id) WHERE t1 IS NULL;
CREATE INDEX containment_location ON containment (location_id, t0) WHERE location_id IS NOT NULL;
-- Custody legs held by an asset (excursions and chain breaks are joined on the asset).
CREATE INDEX custody_leg_asset ON custody_leg (asset_id, t_start);
-- Read points are looked up by their SGLN when a read event is appended.
CREATE INDEX read_point_read_point_id ON read_point (read_point_id);

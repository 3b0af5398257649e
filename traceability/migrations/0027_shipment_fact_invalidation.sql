-- Stage 3 (scorecards): drops the shipment facts (0026) whose registry rows or crossings change: a shipment
-- updated, a leg added, changed or removed, a mount during a fact's time on one of its assets (or on the
-- vehicle holding one, or on a compartment of one), an asset moved to another vehicle or naming another
-- probe, a crossing by one of its assets during its time added, moved or withdrawn. Geofences are not
-- here: a fact stores no fence, presence is read live. Dropping too many is safe (a shipment without a fact
-- is judged when read), dropping too few is not. Each trigger is statement-level with its transition
-- tables, so a batch of rows is one join; PostgreSQL allows transition tables only on a trigger with one
-- event and no column list, hence a trigger per event, its function choosing by TG_OP. An UPDATE drops
-- only for the rows it changed (old rows EXCEPT new rows, and new EXCEPT old): an upsert writing the same
-- values drops nothing.

-- A change that drops facts holds this lock (shared) to the end of its transaction; a judging pass holds it
-- exclusively before it reads anything (traceability.scorecards.facts). So a pass never judges from rows a
-- change in flight is replacing (it waits, then reads them changed), and a change never misses a fact a
-- pass in flight is writing (it waits, then drops it).
CREATE FUNCTION shipment_fact_hold() RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock_shared(hashtext('coldchain.shipment_fact'))
$$;

-- Compartments by their vehicle: the mount and asset triggers (and shipment_fact_marked) look them up.
CREATE INDEX asset_parent ON asset (parent_asset_id) WHERE parent_asset_id IS NOT NULL;

-- Every fact, when one of the tables is emptied.
CREATE FUNCTION shipment_fact_drop_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shipment_fact_hold();
    DELETE FROM shipment_fact;
    RETURN NULL;
END
$$;

-- A shipment updated: its fact (a deleted one takes its fact by the foreign key).
CREATE FUNCTION shipment_fact_drop_shipment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shipment_fact_hold();
    DELETE FROM shipment_fact f
    WHERE f.shipment_id IN (
        SELECT shipment_id FROM (SELECT * FROM sf_old EXCEPT SELECT * FROM sf_new) o
        UNION SELECT shipment_id FROM (SELECT * FROM sf_new EXCEPT SELECT * FROM sf_old) n);
    RETURN NULL;
END
$$;
CREATE TRIGGER shipment_shipment_fact AFTER UPDATE ON shipment
    REFERENCING OLD TABLE AS sf_old NEW TABLE AS sf_new
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_shipment();

-- A leg added, changed or removed: the facts of its shipment (the old row's and the new row's).
CREATE FUNCTION shipment_fact_drop_leg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shipment_fact_hold();
    IF TG_OP = 'INSERT' THEN
        DELETE FROM shipment_fact f WHERE f.shipment_id IN (SELECT shipment_id FROM sf_new);
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM shipment_fact f WHERE f.shipment_id IN (SELECT shipment_id FROM sf_old);
    ELSE
        DELETE FROM shipment_fact f
        WHERE f.shipment_id IN (
            SELECT shipment_id FROM (SELECT * FROM sf_old EXCEPT SELECT * FROM sf_new) o
            UNION SELECT shipment_id FROM (SELECT * FROM sf_new EXCEPT SELECT * FROM sf_old) n);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER shipment_leg_fact_insert AFTER INSERT ON shipment_leg
    REFERENCING NEW TABLE AS sf_new FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_leg();
CREATE TRIGGER shipment_leg_fact_update AFTER UPDATE ON shipment_leg
    REFERENCING OLD TABLE AS sf_old NEW TABLE AS sf_new FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_leg();
CREATE TRIGGER shipment_leg_fact_delete AFTER DELETE ON shipment_leg
    REFERENCING OLD TABLE AS sf_old FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_leg();
CREATE TRIGGER shipment_leg_fact_truncate AFTER TRUNCATE ON shipment_leg
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_all();

-- A mount added, changed or removed (an UPDATE: the old row over its old window and the new row over its
-- new one): the facts whose time meets the mount's window, of the shipments with a leg on its asset, on the
-- vehicle holding that asset or on a compartment of it (a compartment's evidence is its vehicle's probe).
CREATE FUNCTION shipment_fact_drop_mounted(p_asset text[], p_from timestamptz[], p_to timestamptz[])
RETURNS void LANGUAGE sql AS $$
WITH m AS (
    SELECT * FROM unnest(p_asset, p_from, p_to) AS u(asset_id, t0, t1)
), a AS (
    SELECT asset_id, t0, t1 FROM m
    UNION SELECT x.parent_asset_id, m.t0, m.t1 FROM m JOIN asset x USING (asset_id)
          WHERE x.parent_asset_id IS NOT NULL
    UNION SELECT c.asset_id, m.t0, m.t1 FROM m JOIN asset c ON c.parent_asset_id = m.asset_id
)
DELETE FROM shipment_fact f
USING a JOIN shipment_leg l ON l.asset_id = a.asset_id
WHERE f.shipment_id = l.shipment_id AND f.dep_from <= a.t1 AND f.dep_to >= a.t0
$$;
CREATE FUNCTION shipment_fact_drop_mount() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shipment_fact_hold();
    IF TG_OP = 'INSERT' THEN
        PERFORM shipment_fact_drop_mounted(array_agg(asset_id), array_agg(valid_from),
                                           array_agg(COALESCE(valid_to, 'infinity')))
        FROM sf_new;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM shipment_fact_drop_mounted(array_agg(asset_id), array_agg(valid_from),
                                           array_agg(COALESCE(valid_to, 'infinity')))
        FROM sf_old;
    ELSE
        PERFORM shipment_fact_drop_mounted(array_agg(asset_id), array_agg(valid_from),
                                           array_agg(COALESCE(valid_to, 'infinity')))
        FROM (SELECT * FROM sf_old EXCEPT SELECT * FROM sf_new
              UNION SELECT * FROM (SELECT * FROM sf_new EXCEPT SELECT * FROM sf_old) n) ch;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER device_mount_fact_insert AFTER INSERT ON device_mount
    REFERENCING NEW TABLE AS sf_new FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_mount();
CREATE TRIGGER device_mount_fact_update AFTER UPDATE ON device_mount
    REFERENCING OLD TABLE AS sf_old NEW TABLE AS sf_new FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_mount();
CREATE TRIGGER device_mount_fact_delete AFTER DELETE ON device_mount
    REFERENCING OLD TABLE AS sf_old FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_mount();
CREATE TRIGGER device_mount_fact_truncate AFTER TRUNCATE ON device_mount
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_all();

-- An asset moved to another vehicle (or out of one) or naming another probe: the facts of the shipments with
-- a leg on it, on its old and its new vehicle and on its compartments (which series are whose evidence
-- follows asset_evidence_series: a compartment's probe is its vehicle's, and no longer the vehicle's own).
CREATE FUNCTION shipment_fact_drop_asset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shipment_fact_hold();
    WITH ch AS (
        SELECT asset_id, parent_asset_id, probe FROM sf_old
        EXCEPT SELECT asset_id, parent_asset_id, probe FROM sf_new
        UNION
        SELECT * FROM (SELECT asset_id, parent_asset_id, probe FROM sf_new
                       EXCEPT SELECT asset_id, parent_asset_id, probe FROM sf_old) n
    ), a AS (
        SELECT asset_id FROM ch
        UNION SELECT parent_asset_id FROM ch WHERE parent_asset_id IS NOT NULL
        UNION SELECT c.asset_id FROM ch JOIN asset c ON c.parent_asset_id = ch.asset_id
    )
    DELETE FROM shipment_fact f
    WHERE f.shipment_id IN (SELECT l.shipment_id FROM a JOIN shipment_leg l ON l.asset_id = a.asset_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER asset_shipment_fact AFTER UPDATE ON asset
    REFERENCING OLD TABLE AS sf_old NEW TABLE AS sf_new FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_asset();

-- A crossing added, moved or withdrawn: the facts whose time holds it, of the shipments with a leg on its
-- asset. The rules worker writes crossings with every batch of positions: with no crossing in the
-- statement, or none during a fact's time, this is a join of an empty or small table by shipment_leg_asset.
CREATE FUNCTION shipment_fact_drop_crossing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shipment_fact_hold();
    IF TG_OP = 'INSERT' THEN
        DELETE FROM shipment_fact f
        USING sf_new c JOIN shipment_leg l ON l.asset_id = c.asset_id
        WHERE f.shipment_id = l.shipment_id AND c.crossed_at BETWEEN f.dep_from AND f.dep_to;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM shipment_fact f
        USING sf_old c JOIN shipment_leg l ON l.asset_id = c.asset_id
        WHERE f.shipment_id = l.shipment_id AND c.crossed_at BETWEEN f.dep_from AND f.dep_to;
    ELSE
        DELETE FROM shipment_fact f
        USING (SELECT * FROM sf_old EXCEPT SELECT * FROM sf_new
               UNION SELECT * FROM (SELECT * FROM sf_new EXCEPT SELECT * FROM sf_old) n) c
        JOIN shipment_leg l ON l.asset_id = c.asset_id
        WHERE f.shipment_id = l.shipment_id AND c.crossed_at BETWEEN f.dep_from AND f.dep_to;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER geofence_crossing_fact_insert AFTER INSERT ON geofence_crossing
    REFERENCING NEW TABLE AS sf_new FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_crossing();
CREATE TRIGGER geofence_crossing_fact_update AFTER UPDATE ON geofence_crossing
    REFERENCING OLD TABLE AS sf_old NEW TABLE AS sf_new
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_crossing();
CREATE TRIGGER geofence_crossing_fact_delete AFTER DELETE ON geofence_crossing
    REFERENCING OLD TABLE AS sf_old FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_crossing();
CREATE TRIGGER geofence_crossing_fact_truncate AFTER TRUNCATE ON geofence_crossing
    FOR EACH STATEMENT EXECUTE FUNCTION shipment_fact_drop_all();

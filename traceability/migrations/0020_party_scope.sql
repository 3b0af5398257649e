-- Stage 3, access: every API key (and the web sessions opened with it) belongs to a party and a role; what a
-- party may read is decided here, in SQL, once, and every query that serves data filters through it.
--
-- Roles: admin, operator, inspector and regulator read everything; customs reads the import flow (imported or
-- bonded lots, the shipments carrying them and the assets of those shipments); a carrier reads its own
-- shipments (a leg it carries), the assets it operates or carries them in, and the lots they carry; a shipper
-- (or importer) reads the lots it owns and the shipments it ships or receives; capture reads nothing.
ALTER TABLE api_key ADD COLUMN party_id text REFERENCES party;
ALTER TABLE api_key DROP CONSTRAINT api_key_role_check;
ALTER TABLE api_key ADD CONSTRAINT api_key_role_check
    CHECK (role IN ('inspector', 'operator', 'capture', 'admin', 'regulator', 'customs', 'carrier', 'shipper'));
-- A carrier's or shipper's key is of one party; the others may name theirs.
ALTER TABLE api_key ADD CONSTRAINT api_key_party_role
    CHECK (role NOT IN ('carrier', 'shipper') OR party_id IS NOT NULL);
ALTER TABLE audit_log ADD COLUMN party_id text;

-- The roles that read everything.
CREATE FUNCTION cc_sees_all(p_role text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT p_role IN ('admin', 'operator', 'inspector', 'regulator') $$;

CREATE FUNCTION cc_sees_shipment(p_role text, p_party text, p_shipment text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR (p_role = 'carrier' AND EXISTS (
            SELECT 1 FROM shipment_leg l WHERE l.shipment_id = p_shipment AND l.carrier_party_id = p_party))
    OR (p_role = 'shipper' AND EXISTS (
            SELECT 1 FROM shipment s WHERE s.shipment_id = p_shipment
              AND p_party IN (s.shipper_party_id, s.consignee_party_id)))
    OR (p_role = 'customs' AND EXISTS (
            SELECT 1 FROM shipment_lot sl JOIN lot USING (lot_id)
            WHERE sl.shipment_id = p_shipment
              AND (lot.bonded_status IS NOT NULL OR lot.origin_country IS DISTINCT FROM 'CN')))
$$;

CREATE FUNCTION cc_sees_lot(p_role text, p_party text, p_lot text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR (p_role = 'shipper' AND EXISTS (SELECT 1 FROM lot WHERE lot_id = p_lot AND owner_party_id = p_party))
    OR (p_role = 'customs' AND EXISTS (
            SELECT 1 FROM lot WHERE lot_id = p_lot
              AND (bonded_status IS NOT NULL OR origin_country IS DISTINCT FROM 'CN')))
    OR (p_role IN ('carrier', 'shipper') AND EXISTS (
            SELECT 1 FROM shipment_lot sl WHERE sl.lot_id = p_lot
              AND cc_sees_shipment(p_role, p_party, sl.shipment_id)))
$$;

CREATE FUNCTION cc_sees_asset(p_role text, p_party text, p_asset text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR (p_role = 'carrier' AND EXISTS (
            SELECT 1 FROM asset a WHERE a.asset_id = p_asset AND a.operator_party_id = p_party))
    OR (p_role IN ('carrier', 'customs', 'shipper') AND EXISTS (
            SELECT 1 FROM shipment_leg l LEFT JOIN asset a ON a.asset_id = p_asset
            WHERE (l.asset_id = p_asset
                   OR (l.container_number IS NOT NULL AND a.epc = 'urn:epc:id:bic:' || l.container_number))
              AND cc_sees_shipment(p_role, p_party, l.shipment_id)))
$$;

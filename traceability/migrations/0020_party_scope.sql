-- Stage 3, access: every API key (and the web sessions opened with it) belongs to a party and a role; what a
-- party may read is decided here, in SQL, once, and every query that serves data filters through it.
--
-- Roles: admin, operator, inspector and regulator read everything; customs reads the import flow (imported or
-- bonded lots, the shipments carrying them and the assets of those shipments); a carrier reads its own
-- shipments (a leg it carries), the assets it operates or carries them in, and the lots they carry; a shipper
-- (or importer) reads the lots it owns and the shipments it ships or receives; capture reads nothing. A ledger
-- event is read through its subjects and business transactions (cc_sees_event), a key's named queries and
-- subscriptions by its party (cc_sees_key). Queries ask `cc_sees_all(role) OR cc_sees_x(role, party, ...)`:
-- for a role that reads everything the planner folds that to true (cc_sees_all is immutable).
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

-- The import flow customs reads: a lot of foreign origin, or one with a bonded status (the registry's, or the
-- ledger's first-line entry / second-line release).
CREATE FUNCTION cc_imported_lot(p_lot text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT EXISTS (SELECT 1 FROM lot WHERE lot_id = p_lot
                 AND (bonded_status IS NOT NULL OR (origin_country IS NOT NULL AND origin_country <> 'CN')))
    OR EXISTS (SELECT 1 FROM bonded_status b WHERE b.lot_id = p_lot)
$$;

CREATE FUNCTION cc_sees_shipment(p_role text, p_party text, p_shipment text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR (p_role = 'carrier' AND EXISTS (
            SELECT 1 FROM shipment_leg l WHERE l.shipment_id = p_shipment AND l.carrier_party_id = p_party))
    OR (p_role = 'shipper' AND EXISTS (
            SELECT 1 FROM shipment s WHERE s.shipment_id = p_shipment
              AND p_party IN (s.shipper_party_id, s.consignee_party_id)))
    OR (p_role = 'customs' AND EXISTS (
            SELECT 1 FROM shipment_lot sl WHERE sl.shipment_id = p_shipment AND cc_imported_lot(sl.lot_id)))
$$;

CREATE FUNCTION cc_sees_lot(p_role text, p_party text, p_lot text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR (p_role = 'shipper' AND EXISTS (SELECT 1 FROM lot WHERE lot_id = p_lot AND owner_party_id = p_party))
    OR (p_role = 'customs' AND cc_imported_lot(p_lot))
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

-- A business transaction (B/L, waybill, through document, as an event names it: a URI ending in the number)
-- is visible with a shipment it documents.
CREATE FUNCTION cc_sees_document(p_role text, p_party text, p_document text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR EXISTS (
        SELECT 1 FROM shipment s
        WHERE regexp_replace(p_document, '^.*[/:]', '')
              IN (s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill)
          AND cc_sees_shipment(p_role, p_party, s.shipment_id))
$$;

-- An identifier an event names (event_subject.subject_id) is visible when it is a visible lot, the EPC of a
-- visible asset, or a unit that ever held a visible lot (downwards through containment: lots_under).
CREATE FUNCTION cc_sees_subject(p_role text, p_party text, p_subject text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR cc_sees_lot(p_role, p_party, p_subject)
    OR EXISTS (SELECT 1 FROM asset a WHERE a.epc = p_subject AND cc_sees_asset(p_role, p_party, a.asset_id))
    OR EXISTS (SELECT 1 FROM lots_under(ARRAY[p_subject]) u WHERE cc_sees_lot(p_role, p_party, u.lot_id))
$$;

-- A ledger event is visible when one of its subjects, or one of its business transactions, is.
CREATE FUNCTION cc_sees_event(p_role text, p_party text, p_seq bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR EXISTS (SELECT 1 FROM event_subject s
               WHERE s.seq = p_seq AND cc_sees_subject(p_role, p_party, s.subject_id))
    OR EXISTS (SELECT 1 FROM biz_transaction b
               WHERE b.seq = p_seq AND cc_sees_document(p_role, p_party, b.biz_transaction))
$$;

-- What a key keeps (its named queries and subscriptions): visible to that key (p_key), to the keys of its
-- party, and to the roles that read everything.
CREATE FUNCTION cc_sees_key(p_role text, p_party text, p_key bigint, p_owner bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR p_key = p_owner
    OR (p_party IS NOT NULL AND EXISTS (SELECT 1 FROM api_key k WHERE k.key_id = p_owner AND k.party_id = p_party))
$$;

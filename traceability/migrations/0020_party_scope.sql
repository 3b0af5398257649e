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

-- The times a caller sees an asset in: all time for the roles that read everything and for the carrier
-- operating it; else the windows of the legs on it (by asset or container) of the shipments the caller sees,
-- each from the leg's (else the shipment's) planned start to the shipment's closing, else the leg's (else the
-- shipment's) planned end, as shipment_of_asset places an asset in a shipment. A bound nothing gives is
-- infinite (a key of a carrier or shipper registers a leg on an asset only with a planned window).
CREATE FUNCTION cc_asset_windows(p_role text, p_party text, p_asset text)
RETURNS TABLE (t_from timestamptz, t_to timestamptz)
LANGUAGE sql STABLE AS $$
SELECT '-infinity'::timestamptz, 'infinity'::timestamptz
WHERE cc_sees_all(p_role)
   OR (p_role = 'carrier' AND EXISTS (
           SELECT 1 FROM asset a WHERE a.asset_id = p_asset AND a.operator_party_id = p_party))
UNION ALL
SELECT coalesce(l.planned_start, s.planned_start, '-infinity'),
       coalesce(s.closed_at, l.planned_end, s.planned_end, 'infinity')
FROM shipment_leg l
JOIN shipment s ON s.shipment_id = l.shipment_id
LEFT JOIN asset a ON a.asset_id = p_asset
WHERE p_role IN ('carrier', 'customs', 'shipper')
  AND (l.asset_id = p_asset
       OR (l.container_number IS NOT NULL AND a.epc = 'urn:epc:id:bic:' || l.container_number))
  AND cc_sees_shipment(p_role, p_party, l.shipment_id)
$$;

-- Whether the caller sees the asset at some time (the asset itself: its page, its alarms' list).
CREATE FUNCTION cc_sees_asset(p_role text, p_party text, p_asset text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role) OR EXISTS (SELECT 1 FROM cc_asset_windows(p_role, p_party, p_asset))
$$;

-- Whether the caller sees the asset at p_at (its readings, the events naming its EPC then).
CREATE FUNCTION cc_sees_asset_at(p_role text, p_party text, p_asset text, p_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role) OR EXISTS (
    SELECT 1 FROM cc_asset_windows(p_role, p_party, p_asset) w WHERE w.t_from <= p_at AND p_at < w.t_to)
$$;

-- The URI a document number takes as a bizTransaction (traceability.epcis.multimodal.document_uri; a test
-- holds the two to the same form): kind is through, bl, waybill (rail) or road_waybill.
CREATE FUNCTION cc_document_uri(p_kind text, p_number text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'https://ns.coldchain.example/epcis/doc/' || p_kind || '/' || p_number $$;

-- The bizTransaction URIs of a shipment's documents: which column is which kind, once, for every query that
-- links events to shipments (an absent document gives NULL, matching nothing).
CREATE FUNCTION cc_shipment_documents(p_through text, p_bl text, p_rail text, p_road text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
SELECT ARRAY[cc_document_uri('through', p_through), cc_document_uri('bl', p_bl),
             cc_document_uri('waybill', p_rail), cc_document_uri('road_waybill', p_road)]
$$;

-- A business transaction (a B/L, waybill or through document URI, cc_document_uri) is visible with a
-- shipment holding that very document: same kind, same number.
CREATE FUNCTION cc_sees_document(p_role text, p_party text, p_document text) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR EXISTS (
        SELECT 1 FROM shipment s
        WHERE p_document = ANY (cc_shipment_documents(
                  s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill))
          AND cc_sees_shipment(p_role, p_party, s.shipment_id))
$$;

-- The lot classes inside a unit or asset at p_at (downwards through containment, the containment then: from
-- its packing to its unpacking, both included), and the unit itself when it is a lot class.
CREATE FUNCTION cc_lots_in_at(p_unit text, p_at timestamptz) RETURNS TABLE (lot_id text)
LANGUAGE sql STABLE AS $$
WITH RECURSIVE down AS (
    SELECT c.child_id, 1 AS depth FROM containment c
    WHERE c.parent_id = p_unit AND c.t0 <= p_at AND (c.t1 IS NULL OR c.t1 >= p_at)
    UNION
    SELECT c.child_id, down.depth + 1 FROM containment c JOIN down ON c.parent_id = down.child_id
    WHERE c.t0 <= p_at AND (c.t1 IS NULL OR c.t1 >= p_at) AND down.depth < 8
)
SELECT DISTINCT child_id FROM down WHERE child_id LIKE 'urn:epc:class:%'
$$;

-- An identifier an event at p_at names (event_subject.subject_id) is visible when it is a visible lot, the
-- EPC of an asset visible then, or a unit holding a visible lot then.
CREATE FUNCTION cc_sees_subject(p_role text, p_party text, p_subject text, p_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR cc_sees_lot(p_role, p_party, p_subject)
    OR EXISTS (SELECT 1 FROM asset a WHERE a.epc = p_subject
                 AND cc_sees_asset_at(p_role, p_party, a.asset_id, p_at))
    OR EXISTS (SELECT 1 FROM cc_lots_in_at(p_subject, p_at) u WHERE cc_sees_lot(p_role, p_party, u.lot_id))
$$;

-- A ledger event is visible when one of its subjects (at its event time), or one of its business
-- transactions, is.
CREATE FUNCTION cc_sees_event(p_role text, p_party text, p_seq bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT cc_sees_all(p_role)
    OR EXISTS (SELECT 1 FROM event_subject s JOIN ledger_event e ON e.seq = s.seq
               WHERE s.seq = p_seq AND cc_sees_subject(p_role, p_party, s.subject_id, e.event_time))
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

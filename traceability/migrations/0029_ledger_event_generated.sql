-- Stage 3 (ledger): the served jsonb ``event`` is generated from the chained bytes ``event_jcs``.
-- Until now the append sent each event twice (its canonical bytes, and the same text as jsonb), and the
-- CHECK of 0004/0006 parsed the bytes a second time to compare them with the jsonb: about a sixth of the
-- server's work on a captured entry. ``event`` is now a stored generated column, the bytes parsed once as
-- the row is written: equal to them by construction, whatever triggers are disabled. The CHECK keeps
-- binding the other served columns to it; ``verify`` checks that the generation (column, expression and
-- the function it calls) and the CHECK are intact. Every entry has its bytes (``event_jcs`` NOT NULL: an
-- entry without them never verified). The index on (biz_step, event_time) goes: EQ_bizStep reads
-- (biz_step, seq), a time filter or an equal time (event_time), and its upkeep was part of every append.
-- Dropping and adding the column rewrites ledger_event and rebuilds its indexes, under an exclusive lock.

DROP VIEW shipment_state;
DROP VIEW shipment_event;
ALTER TABLE ledger_event DROP CONSTRAINT ledger_event_event_is_jcs;
DROP INDEX ledger_event_biz_step;
ALTER TABLE ledger_event DROP COLUMN event;  -- and the indexes on its fields (made again below)
ALTER TABLE ledger_event ALTER COLUMN event_jcs SET NOT NULL;

-- convert_from is STABLE (an encoding conversion); from UTF-8 into this database's encoding, which never
-- changes, it always gives the same text for the same bytes.
CREATE FUNCTION ledger_event_json(jcs bytea) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN convert_from(jcs, 'UTF8')::jsonb;

ALTER TABLE ledger_event
    ADD COLUMN event jsonb NOT NULL GENERATED ALWAYS AS (ledger_event_json(event_jcs)) STORED;
ALTER TABLE ledger_event ADD CONSTRAINT ledger_event_event_is_jcs CHECK (
    event_id IS NOT DISTINCT FROM event->>'eventID'
    AND event_type IS NOT DISTINCT FROM event->>'type'
    AND event_time IS NOT DISTINCT FROM (event->>'eventTime')::timestamptz
    AND biz_step IS NOT DISTINCT FROM (CASE
        WHEN event->>'bizStep' LIKE 'https://ref.gs1.org/cbv/BizStep-%' THEN substr(event->>'bizStep', 33)
        WHEN event->>'bizStep' LIKE 'urn:epcglobal:cbv:bizstep:%' THEN substr(event->>'bizStep', 27)
        ELSE event->>'bizStep' END)
    AND declares_error = (event ? 'errorDeclaration')
);

CREATE INDEX ledger_event_disposition ON ledger_event ((event ->> 'disposition'), seq);
CREATE INDEX ledger_event_biz_location ON ledger_event (((event -> 'bizLocation') ->> 'id'), seq);
CREATE INDEX ledger_event_read_point ON ledger_event (((event -> 'readPoint') ->> 'id'), seq);
CREATE INDEX ledger_event_verdict_id ON ledger_event ((event ->> 'cc:verdictId'))
    WHERE event ? 'cc:verdictId';

-- The views of 0021, as they were (they read the column dropped above).
CREATE VIEW shipment_event AS
SELECT DISTINCT s.shipment_id, e.seq, e.event_time, e.biz_step,
       coalesce(e.event -> 'bizLocation' ->> 'id', e.event -> 'readPoint' ->> 'id') AS place
FROM shipment s
JOIN biz_transaction b ON b.biz_transaction = ANY (cc_shipment_documents(
        s.through_document, s.bill_of_lading, s.rail_waybill, s.road_waybill))
JOIN ledger_event e ON e.seq = b.seq
WHERE NOT e.declares_error
  AND NOT EXISTS (SELECT 1 FROM ledger_event d WHERE d.declares_error AND d.event_id = e.event_id);

CREATE VIEW shipment_state AS
SELECT s.shipment_id,
       CASE WHEN s.closed_at IS NOT NULL THEN 'closed'
            WHEN m.delivered_at IS NOT NULL THEN 'delivered'
            WHEN m.arrived_at IS NOT NULL THEN 'arrived'
            WHEN m.departed_at IS NOT NULL THEN 'in_transit'
            ELSE 'planned' END AS state,
       m.departed_at, m.arrived_at, m.delivered_at, s.closed_at
FROM shipment s
LEFT JOIN LATERAL (
    SELECT min(e.event_time) FILTER (WHERE e.biz_step = 'departing') AS departed_at,
           min(e.event_time) FILTER (WHERE e.biz_step = 'arriving'
                                     AND cc_location_within(e.place, s.destination_location_id)) AS arrived_at,
           min(e.event_time) FILTER (WHERE e.biz_step = 'receiving'
                                     AND cc_location_within(e.place, s.destination_location_id)) AS delivered_at
    FROM shipment_event e WHERE e.shipment_id = s.shipment_id
) m ON true;

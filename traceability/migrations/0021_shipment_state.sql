-- Stage 3, trace: a shipment's state, derived from the ledger: planned → in_transit → arrived → delivered →
-- closed. The registry keeps the shipment and the one state set by hand (closed_at); everything else follows
-- the EPCIS events that name one of its documents as a business transaction (biz_transaction):
--   departing anywhere                      → in_transit (from the first one)
--   arriving at the destination             → arrived
--   receiving at the destination            → delivered
--   closed_at set                           → closed
-- An event is at the destination when its bizLocation, else its readPoint, is the destination location or a
-- location under it. The furthest state reached holds (a late departing event does not take a delivered
-- shipment back in transit); an event an errorDeclaration names does not count.

-- Whether location p_inner is p_outer or lies under it (registry parent chain).
CREATE FUNCTION cc_location_within(p_inner text, p_outer text) RETURNS boolean
LANGUAGE sql STABLE AS $$
WITH RECURSIVE up (location_id, depth) AS (
    SELECT p_inner, 0
    UNION ALL
    SELECT l.parent_location_id, up.depth + 1 FROM location l JOIN up ON l.location_id = up.location_id
    WHERE l.parent_location_id IS NOT NULL AND up.depth < 32
)
SELECT p_outer IS NOT NULL AND EXISTS (SELECT 1 FROM up WHERE location_id = p_outer)
$$;

-- The ledger events of each shipment: those naming its through document, bill of lading, rail or road waybill.
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

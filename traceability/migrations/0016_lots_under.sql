-- Stage 3 (ledger): the lot classes ever inside the given units or assets (downwards through containment,
-- any time), and the roots that are lot classes themselves. One definition, read by the trace's resolution
-- of an identifier (traceability/queries.py LOTS_UNDER) and by the dashboards' lots of an asset.
CREATE FUNCTION lots_under(roots text[]) RETURNS TABLE (lot_id text) LANGUAGE sql STABLE AS $$
WITH RECURSIVE down AS (
    SELECT c.child_id, 1 AS depth FROM containment c WHERE c.parent_id = ANY(roots)
    UNION
    SELECT c.child_id, down.depth + 1 FROM containment c JOIN down ON c.parent_id = down.child_id
    WHERE down.depth < 8
)
SELECT DISTINCT child_id FROM down WHERE child_id LIKE 'urn:epc:class:%'
UNION
SELECT DISTINCT r FROM unnest(roots) r WHERE r LIKE 'urn:epc:class:%'
$$;

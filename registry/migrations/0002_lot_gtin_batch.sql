-- Stage 0½, reference data: lots by the GS1 keys a label carries (GTIN and batch), for the search box and
-- the public scan page (traceability/web/queries.py LOTS_BY_GTIN_BATCH and LOTS_BY_GTIN): without it each
-- scan reads the whole lot table. The GTIN alone is the index's prefix, so a GTIN-only search uses it too.
CREATE INDEX lot_gtin_batch ON lot (gtin, batch);

-- Stage 1 (ingest): a redelivered conflicting_duplicate message (same topic and payload sha256) is found
-- by this index and gets no second dead letter; only that reason is indexed, so other dead letters cost
-- nothing more to insert.
CREATE INDEX dead_letter_conflict_sha256 ON dead_letter (payload_sha256) WHERE reason = 'conflicting_duplicate';

-- Stage 3 (ledger): ledger_event.event_id in the "C" collation (code point order), as event_subject's
-- subject_id already is. Every capture looks up each of its eventIDs in the unique index on event_id
-- (idempotency, errorDeclarations) and inserts each into it; eventIDs are long and share their prefix
-- (`ni:///sha-256;…`, `urn:uuid:…`), so in a linguistic collation each comparison of that lookup is a
-- strcoll over the prefix. Equality, the only use of event_id in a query, is the same in any collation.
-- The index is rebuilt and the CHECK constraint revalidated (a read of every row), the table not rewritten.
ALTER TABLE ledger_event ALTER COLUMN event_id TYPE text COLLATE "C";

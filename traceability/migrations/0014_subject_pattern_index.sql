-- Stage 3 (ledger): event_subject.subject_id in the "C" collation (code point order), for the event query's
-- EPC patterns (traceability/epcis/epc_patterns.py and events_query.py). A pattern is a LIKE on subject_id
-- with an explicit range on its literal prefix, in the "C" collation: with the column in it, the primary
-- key (subject_id, seq, role) serves the prefix as one range read whatever the database's collation, and
-- the semi-join takes the events from the index alone. Equality (every exact match) is the same in any
-- collation; the primary key is rebuilt, and no second index is written on every append.
ALTER TABLE event_subject ALTER COLUMN subject_id TYPE text COLLATE "C";

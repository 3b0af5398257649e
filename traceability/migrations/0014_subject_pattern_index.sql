-- Stage 3 (ledger): the index of the event query's EPC patterns (traceability/epcis/epc_patterns.py and
-- events_query.py). A pattern is a LIKE on event_subject.subject_id with an explicit range on its literal
-- prefix, both in the "C" collation (code point order), so the prefix is one range read whatever the
-- database's collation; seq lets the semi-join take the events from the index alone.
CREATE INDEX event_subject_subject_c ON event_subject ((subject_id COLLATE "C"), seq, role);

-- Stage 3 (ledger): indexes of the GS1 REST bindings' resources (traceability/epcis/vocabularies.py and
-- events_query.py). Each serves the list of a resource's known values (an index skip scan: one probe per
-- distinct value) and the events of one value in ledger order (an index range read in seq order, stopped
-- at the page's end). The expressions are those the queries use, so the planner matches them.
CREATE INDEX ledger_event_type_seq ON ledger_event (event_type, seq);
CREATE INDEX ledger_event_biz_step_seq ON ledger_event (biz_step, seq);
CREATE INDEX ledger_event_disposition ON ledger_event ((event ->> 'disposition'), seq);
CREATE INDEX ledger_event_biz_location ON ledger_event (((event -> 'bizLocation') ->> 'id'), seq);
CREATE INDEX ledger_event_read_point ON ledger_event (((event -> 'readPoint') ->> 'id'), seq);
-- GE_recordTime / LT_recordTime and orderBy=recordTime (keyed pages: record_time, then seq).
CREATE INDEX ledger_event_record_time ON ledger_event (record_time, seq);

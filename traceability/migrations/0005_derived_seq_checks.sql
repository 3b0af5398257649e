-- Stage 3 (ledger): the derived tables' references to ledger seqs, checked once per statement.
-- A foreign key checks each new row on its own (one lookup and one row lock on the ledger entry per row),
-- which was a fifth of the server's work per captured event. The ledger refuses UPDATE, DELETE and
-- TRUNCATE, so what a foreign key adds on the ledger's side cannot happen; on the derived side, this
-- trigger refuses any INSERT or UPDATE whose rows name a seq that is not in the ledger, with one anti-join
-- over the statement's rows. (ledger_checkpoint keeps its foreign key: one row per minute.)

CREATE FUNCTION derived_seqs_in_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text;
    missing bigint;
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        EXECUTE format(
            'SELECT n.%1$I FROM new_rows n WHERE n.%1$I IS NOT NULL'
            ' AND NOT EXISTS (SELECT 1 FROM ledger_event e WHERE e.seq = n.%1$I) LIMIT 1', col)
            INTO missing;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION '%.% = % is not a seq of the ledger', TG_TABLE_NAME, col, missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

ALTER TABLE containment DROP CONSTRAINT containment_start_seq_fkey;
ALTER TABLE containment DROP CONSTRAINT containment_end_seq_fkey;
ALTER TABLE custody_leg DROP CONSTRAINT custody_leg_start_seq_fkey;
ALTER TABLE custody_leg DROP CONSTRAINT custody_leg_end_seq_fkey;
ALTER TABLE lineage DROP CONSTRAINT lineage_seq_fkey;
ALTER TABLE bonded_status DROP CONSTRAINT bonded_status_seq_fkey;
ALTER TABLE biz_transaction DROP CONSTRAINT biz_transaction_seq_fkey;
ALTER TABLE event_subject DROP CONSTRAINT event_subject_seq_fkey;

CREATE TRIGGER containment_seqs_insert AFTER INSERT ON containment REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('start_seq', 'end_seq');
CREATE TRIGGER containment_seqs_update AFTER UPDATE ON containment REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('start_seq', 'end_seq');
CREATE TRIGGER custody_leg_seqs_insert AFTER INSERT ON custody_leg REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('start_seq', 'end_seq');
CREATE TRIGGER custody_leg_seqs_update AFTER UPDATE ON custody_leg REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('start_seq', 'end_seq');
CREATE TRIGGER lineage_seqs_insert AFTER INSERT ON lineage REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER lineage_seqs_update AFTER UPDATE ON lineage REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER bonded_status_seqs_insert AFTER INSERT ON bonded_status REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER bonded_status_seqs_update AFTER UPDATE ON bonded_status REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER biz_transaction_seqs_insert AFTER INSERT ON biz_transaction REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER biz_transaction_seqs_update AFTER UPDATE ON biz_transaction REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER event_subject_seqs_insert AFTER INSERT ON event_subject REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');
CREATE TRIGGER event_subject_seqs_update AFTER UPDATE ON event_subject REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION derived_seqs_in_ledger('seq');

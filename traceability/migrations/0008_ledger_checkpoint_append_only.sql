-- Stage 3 (ledger): ledger_checkpoint refuses UPDATE, DELETE and TRUNCATE, as ledger_event does, with a
-- message that names it. A checkpoint is evidence the verifier checks the chain against: one removed or
-- changed would let a rewrite below it pass unseen.
CREATE FUNCTION ledger_checkpoint_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_checkpoint is append-only: % refused (sign a new checkpoint instead)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER ledger_checkpoint_no_update ON ledger_checkpoint;
CREATE TRIGGER ledger_checkpoint_no_update BEFORE UPDATE OR DELETE ON ledger_checkpoint
    FOR EACH ROW EXECUTE FUNCTION ledger_checkpoint_refuse_change();
CREATE TRIGGER ledger_checkpoint_no_truncate BEFORE TRUNCATE ON ledger_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_checkpoint_refuse_change();

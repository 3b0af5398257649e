-- Stage 2 (verdicts): how far the rules stage has judged the custody the ledger stage derives.

-- One row: the highest ledger seq whose custody effects (the containment and custody_leg rows that seq
-- opened or closed) the rules stage has re-judged the lots of. A worker locks it FOR UPDATE SKIP LOCKED
-- (two workers never judge the same custody change twice) and advances it in the transaction that writes
-- the lots' verdicts. No foreign key: the ledger's tables migrate after this stage's, and the ledger
-- stage never writes here. A new database starts at 0, so the lots already in custody are judged once.
CREATE TABLE custody_watermark (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    judged_seq  bigint NOT NULL DEFAULT 0 CHECK (judged_seq >= 0),
    judged_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO custody_watermark DEFAULT VALUES;

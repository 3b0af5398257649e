-- Stage 3 (ledger): the derived tables' seqs checked against the ledger's range, not entry by entry.
-- The trigger of 0005 probed the ledger's primary key for every row of a statement (an anti-join): with
-- some 3 200 derived rows for every 1 000 captured events, about a seventh of the server's work on a
-- capture. The ledger's seqs run from 1 to its head with no hole: the appenders number each entry from the
-- head they read under the ledger's lock, the ledger refuses UPDATE, DELETE and TRUNCATE, and `verify`
-- fails a ledger with a hole. A seq from 1 to the head is therefore a seq of the ledger, and the check is
-- now the statement's least and greatest seq against the head (one aggregate over the statement's rows
-- and one look at the ledger's last entry). A row naming a seq outside the ledger is still refused, by
-- INSERT, COPY or UPDATE alike, with the same error.

CREATE OR REPLACE FUNCTION derived_seqs_in_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    col text;
    lo bigint;
    hi bigint;
    head bigint;
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        EXECUTE format('SELECT min(n.%1$I), max(n.%1$I) FROM new_rows n', col) INTO lo, hi;
        IF hi IS NOT NULL THEN
            IF head IS NULL THEN
                SELECT e.seq INTO head FROM ledger_event e ORDER BY e.seq DESC LIMIT 1;
            END IF;
            IF lo < 1 OR hi > coalesce(head, 0) THEN
                RAISE EXCEPTION '%.% = % is not a seq of the ledger', TG_TABLE_NAME, col,
                    CASE WHEN lo < 1 THEN lo ELSE hi END
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

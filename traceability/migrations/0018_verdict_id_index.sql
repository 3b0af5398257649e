-- Stage 3 (ledger): find the ledger event of a rules verdict by its verdict id (cc:verdictId), so a
-- correction from the rules stage can declare that event wrong.
CREATE INDEX ledger_event_verdict_id ON ledger_event ((event ->> 'cc:verdictId'))
    WHERE event ? 'cc:verdictId';

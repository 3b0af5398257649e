-- Stage 1 (ingest): per device and UTC day, what the gateway received from it, accepted, dead-lettered (by
-- reason) and counted by (boot, seq), so a quarter's conformance and sequence integrity sum ~90 rows per
-- device instead of scanning dead letters and readings. Written in the transaction that stores the
-- messages (gateway.daily). A message's day is the UTC day of its first device time when the gateway can
-- read one (a refused payload that is still JSON names its first reading's time), else of its receive time
-- (broken JSON has no device time). Status messages (connection state, the broker's Last Will) are not
-- counted.
CREATE TABLE device_day (
    device_id   text NOT NULL,                  -- from the topic; not necessarily registered
    day         date NOT NULL,
    received    bigint NOT NULL DEFAULT 0,      -- messages received (a redelivered one storing nothing new: not)
    accepted    bigint NOT NULL DEFAULT 0,      -- of those, stored (received - dead-lettered)
    dead        bigint NOT NULL DEFAULT 0,      -- of those, dead-lettered
    readings    bigint NOT NULL DEFAULT 0,      -- readings counted by (boot, seq): stored, or refused as conflicts
    seq_missing bigint NOT NULL DEFAULT 0,      -- change in readings missing by seq (negative: a late one filled a gap)
    PRIMARY KEY (device_id, day)
);
CREATE INDEX device_day_day ON device_day (day);

CREATE TABLE device_day_dead (
    device_id text NOT NULL,
    day       date NOT NULL,
    reason    text NOT NULL,                    -- dead_letter.reason
    n         bigint NOT NULL,
    PRIMARY KEY (device_id, day, reason)
);

-- Stage 2 (verdicts): alarm duties: who was told of an alarm, at which escalation level, and when.

-- How far an alarm has gone down its class's recipient levels: -1 none yet, k = level k notified at
-- notified_at. An alarm still open (not acknowledged) past its severity's time goes to the next level.
ALTER TABLE alarm ADD COLUMN notify_level integer NOT NULL DEFAULT -1 CHECK (notify_level >= -1);
ALTER TABLE alarm ADD COLUMN notified_at timestamptz;
-- Alarms already open when duties begin were announced as they opened (the alarm notifier): they count as
-- told to the first level now, and escalate from here, instead of all reaching the first level at once.
UPDATE alarm SET notify_level = 0, notified_at = now() WHERE state = 'open';

-- One row per recipient, channel and level of an alarm: claimed (pending) in the transaction that moves
-- the alarm's level, marked sent once delivered. The unique key makes a notice impossible to claim twice,
-- so a restart resumes the pending ones and never repeats a sent one.
CREATE TABLE alarm_notice (
    notice_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id    bigint NOT NULL REFERENCES alarm,
    level       integer NOT NULL CHECK (level >= 0),
    person      text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('email', 'webhook', 'mqtt')),
    address     text NOT NULL,              -- e-mail address, webhook URL or MQTT topic
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'cancelled')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),  -- a failed send waits, backing off
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at     timestamptz,
    UNIQUE (alarm_id, level, person, channel)
);
CREATE INDEX alarm_notice_pending ON alarm_notice (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alarm_due ON alarm (notify_level) WHERE state = 'open';

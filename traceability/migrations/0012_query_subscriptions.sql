-- EPCIS named queries and their webhook subscriptions (GS1 REST bindings: /queries, /queries/{name}/
-- subscriptions), and the deliveries waiting to be sent. A subscription's cursor is the last ledger seq
-- put into a delivery; at most one delivery of a subscription is pending at a time, so deliveries arrive
-- in ledger order and a receiver that is down holds back only its own subscription.
CREATE TABLE epcis_named_query (
    name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._~-]{1,100}$'),
    query      jsonb NOT NULL,                 -- EPCIS query language parameters, as validated
    key_id     bigint NOT NULL REFERENCES api_key,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE epcis_subscription (
    subscription_id     text PRIMARY KEY,     -- a UUID
    query_name          text NOT NULL REFERENCES epcis_named_query ON DELETE CASCADE,
    key_id              bigint NOT NULL REFERENCES api_key,  -- delivers only while this key may read
    dest                text NOT NULL CHECK (dest ~* '^https?://'),
    signature_token     text,                 -- the subscriber's HMAC secret (needed to sign: kept as given)
    stream              boolean NOT NULL,
    schedule            jsonb,                -- {second, minute, hour, dayOfMonth, month, dayOfWeek}
    report_if_empty     boolean NOT NULL DEFAULT false,
    initial_record_time timestamptz NOT NULL,
    after_seq           bigint NOT NULL,      -- the cursor: the last ledger seq put into a delivery
    next_run_at         timestamptz,          -- a schedule's next firing
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_notified_at    timestamptz,          -- the last delivery the receiver accepted (2xx)
    CHECK (stream <> (schedule IS NOT NULL)),
    CHECK ((schedule IS NULL) = (next_run_at IS NULL))
);
CREATE INDEX epcis_subscription_query ON epcis_subscription (query_name);

CREATE TABLE epcis_delivery (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES epcis_subscription ON DELETE CASCADE,
    idempotency_key text NOT NULL UNIQUE,     -- sent on every attempt: the receiver drops repeats
    body            bytea NOT NULL,           -- the EPCISQueryDocument, byte for byte on every attempt
    event_count     integer NOT NULL,
    last_seq        bigint NOT NULL,          -- the cursor after this delivery
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    held            text,                     -- why it is not sent (the key revoked or without read)
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX epcis_delivery_one_pending ON epcis_delivery (subscription_id);
CREATE INDEX epcis_delivery_due ON epcis_delivery (next_attempt_at) WHERE held IS NULL;

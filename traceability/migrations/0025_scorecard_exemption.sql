-- Stage 3 (scorecards): exemptions a scorecard lists and leaves out: time of one subject that an indicator
-- does not judge (a declared offline sea leg for timeliness, a device in repair), with the reason, who
-- granted it and when.
CREATE TABLE scorecard_exemption (
    exemption_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    indicator    text NOT NULL,                  -- an indicator key, or '*' for every indicator
    subject_kind text NOT NULL CHECK (subject_kind IN ('carrier', 'device', 'asset', 'site', 'shipper')),
    subject_id   text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text NOT NULL CHECK (length(btrim(reason)) > 0),
    granted_by   text NOT NULL CHECK (length(btrim(granted_by)) > 0),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX scorecard_exemption_window ON scorecard_exemption (starts_at, ends_at);

-- Stage 3 (faces): the web pages' sign-in sessions. An API key is exchanged for a session: the browser
-- holds a random token in an HttpOnly cookie, the database only its SHA-256 (like the keys themselves),
-- the key it was opened with (a revoked key ends its sessions: the lookup joins the live keys) and the
-- session's CSRF token, which every form posts back.
CREATE TABLE web_session (
    token_hash text PRIMARY KEY,               -- sha256 of the cookie's token, hex
    key_id     bigint NOT NULL REFERENCES api_key ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_session_key ON web_session (key_id);
CREATE INDEX web_session_expires ON web_session (expires_at);

"""Stage 3 (faces): the SQL of the web pages: sessions, lots by GS1 keys, event hashes, the ledger head."""

from __future__ import annotations

# --- sessions (migration 0015): only the token's hash is stored; a revoked key's sessions are void --------
INSERT_SESSION = """
INSERT INTO web_session (token_hash, key_id, csrf_token, expires_at)
VALUES (%(hash)s, %(key)s, %(csrf)s, now() + make_interval(secs => %(ttl)s))
"""
SESSION_BY_HASH = """
SELECT k.key_id, k.name, k.role, s.csrf_token, k.party_id
FROM web_session s JOIN api_key k ON k.key_id = s.key_id
WHERE s.token_hash = %s AND s.expires_at > now() AND k.revoked_at IS NULL
"""
DELETE_SESSION = "DELETE FROM web_session WHERE token_hash = %s"
DELETE_EXPIRED_SESSIONS = "DELETE FROM web_session WHERE expires_at <= now()"

# --- search: lots by the GS1 keys a scan carries ----------------------------------------------------------
LOTS_BY_GTIN_BATCH = "SELECT lot_id FROM lot WHERE gtin = %s AND batch = %s ORDER BY lot_id"
LOTS_BY_GTIN = "SELECT lot_id FROM lot WHERE gtin = %s ORDER BY lot_id"

# --- evidence ----------------------------------------------------------------------------------------------
EVENT_HASHES_AT_SEQS = """
SELECT seq, event_hash, entry_hash FROM ledger_event WHERE seq = ANY(%s) ORDER BY seq
"""
ENTRY_HASH_AT = "SELECT entry_hash FROM ledger_event WHERE seq = %s"

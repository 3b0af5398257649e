"""Stage 3, EPCIS subscriptions: the SQL of named queries, subscriptions and their deliveries."""

from __future__ import annotations

INSERT_NAMED_QUERY = (
    "INSERT INTO epcis_named_query (name, query, key_id) VALUES (%(name)s, %(query)s, %(key)s)"
    " ON CONFLICT (name) DO NOTHING"
)
# What a reader sees of them: its own, its party's, or all (cc_sees_key: %(role)s, %(party)s, %(reader_key)s).
_SEEN = " AND (cc_sees_all(%(role)s) OR cc_sees_key(%(role)s, %(party)s, %(reader_key)s, key_id))"
NAMED_QUERIES = (
    "SELECT name, query FROM epcis_named_query WHERE name > %(after)s"
    + _SEEN
    + " ORDER BY name LIMIT %(limit)s"
)
NAMED_QUERY = "SELECT name, query FROM epcis_named_query WHERE name = %(name)s" + _SEEN
DELETE_NAMED_QUERY = "DELETE FROM epcis_named_query WHERE name = %s"

_SUBSCRIPTION_COLUMNS = (
    "subscription_id, query_name, dest, stream, schedule, report_if_empty, initial_record_time, created_at,"
    " last_notified_at"
)
# The cursor starts after the last event recorded before initialRecordTime.
INSERT_SUBSCRIPTION = (
    "INSERT INTO epcis_subscription (subscription_id, query_name, key_id, dest, signature_token, stream,"
    " schedule, report_if_empty, initial_record_time, after_seq, next_run_at)"
    " VALUES (%(id)s, %(query)s, %(key)s, %(dest)s, %(token)s, %(stream)s, %(schedule)s, %(if_empty)s,"
    " %(initial)s, (SELECT COALESCE(max(seq), 0) FROM ledger_event WHERE record_time < %(initial)s),"
    " %(next_run)s)"
    " RETURNING " + _SUBSCRIPTION_COLUMNS
)
SUBSCRIPTIONS = (
    "SELECT "
    + _SUBSCRIPTION_COLUMNS
    + " FROM epcis_subscription WHERE query_name = %(name)s"
    + _SEEN
    + " ORDER BY created_at, subscription_id"
)
SUBSCRIPTION = (
    "SELECT " + _SUBSCRIPTION_COLUMNS + " FROM epcis_subscription"
    " WHERE query_name = %(name)s AND subscription_id = %(id)s" + _SEEN
)
DELETE_SUBSCRIPTION = "DELETE FROM epcis_subscription WHERE query_name = %s AND subscription_id = %s"

# -- the worker -------------------------------------------------------------------------------------------

# Subscriptions with work to do and no delivery pending, whose key may read (not revoked, a role of
# ``readers``): a stream with events past its cursor, a schedule once it is due; in id order from
# ``after_id`` (a pass takes each once). With the key's role and party: a delivery holds only the events
# that key may read (cc_sees_event).
TAKE_SUBSCRIPTIONS = (
    "SELECT s.subscription_id, q.query, s.schedule, s.report_if_empty, s.after_seq, s.next_run_at,"
    " k.role, k.party_id"
    " FROM epcis_subscription s JOIN epcis_named_query q ON q.name = s.query_name"
    " JOIN api_key k ON k.key_id = s.key_id"
    " WHERE (s.stream OR s.next_run_at <= %(now)s)"
    " AND k.revoked_at IS NULL AND k.role = ANY(%(readers)s) AND s.subscription_id > %(after_id)s"
    " AND (NOT s.stream OR s.after_seq < (SELECT COALESCE(max(seq), 0) FROM ledger_event))"
    " AND NOT EXISTS (SELECT 1 FROM epcis_delivery d WHERE d.subscription_id = s.subscription_id)"
    " ORDER BY s.subscription_id LIMIT %(limit)s FOR UPDATE OF s SKIP LOCKED"
)
LEDGER_HEAD = "SELECT COALESCE(max(seq), 0) FROM ledger_event"
INSERT_DELIVERY = (
    "INSERT INTO epcis_delivery (subscription_id, idempotency_key, body, event_count, last_seq,"
    " next_attempt_at) VALUES (%(sub)s, %(key)s, %(body)s, %(count)s, %(last_seq)s, %(now)s)"
)
ADVANCE_SUBSCRIPTION = (
    "UPDATE epcis_subscription SET after_seq = %(after_seq)s, next_run_at = %(next_run)s"
    " WHERE subscription_id = %(sub)s"
)

# Deliveries not held whose subscription's key may no longer read are held (with the reason): kept,
# not sent.
HOLD_DELIVERIES = (
    "UPDATE epcis_delivery d SET held = %(reason)s FROM epcis_subscription s, api_key k"
    " WHERE d.held IS NULL AND s.subscription_id = d.subscription_id AND k.key_id = s.key_id"
    " AND (k.revoked_at IS NOT NULL OR NOT (k.role = ANY(%(readers)s)))"
)
TAKE_DUE_DELIVERY = (
    "SELECT d.delivery_id, d.subscription_id, d.idempotency_key, d.body, d.attempts, s.dest,"
    " s.signature_token"
    " FROM epcis_delivery d JOIN epcis_subscription s ON s.subscription_id = d.subscription_id"
    " JOIN api_key k ON k.key_id = s.key_id"
    " WHERE d.held IS NULL AND k.revoked_at IS NULL AND k.role = ANY(%(readers)s)"
    " AND d.next_attempt_at <= %(now)s"
    " ORDER BY d.next_attempt_at, d.delivery_id LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
)
DELIVERED = "DELETE FROM epcis_delivery WHERE delivery_id = %s"
NOTIFIED = "UPDATE epcis_subscription SET last_notified_at = %(now)s WHERE subscription_id = %(sub)s"
RETRY_LATER = (
    "UPDATE epcis_delivery SET attempts = attempts + 1, next_attempt_at = %(next)s, last_error = %(error)s"
    " WHERE delivery_id = %(id)s"
)
NAMED_QUERY_OWNER = "SELECT key_id FROM epcis_named_query WHERE name = %(name)s" + _SEEN
SUBSCRIPTION_OWNER = (
    "SELECT key_id FROM epcis_subscription WHERE query_name = %(name)s AND subscription_id = %(id)s" + _SEEN
)

"""Stage 3, EPCIS subscriptions: the worker that turns new matching ledger events into signed webhook
deliveries and sends them, at least once, with exponential backoff that survives a restart.

Each pass (``run_once``, with the time it runs at as a parameter):

1. Makes deliveries. The subscriptions with work to do (a stream with events past its cursor, a
   schedule that is due) and no delivery pending are taken ``FOR UPDATE SKIP LOCKED``; the named query
   runs from the cursor (at most ``batch_events`` events) in a REPEATABLE READ snapshot with the ledger
   head, so the new cursor is exact: the last event delivered when more remain, else the head. The
   EPCISQueryDocument, an idempotency key and the cursor are committed together.
2. Holds the pending deliveries whose subscription's key is revoked or may not read (they stay, with the
   reason, and are not sent).
3. Sends the due deliveries, each taken ``FOR UPDATE SKIP LOCKED`` and kept locked while it is POSTed,
   so several workers never send one at once. A 2xx answer deletes it; anything else sets its next
   attempt ``backoff_s * 2**attempts`` later (at most ``max_backoff_s``); it is never given up.

Every attempt of a delivery sends the same body and the same ``Idempotency-Key``; the body is signed
with the subscriber's ``signatureToken``: ``GS1-Signature: sha256=<hex HMAC-SHA256(token, body)>``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg
from psycopg import IsolationLevel

from rules.alarms.notify import sign
from traceability.api import auth
from traceability.api.scope import Scope
from traceability.epcis import documents, events_query
from traceability.subscriptions import queries, store
from traceability.subscriptions.schedule import Schedule, ScheduleError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "GS1-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Why a delivery is held and not sent.
HELD_NO_READ = "the subscription's API key is revoked or may not read"
# The roles that may read: a subscription delivers only while its key has one of them.
READERS = sorted(role for role, perms in auth.ROLES.items() if auth.READ in perms)
# Events per delivery: a receiver gets documents of bounded size; a backlog goes in several.
BATCH_EVENTS = 100
# Subscriptions taken per transaction, and deliveries sent per pass: bound each pass's length.
TAKE_SUBSCRIPTIONS = 20
SEND_PER_PASS = 100
# A receiver down for a day is retried hourly at worst; the first retry comes after a second.
BACKOFF_S = 1.0
MAX_BACKOFF_S = 3600.0
# A receiver that does not answer within this is an attempt failed (the delivery stays locked meanwhile).
TIMEOUT_S = 10.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def with_subscription_id(body: bytes, subscription_id: str) -> bytes:
    """The query document with its subscription named in ``queryResults`` (EPCIS QueryResults). The
    document's head (everything before the first event) holds the first ``queryName``."""
    marker = b'"queryName":"SimpleEventQuery"'
    extra = b',"subscriptionID":' + msgspec.json.encode(subscription_id)
    return body.replace(marker, marker + extra, 1)


class SubscriptionWorker:
    """Makes and sends the deliveries of EPCIS query subscriptions."""

    def __init__(
        self,
        conninfo: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        http: httpx.Client | None = None,
        batch_events: int = BATCH_EVENTS,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._conninfo = conninfo
        self._clock = clock
        self._http = http
        self._batch_events = batch_events
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s

    def run_once(self, now: datetime | None = None) -> int:
        """One pass at ``now`` (default: the clock); returns the deliveries made plus the attempts made."""
        now = now or self._clock()
        with psycopg.connect(self._conninfo) as conn, self._client() as http:
            made = self._make(conn, now)
            conn.execute(queries.HOLD_DELIVERIES, {"reason": HELD_NO_READ, "readers": READERS})
            conn.commit()
            return made + self._send(conn, http, now)

    def run_forever(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Run passes until ``stop`` is set; wait ``poll_s`` after a pass with nothing to do."""
        with self._client() as http:
            self._http = http
            try:
                while not stop.is_set():
                    if self.run_once() == 0:
                        stop.wait(poll_s)
            finally:
                self._http = None

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        if self._http is not None:
            with nullcontext(self._http) as given:
                yield given
        else:
            with httpx.Client(timeout=self._timeout_s, follow_redirects=False) as made:
                yield made

    # -- making deliveries ----------------------------------------------------------------------------

    def _make(self, conn: psycopg.Connection[Any], now: datetime) -> int:
        made = 0
        after_id = ""
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        try:
            while True:
                try:
                    with conn.transaction():
                        rows = conn.execute(
                            queries.TAKE_SUBSCRIPTIONS,
                            {
                                "now": now,
                                "readers": READERS,
                                "after_id": after_id,
                                "limit": TAKE_SUBSCRIPTIONS,
                            },
                        ).fetchall()
                        if not rows:
                            return made
                        after_id = str(rows[-1][0])
                        head = int(conn.execute(queries.LEDGER_HEAD).fetchone()[0])  # type: ignore[index]
                        for row in rows:
                            made += self._make_guarded(conn, now, head, row)
                except psycopg.errors.SerializationFailure:
                    # A subscription changed (deleted, or delivered by another worker) after this
                    # snapshot began: the next pass takes it again.
                    log.debug("subscriptions changed under the pass; taken again next pass")
        finally:
            conn.isolation_level = None

    def _make_guarded(self, conn: psycopg.Connection[Any], now: datetime, head: int, row: Any) -> int:
        """``_make_one`` in a savepoint: a stored query the event query no longer accepts, a schedule that
        no longer fires, or a value the database refuses, leaves that subscription as it was, logged, and
        the others go on."""
        try:
            with conn.transaction():
                return self._make_one(conn, now, head, *row)
        except (events_query.QueryParameterError, ScheduleError, psycopg.DataError) as exc:
            log.error("subscription %s: its query cannot run, nothing delivered: %s", row[0], exc)
            return 0

    def _make_one(
        self,
        conn: psycopg.Connection[Any],
        now: datetime,
        head: int,
        subscription_id: str,
        query: dict[str, Any],
        schedule: dict[str, str] | None,
        report_if_empty: bool,
        after_seq: int,
        next_run_at: datetime | None,
        role: str,
        party_id: str | None,
    ) -> int:
        q = store.event_query(query, per_page=self._batch_events, after_seq=after_seq)
        q.seen_by = Scope(role, party_id).params()  # what the subscribing key may read, no more
        events, token = events_query.run(conn, q)
        cursor = events_query.decode_token(token) if token is not None else max(after_seq, head)
        next_run = next_run_at
        if schedule is not None and token is None:  # the firing is complete: the next one
            next_run = Schedule.parse(schedule).next_after(now)
            if next_run is None:
                raise ScheduleError("the schedule fires no more")
        conn.execute(
            queries.ADVANCE_SUBSCRIPTION, {"sub": subscription_id, "after_seq": cursor, "next_run": next_run}
        )
        if not events and not (schedule is not None and report_if_empty):
            return 0
        body = with_subscription_id(documents.query_document(events, creation_date=now), subscription_id)
        conn.execute(
            queries.INSERT_DELIVERY,
            {
                "sub": subscription_id,
                "key": str(uuid.uuid4()),
                "body": body,
                "count": len(events),
                "last_seq": cursor,
                "now": now,
            },
        )
        return 1

    # -- sending ------------------------------------------------------------------------------------------

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        return timedelta(seconds=min(self._backoff_s * 2 ** min(attempts - 1, 40), self._max_backoff_s))

    def _send(self, conn: psycopg.Connection[Any], http: httpx.Client, now: datetime) -> int:
        attempts = 0
        while attempts < SEND_PER_PASS:
            with conn.transaction():
                row = conn.execute(queries.TAKE_DUE_DELIVERY, {"now": now, "readers": READERS}).fetchone()
                if row is None:
                    return attempts
                delivery_id, subscription_id, key, body, tried, dest, token = row
                attempts += 1
                error = self._post(http, dest, bytes(body), key, token)
                if error is None:
                    conn.execute(queries.DELIVERED, (delivery_id,))
                    conn.execute(queries.NOTIFIED, {"sub": subscription_id, "now": now})
                else:
                    log.warning("subscription %s: delivery to %s failed: %s", subscription_id, dest, error)
                    conn.execute(
                        queries.RETRY_LATER,
                        {"id": delivery_id, "next": now + self.backoff(tried + 1), "error": error[:500]},
                    )
        return attempts

    def _post(self, http: httpx.Client, dest: str, body: bytes, key: str, token: str | None) -> str | None:
        """POST one delivery; None when the receiver accepted it (2xx), else what went wrong."""
        headers = {"content-type": "application/json", IDEMPOTENCY_HEADER: key}
        if token:
            headers[SIGNATURE_HEADER] = sign(token.encode("utf-8"), body)
        try:
            response = http.post(dest, content=body, headers=headers, timeout=self._timeout_s)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # the receiver's problem, never the worker's
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

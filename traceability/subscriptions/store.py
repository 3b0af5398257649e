"""Stage 3, EPCIS subscriptions: named queries (their parameters checked against what the event query
supports) and webhook subscriptions to them, kept in the database.

A named query stores EPCIS query language parameters (``{"eventType": ["ObjectEvent"], "EQ_bizStep":
[...]}``); it runs through ``events_query.from_params``, as the REST bindings' resources do. It keeps every
SimpleEventQuery parameter that query takes but paging and ordering (``PARAMETERS``), plus the sensor
filters ``<OP>_<field>_<type>`` (``events_query.SENSOR_PARAM``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.types.json import Jsonb

from traceability import queries as traceability_queries
from traceability.epcis import events_query
from traceability.epcis.builders import iso_ms
from traceability.epcis.events_query import EventQuery, QueryParameterError
from traceability.subscriptions import queries
from traceability.subscriptions.schedule import Schedule, ScheduleError

Conn = psycopg.Connection[Any]

# What a named query may not keep: paging and ordering are the caller's when it runs (a subscription
# follows the ledger's order from its cursor).
NOT_STORED = frozenset(
    {"perPage", "nextPageToken", "orderBy", "orderDirection", "eventCountLimit", "maxEventCount"}
)
# The parameters a named query may keep: every SimpleEventQuery parameter of ``events_query.from_params``
# but those, plus the sensor filters ``<OP>_<field>_<type>``.
PARAMETERS = (events_query.LIST_PARAMS | events_query.SCALAR_PARAMS) - NOT_STORED
# Values a list parameter may hold, and how long each: a query is a filter, not a bulk upload.
MAX_VALUES = 1000
MAX_VALUE_CHARS = 2000


class UnknownQueryError(LookupError):
    """No named query of that name."""


class QueryExistsError(ValueError):
    """A named query of that name exists already."""


class SubscriptionError(ValueError):
    """A subscription that cannot be made (its message is written for the client)."""


def validated(query: Mapping[str, Any]) -> dict[str, Any]:
    """The query's parameters as stored: lists of strings (the list parameters), strings (the other
    parameters), numbers (sensor thresholds). Raises ``QueryParameterError`` for a parameter the event query
    does not support or a value it cannot use."""
    out: dict[str, Any] = {}
    for name, value in query.items():
        if name in NOT_STORED:
            raise QueryParameterError(f"{name} is chosen when a query runs; a named query does not keep it")
        if name not in PARAMETERS:
            if events_query.SENSOR_PARAM.match(name) is None:
                raise QueryParameterError(f"the query parameter {name[:100]!r} is not supported")
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise QueryParameterError(f"{name} must be a number")
            out[name] = value
        elif name in events_query.LIST_PARAMS:
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise QueryParameterError(f"{name} must be a list of strings")
            if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_CHARS for v in values):
                raise QueryParameterError(f"{name} has more than {MAX_VALUES} values or one too long")
            out[name] = values
        else:
            if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
                raise QueryParameterError(f"{name} must be a string")
            out[name] = value
    event_query(out, per_page=1, after_seq=0)  # whatever the event query refuses is refused now
    return out


def event_query(
    query: Mapping[str, Any], *, per_page: int | None, after_seq: int = 0, next_page_token: str | None = None
) -> EventQuery:
    """The EventQuery of stored parameters, from ``after_seq`` (or a page token), ``per_page`` long."""
    params = {name: value if isinstance(value, list) else [str(value)] for name, value in query.items()}
    token = next_page_token or (events_query.encode_token(after_seq) if after_seq > 0 else None)
    return events_query.from_params(params, per_page=per_page, next_page_token=token)


# -- named queries ----------------------------------------------------------------------------------------


def create_query(conn: Conn, name: str, query: Mapping[str, Any], key_id: int) -> dict[str, Any]:
    """Store a named query (in the caller's transaction); raises ``QueryExistsError`` if the name is taken."""
    stored = validated(query)
    row = conn.execute(queries.INSERT_NAMED_QUERY, {"name": name, "query": Jsonb(stored), "key": key_id})
    if row.rowcount == 0:
        raise QueryExistsError(f"a query named {name!r} exists already")
    return {"name": name, "query": stored}


# Who reads the named queries and subscriptions: a scope's parameters and the reader's key id
# (``reader(...)``); by default, someone who sees them all.
ANY_READER: Mapping[str, Any] = MappingProxyType({**traceability_queries.EVERYTHING, "reader_key": None})


def reader(seen_by: Mapping[str, str | None], key_id: int) -> dict[str, Any]:
    """The reader of the named queries and subscriptions: its scope's parameters and its key (a key sees
    what it made, its party's keys made, or everything if its role reads everything: cc_sees_key)."""
    return {**seen_by, "reader_key": key_id}


def list_queries(
    conn: Conn, *, after: str, limit: int, seen_by: Mapping[str, Any] = ANY_READER
) -> list[dict[str, Any]]:
    rows = conn.execute(queries.NAMED_QUERIES, {**seen_by, "after": after, "limit": limit}).fetchall()
    return [{"name": r[0], "query": r[1]} for r in rows]


def get_query(conn: Conn, name: str, seen_by: Mapping[str, Any] = ANY_READER) -> dict[str, Any]:
    row = conn.execute(queries.NAMED_QUERY, {**seen_by, "name": name}).fetchone()
    if row is None:
        raise UnknownQueryError(name)
    return {"name": row[0], "query": row[1]}


def query_owner(conn: Conn, name: str, seen_by: Mapping[str, Any] = ANY_READER) -> int | None:
    """The key that made the named query; None when there is no such query (that ``seen_by`` sees)."""
    row = conn.execute(queries.NAMED_QUERY_OWNER, {**seen_by, "name": name}).fetchone()
    return None if row is None else int(row[0])


def subscription_owner(
    conn: Conn, query_name: str, subscription_id: str, seen_by: Mapping[str, Any] = ANY_READER
) -> int | None:
    """The key that made the subscription (whose reading rights it delivers with); None when none (that
    ``seen_by`` sees)."""
    args = {**seen_by, "name": query_name, "id": subscription_id}
    row = conn.execute(queries.SUBSCRIPTION_OWNER, args).fetchone()
    return None if row is None else int(row[0])


def delete_query(conn: Conn, name: str) -> None:
    """Delete a named query, its subscriptions and their pending deliveries."""
    if conn.execute(queries.DELETE_NAMED_QUERY, (name,)).rowcount == 0:
        raise UnknownQueryError(name)


# -- subscriptions ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSubscription:
    dest: str
    signature_token: str | None
    stream: bool | None
    schedule: Mapping[str, str | None] | None
    report_if_empty: bool
    initial_record_time: datetime | None


def _checked_dest(dest: str) -> str:
    """``dest`` if it is an http(s) URL with a host (and a port in range), as the worker's client reads it."""
    try:
        parts = urlsplit(dest)
        usable = (
            parts.scheme.lower() in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
            and dest.isprintable()
            and " " not in dest
            and bool(httpx.URL(dest).host)
        )
    except (ValueError, httpx.InvalidURL):
        usable = False
    if not usable:
        raise SubscriptionError("dest must be an http or https URL")
    return dest


def _response(row: Any) -> dict[str, Any]:
    sub_id, query_name, dest, stream, schedule, if_empty, initial, created, notified = row
    out: dict[str, Any] = {"subscriptionID": sub_id, "queryName": query_name, "dest": dest}
    if stream:
        out["stream"] = True
    else:
        out["schedule"] = schedule
        out["reportIfEmpty"] = if_empty
    out["initialRecordTime"] = iso_ms(initial)
    out["createdAt"] = iso_ms(created)
    if notified is not None:
        out["lastNotifiedAt"] = iso_ms(notified)
    return out


def create_subscription(
    conn: Conn,
    query_name: str,
    new: NewSubscription,
    key_id: int,
    *,
    now: datetime | None = None,
    seen_by: Mapping[str, Any] = ANY_READER,
) -> dict[str, Any]:
    """Subscribe ``dest`` to a named query for the key ``key_id`` (in the caller's transaction). A stream
    delivers every new matching event; a schedule delivers the events new since its last firing. The first
    events considered are those recorded from ``initialRecordTime`` (default: now)."""
    now = now or datetime.now(UTC)
    dest = _checked_dest(new.dest)
    if (new.stream is True) == (new.schedule is not None):
        raise SubscriptionError("give either stream: true or a schedule (not both)")
    schedule_fields: dict[str, str | None] | None = None
    next_run: datetime | None = None
    if new.schedule is not None:
        try:
            next_run = Schedule.parse(new.schedule).next_after(now)
        except ScheduleError as exc:
            raise SubscriptionError(str(exc)) from None
        schedule_fields = {k: v for k, v in new.schedule.items() if v not in (None, "")}
    get_query(conn, query_name, seen_by)
    row = conn.execute(
        queries.INSERT_SUBSCRIPTION,
        {
            "id": str(uuid.uuid4()),
            "query": query_name,
            "key": key_id,
            "dest": dest,
            "token": new.signature_token,
            "stream": new.schedule is None,
            "schedule": None if schedule_fields is None else Jsonb(schedule_fields),
            "if_empty": new.report_if_empty,
            "initial": new.initial_record_time or now,
            "next_run": next_run,
        },
    ).fetchone()
    assert row is not None
    return _response(row)


def list_subscriptions(
    conn: Conn, query_name: str, seen_by: Mapping[str, Any] = ANY_READER
) -> list[dict[str, Any]]:
    get_query(conn, query_name, seen_by)
    rows = conn.execute(queries.SUBSCRIPTIONS, {**seen_by, "name": query_name}).fetchall()
    return [_response(r) for r in rows]


def get_subscription(
    conn: Conn, query_name: str, subscription_id: str, seen_by: Mapping[str, Any] = ANY_READER
) -> dict[str, Any] | None:
    args = {**seen_by, "name": query_name, "id": subscription_id}
    row = conn.execute(queries.SUBSCRIPTION, args).fetchone()
    return None if row is None else _response(row)


def delete_subscription(conn: Conn, query_name: str, subscription_id: str) -> bool:
    """Unsubscribe (its pending delivery goes with it); False when there is no such subscription."""
    return conn.execute(queries.DELETE_SUBSCRIPTION, (query_name, subscription_id)).rowcount > 0

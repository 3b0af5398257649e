"""Stage 3, EPCIS subscriptions: named queries (their parameters checked against what the event query
supports) and webhook subscriptions to them, kept in the database.

A named query stores EPCIS query language parameters (``{"eventType": ["ObjectEvent"], "EQ_bizStep":
[...]}``); it runs through ``events_query.build`` exactly as ``GET /epcis/events`` does with the same
parameters. ``PARAMETERS`` lists the parameters that route takes (a test holds the two together), plus
the sensor filters ``<OP>_<field>_<type>`` (``events_query.SENSOR_PARAM``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.types.json import Jsonb

from traceability.epcis import events_query
from traceability.epcis.builders import iso_ms
from traceability.epcis.events_query import EventQuery, QueryParameterError
from traceability.subscriptions import queries
from traceability.subscriptions.schedule import Schedule, ScheduleError

Conn = psycopg.Connection[Any]

LIST, TIME, UOM = "list", "time", "uom"
# EPCIS query parameter -> (the keyword of events_query.build it feeds, its kind).
PARAMETERS: dict[str, tuple[str, str]] = {
    "GE_eventTime": ("ge_event_time", TIME),
    "LT_eventTime": ("lt_event_time", TIME),
    "eventType": ("event_type", LIST),
    "EQ_bizStep": ("eq_biz_step", LIST),
    "MATCH_epc": ("match_epc", LIST),
    "MATCH_parentID": ("match_parent_id", LIST),
    "EQ_bizLocation": ("eq_biz_location", LIST),
    "EQ_readPoint": ("eq_read_point", LIST),
    "uom": ("uom", UOM),
}
# Values a list parameter may hold, and how long each: a query is a filter, not a bulk upload.
MAX_VALUES = 1000
MAX_VALUE_CHARS = 2000


class UnknownQueryError(LookupError):
    """No named query of that name."""


class QueryExistsError(ValueError):
    """A named query of that name exists already."""


class SubscriptionError(ValueError):
    """A subscription that cannot be made (its message is written for the client)."""


def _time(name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise QueryParameterError(f"{name} must be a date-time string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise QueryParameterError(f"{name} is not an ISO 8601 date-time: {value[:60]!r}") from None


def validated(query: Mapping[str, Any]) -> dict[str, Any]:
    """The query's parameters as stored: lists of strings, times and units as strings, sensor thresholds
    as numbers. Raises ``QueryParameterError`` for a parameter the event query does not support or a value
    it cannot use."""
    out: dict[str, Any] = {}
    for name, value in query.items():
        known = PARAMETERS.get(name)
        if known is None:
            if events_query.SENSOR_PARAM.match(name) is None:
                raise QueryParameterError(f"the query parameter {name[:100]!r} is not supported")
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise QueryParameterError(f"{name} must be a number")
            out[name] = value
            continue
        kind = known[1]
        if kind == LIST:
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise QueryParameterError(f"{name} must be a list of strings")
            if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_CHARS for v in values):
                raise QueryParameterError(f"{name} has more than {MAX_VALUES} values or one too long")
            out[name] = values
        elif kind == TIME:
            _time(name, value)
            out[name] = value
        else:
            if not isinstance(value, str) or value not in events_query.UNIT_TO_BASE:
                raise QueryParameterError(f"uom must be one of {sorted(events_query.UNIT_TO_BASE)}")
            out[name] = value
    event_query(out, per_page=1, after_seq=0)  # whatever build refuses is refused now, not at run time
    return out


def event_query(
    query: Mapping[str, Any], *, per_page: int | None, after_seq: int = 0, next_page_token: str | None = None
) -> EventQuery:
    """The EventQuery of stored parameters, from ``after_seq`` (or a page token), ``per_page`` long."""
    kwargs: dict[str, Any] = {keyword: None for keyword, _ in PARAMETERS.values()}
    for name, value in query.items():
        known = PARAMETERS.get(name)
        if known is not None:
            keyword, kind = known
            kwargs[keyword] = _time(name, value) if kind == TIME else value
    token = next_page_token or (events_query.encode_token(after_seq) if after_seq > 0 else None)
    return events_query.build(
        **kwargs,
        all_params={name: str(v) for name, v in query.items() if name not in PARAMETERS},
        per_page=per_page,
        next_page_token=token,
    )


# -- named queries ----------------------------------------------------------------------------------------


def create_query(conn: Conn, name: str, query: Mapping[str, Any], key_id: int) -> dict[str, Any]:
    """Store a named query (in the caller's transaction); raises ``QueryExistsError`` if the name is taken."""
    stored = validated(query)
    row = conn.execute(queries.INSERT_NAMED_QUERY, {"name": name, "query": Jsonb(stored), "key": key_id})
    if row.rowcount == 0:
        raise QueryExistsError(f"a query named {name!r} exists already")
    return {"name": name, "query": stored}


def list_queries(conn: Conn, *, after: str, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(queries.NAMED_QUERIES, {"after": after, "limit": limit}).fetchall()
    return [{"name": r[0], "query": r[1]} for r in rows]


def get_query(conn: Conn, name: str) -> dict[str, Any]:
    row = conn.execute(queries.NAMED_QUERY, (name,)).fetchone()
    if row is None:
        raise UnknownQueryError(name)
    return {"name": row[0], "query": row[1]}


def query_owner(conn: Conn, name: str) -> int | None:
    """The key that made the named query; None when there is no such query."""
    row = conn.execute(queries.NAMED_QUERY_OWNER, (name,)).fetchone()
    return None if row is None else int(row[0])


def subscription_owner(conn: Conn, query_name: str, subscription_id: str) -> int | None:
    """The key that made the subscription (whose reading rights it delivers with); None when none."""
    row = conn.execute(queries.SUBSCRIPTION_OWNER, (query_name, subscription_id)).fetchone()
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
    conn: Conn, query_name: str, new: NewSubscription, key_id: int, *, now: datetime | None = None
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
    get_query(conn, query_name)
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


def list_subscriptions(conn: Conn, query_name: str) -> list[dict[str, Any]]:
    get_query(conn, query_name)
    return [_response(r) for r in conn.execute(queries.SUBSCRIPTIONS, (query_name,)).fetchall()]


def get_subscription(conn: Conn, query_name: str, subscription_id: str) -> dict[str, Any] | None:
    row = conn.execute(queries.SUBSCRIPTION, (query_name, subscription_id)).fetchone()
    return None if row is None else _response(row)


def delete_subscription(conn: Conn, query_name: str, subscription_id: str) -> bool:
    """Unsubscribe (its pending delivery goes with it); False when there is no such subscription."""
    return conn.execute(queries.DELETE_SUBSCRIPTION, (query_name, subscription_id)).rowcount > 0

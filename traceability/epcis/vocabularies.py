"""Stage 3, EPCIS: the known values of the REST bindings' top-level resources (business steps, dispositions,
event types, business locations, read points, EPCs), paged in value order (``nextPageToken``).

Business steps, dispositions and event types list the standard's values and every other value an event in
the ledger uses, as bare CBV names; the others list the values events use. Each distinct value is found by
an index skip scan (one index probe per value), never by reading every event."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from traceability import queries
from traceability.epcis.builders import biz_step_name, disposition_name
from traceability.epcis.events_query import QueryParameterError
from traceability.epcis.validation import EVENT_TYPES, vocabulary

Conn = psycopg.Connection[Any]

# A vocabulary's own values beyond the standard's are few; this many are read to merge them (a bound, not
# a page size).
MAX_CUSTOM_VALUES = 10_000


@dataclass(frozen=True, slots=True)
class Resource:
    """A top-level resource: where its values are (a table, an indexed expression), the standard's values
    (None: only what events use), and how a value is named (bare CBV names)."""

    table: LiteralString
    expr: LiteralString
    standard: Callable[[], tuple[str, ...]] | None = None
    name: Callable[[str], str] = str


def _bare_step(value: str) -> str:
    return str(biz_step_name(value))


def _bare_disposition(value: str) -> str:
    return str(disposition_name(value))


# The expressions are those of the indexes of migrations 0003 and 0013, so each skip-scan probe is an index
# probe.
RESOURCES: dict[str, Resource] = {
    "bizSteps": Resource("ledger_event", "biz_step", lambda: vocabulary("bizStep"), _bare_step),
    "dispositions": Resource(
        "ledger_event", "(event ->> 'disposition')", lambda: vocabulary("disposition"), _bare_disposition
    ),
    "eventTypes": Resource("ledger_event", "event_type", lambda: EVENT_TYPES),
    "bizLocations": Resource("ledger_event", "((event -> 'bizLocation') ->> 'id')"),
    "readPoints": Resource("ledger_event", "((event -> 'readPoint') ->> 'id')"),
    "epcs": Resource("event_subject", "subject_id"),
}


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(f"after:{after}".encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    kind, sep, after = text.partition(":")
    if kind != "after" or not sep:
        raise QueryParameterError("nextPageToken is not one this server issued for this resource")
    return after


def _used(conn: Conn, res: Resource, after: str, limit: int, seen_by: Mapping[str, str | None]) -> list[str]:
    """The distinct values the events ``seen_by`` may read use, greater than ``after``, in order: at most
    ``limit`` of them (for a reader who sees every event, ``cc_sees_event`` folds to true: an index probe a
    value still)."""
    expr, table = sql.SQL(res.expr), sql.Identifier(res.table)
    seen = "(cc_sees_all(%(role)s) OR cc_sees_event(%(role)s, %(party)s, seq))"
    statement = sql.SQL(
        "WITH RECURSIVE v(x) AS ("
        " (SELECT {e} FROM {t} WHERE {e} > %(after)s AND {seen} ORDER BY {e} LIMIT 1)"
        " UNION ALL"
        " SELECT (SELECT {e} FROM {t} WHERE {e} > v.x AND {seen} ORDER BY {e} LIMIT 1) FROM v"
        " WHERE v.x IS NOT NULL"
        ") SELECT x FROM v WHERE x IS NOT NULL LIMIT %(limit)s"
    ).format(e=expr, t=table, seen=sql.SQL(seen))
    args = {**seen_by, "after": after, "limit": limit}
    return [str(r[0]) for r in conn.execute(statement, args).fetchall()]


def known_values(
    conn: Conn,
    resource: str,
    *,
    per_page: int,
    token: str | None,
    seen_by: Mapping[str, str | None] = queries.EVERYTHING,
) -> tuple[list[str], str | None]:
    """One page of the resource's known values and the token of the next page (None on the last): the
    standard's values and those of the events ``seen_by`` (a scope's parameters) may read."""
    res = RESOURCES[resource]
    after = decode_token(token) if token else ""
    if res.standard is None:
        values = _used(conn, res, after, per_page + 1, seen_by)
    else:
        used = _used(conn, res, "", MAX_CUSTOM_VALUES, seen_by)
        merged = set(res.standard()) | {res.name(v) for v in used}
        values = sorted(v for v in merged if v > after)[: per_page + 1]
    more = len(values) > per_page
    values = values[:per_page]
    return values, (encode_token(values[-1]) if more and values else None)

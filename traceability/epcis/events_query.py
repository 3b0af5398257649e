"""Stage 3, EPCIS: the EPCIS 2.0 event query (GET /epcis/events): filters, sensor value filters with unit
conversion, and seq-keyed pagination (``nextPageToken``).

Sensor filters are ``<OP>_<field>_<type>`` with OP in EQ, GT, GE, LT, LE, field in value, minValue,
maxValue, meanValue, and type a measurement type (``Temperature``); the threshold is in the unit named by
``uom`` (UN/CEFACT: CEL, KEL, FAH for temperature; default: the type's base unit, KEL). Stored values
are converted to the same base unit before comparing, so a query in KEL matches data stored in CEL.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from traceability.epcis.builders import biz_step_name

Conn = psycopg.Connection[Any]

# value in unit -> base unit: base = value * scale + offset. Temperature base: kelvin.
UNIT_TO_BASE: dict[str, tuple[float, float]] = {
    "KEL": (1.0, 0.0),
    "CEL": (1.0, 273.15),
    "FAH": (5.0 / 9.0, 459.67 * 5.0 / 9.0),
}
DEFAULT_UOM = {"Temperature": "KEL"}
SENSOR_PARAM = re.compile(r"^(EQ|GT|GE|LT|LE)_(value|minValue|maxValue|meanValue)_([A-Za-z][A-Za-z0-9_]*)$")
SQL_OPS = {"EQ": "=", "GT": ">", "GE": ">=", "LT": "<", "LE": "<="}
MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 30


class QueryParameterError(ValueError):
    """A query parameter the EPCIS query cannot use."""


@dataclass(slots=True)
class EventQuery:
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    event_types: Sequence[str] = ()
    biz_steps: Sequence[str] = ()
    epcs: Sequence[str] = ()
    parent_ids: Sequence[str] = ()
    biz_locations: Sequence[str] = ()
    read_points: Sequence[str] = ()
    sensor: list[tuple[str, str, str, float]] = field(default_factory=list)  # (op, field, type, base value)
    per_page: int = DEFAULT_PER_PAGE
    after_seq: int = 0


def to_base(value: float, uom: str) -> float:
    try:
        scale, offset = UNIT_TO_BASE[uom]
    except KeyError:
        raise QueryParameterError(f"unit {uom!r} not supported (one of {sorted(UNIT_TO_BASE)})") from None
    return value * scale + offset


def encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "seq" or not value.isdigit():
            raise ValueError(text)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise QueryParameterError("nextPageToken is not one this server issued") from None


def sensor_filters(params: Mapping[str, str], uom: str | None) -> list[tuple[str, str, str, float]]:
    """The ``<OP>_<field>_<type>`` parameters, thresholds converted to base units."""
    out = []
    for name, raw in params.items():
        m = SENSOR_PARAM.match(name)
        if m is None:
            continue
        op, fld, typ = m.groups()
        try:
            number = float(raw)
        except ValueError:
            raise QueryParameterError(f"{name} must be a number") from None
        unit = uom or DEFAULT_UOM.get(typ, "KEL")
        out.append((op, fld, typ, to_base(number, unit)))
    return out


def _split(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(x for x in (p.strip() for p in v.split("|")) if x)
    return out


def build(
    *,
    ge_event_time: datetime | None,
    lt_event_time: datetime | None,
    event_type: Sequence[str] | None,
    eq_biz_step: Sequence[str] | None,
    match_epc: Sequence[str] | None,
    match_parent_id: Sequence[str] | None,
    eq_biz_location: Sequence[str] | None,
    eq_read_point: Sequence[str] | None,
    all_params: Mapping[str, str],
    uom: str | None,
    per_page: int | None,
    next_page_token: str | None,
) -> EventQuery:
    q = EventQuery(
        ge_event_time=ge_event_time,
        lt_event_time=lt_event_time,
        event_types=_split(event_type),
        biz_steps=[str(biz_step_name(b)) for b in _split(eq_biz_step)],
        epcs=_split(match_epc),
        parent_ids=_split(match_parent_id),
        biz_locations=_split(eq_biz_location),
        read_points=_split(eq_read_point),
        sensor=sensor_filters(all_params, uom),
        per_page=min(max(per_page or DEFAULT_PER_PAGE, 1), MAX_PER_PAGE),
        after_seq=0 if not next_page_token else decode_token(next_page_token),
    )
    return q


# Stored sensor value in base units: (value * scale + offset) by the report's uom.
_BASE_VALUE = """(CASE r->>'uom' WHEN 'CEL' THEN (r->>{f})::float8 + 273.15
    WHEN 'FAH' THEN ((r->>{f})::float8 + 459.67) * 5.0 / 9.0
    WHEN 'KEL' THEN (r->>{f})::float8 ELSE NULL END)"""


def run(conn: Conn, q: EventQuery) -> tuple[list[tuple[str, str]], str | None]:
    """One page of matching events and the token of the next page. Each event comes as two JSON texts, its
    ``@context`` and the rest of it (eventID included), that nothing here parses: the page is served
    without a walk over any event, however deeply one is nested (``documents.query_document``)."""
    where: list[sql.Composable] = [sql.SQL("e.seq > %(after)s")]
    args: dict[str, Any] = {"after": q.after_seq, "limit": q.per_page + 1}
    if q.ge_event_time is not None:
        where.append(sql.SQL("e.event_time >= %(ge_time)s"))
        args["ge_time"] = q.ge_event_time
    if q.lt_event_time is not None:
        where.append(sql.SQL("e.event_time < %(lt_time)s"))
        args["lt_time"] = q.lt_event_time
    any_of: tuple[tuple[Sequence[str], str, LiteralString], ...] = (
        (q.event_types, "types", "e.event_type = ANY(%(types)s)"),
        (q.biz_steps, "steps", "e.biz_step = ANY(%(steps)s)"),
        (
            q.epcs,
            "epcs",
            "e.seq IN (SELECT s.seq FROM event_subject s WHERE s.subject_id = ANY(%(epcs)s)"
            " AND s.role IN ('epc', 'child', 'input', 'output'))",
        ),
        (q.parent_ids, "parents", "e.event->>'parentID' = ANY(%(parents)s)"),
        (q.biz_locations, "locs", "e.event->'bizLocation'->>'id' = ANY(%(locs)s)"),
        (q.read_points, "rps", "e.event->'readPoint'->>'id' = ANY(%(rps)s)"),
    )
    for values, key, clause in any_of:
        if values:
            where.append(sql.SQL(clause))
            args[key] = list(values)
    for i, (op, fld, typ, base) in enumerate(q.sensor):
        f_key, t_key, v_key = f"sf{i}", f"st{i}", f"sv{i}"
        args[f_key], args[t_key], args[v_key] = fld, typ, base
        value = sql.SQL(_BASE_VALUE).format(f=sql.Placeholder(f_key))
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(e.event->'sensorElementList', '[]')) el,"
                " jsonb_array_elements(COALESCE(el->'sensorReport', '[]')) r"
                " WHERE regexp_replace(r->>'type', '^.*[/:#]', '') = {t}"
                " AND jsonb_typeof(r->{f}) = 'number' AND {value} {op} {v})"
            ).format(
                t=sql.Placeholder(t_key),
                f=sql.Placeholder(f_key),
                value=value,
                op=sql.SQL(SQL_OPS[op]),
                v=sql.Placeholder(v_key),
            )
        )
    statement = sql.SQL(
        "SELECT e.seq, (e.event -> '@context')::text, (e.event - '@context')::text FROM ledger_event e"
        " WHERE {} ORDER BY e.seq LIMIT %(limit)s"
    ).format(sql.SQL(" AND ").join(where))
    rows = conn.execute(statement, args).fetchall()
    more = len(rows) > q.per_page
    rows = rows[: q.per_page]
    token = encode_token(int(rows[-1][0])) if more and rows else None
    return [(str(r[1] or "null"), str(r[2])) for r in rows], token

"""Stage 3, EPCIS: the EPCIS 2.0 event query (GET /epcis/events and the REST bindings' resources): filters,
sensor value filters with unit conversion, ordering, and keyed pagination (``nextPageToken``).

``from_params`` takes a SimpleEventQuery parameter mapping (GET /epcis/events, the REST bindings'
resources, named queries) and refuses a parameter it does not know (``QueryParameterError``). EPCs,
parent IDs, business locations and read points match in every form of the same EPC (URN or GS1 Digital
Link, see ``digital_link.epc_forms``); business steps and dispositions as bare CBV names, Web URIs or
URNs. A MATCH_ value may be an EPC pattern (``urn:epc:idpat:sgtin:0614141.107346.*``): it matches every EPC,
or for the class parameters every class, it covers, in URN and Digital Link form (``epc_patterns``).

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

from traceability.epcis import epc_patterns
from traceability.epcis.builders import (
    DISPOSITION_PREFIXES,
    biz_step_name,
    disposition_name,
)
from traceability.epcis.digital_link import epc_forms

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


class QueryTooLargeError(ValueError):
    """More events match than the query's ``maxEventCount`` allows."""


# event_subject roles (traceability.ledger.derive.subjects_of) each MATCH_ parameter looks in.
SUBJECT_ROLES: dict[str, tuple[str, ...]] = {
    "MATCH_anyEPC": ("epc", "child", "parent", "input", "output"),
    "MATCH_inputEPC": ("input",),
    "MATCH_outputEPC": ("output",),
    "MATCH_epcClass": ("class", "child"),
    "MATCH_inputEPCClass": ("input",),
    "MATCH_outputEPCClass": ("output",),
    "MATCH_anyEPCClass": ("class", "child", "input", "output"),
}
# The MATCH_ parameters with their own clause, and those whose values name classes (EPCIS 2.0 8.2.7.1.1).
OWN_CLAUSE_ROLES: dict[str, tuple[str, ...]] = {
    "MATCH_epc": ("epc", "child", "input", "output"),
    "MATCH_parentID": ("parent",),
}
CLASS_PARAMS = frozenset(
    {"MATCH_epcClass", "MATCH_inputEPCClass", "MATCH_outputEPCClass", "MATCH_anyEPCClass"}
)
ALL_ROLES = ("epc", "child", "parent", "input", "output", "class")
ACTIONS = ("ADD", "OBSERVE", "DELETE")
ORDER_COLUMNS: dict[str, LiteralString] = {"eventTime": "e.event_time", "recordTime": "e.record_time"}


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
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    dispositions: Sequence[str] = ()  # every form of each value asked for
    actions: Sequence[str] = ()
    event_ids: Sequence[str] = ()
    subjects: list[tuple[tuple[str, ...], list[str]]] = field(default_factory=list)  # (roles, ids): AND
    # A MATCH_ parameter with an EPC pattern among its values: (roles, ids, LIKE patterns); the parameters
    # these stand for are in none of epcs, parent_ids or subjects. AND between them, OR within one.
    subject_patterns: list[tuple[tuple[str, ...], list[str], list[str]]] = field(default_factory=list)
    order_by: str | None = None  # a key of ORDER_COLUMNS; None: ledger order (seq)
    order_desc: bool = True
    event_count_limit: int | None = None
    max_event_count: int | None = None
    served: int = 0  # events served by the pages before this one (eventCountLimit spans pages)
    after_key: datetime | None = None  # the order key of the last event served (with after_seq)
    # Who reads ({"role", "party"}: a scope's parameters): only the events cc_sees_event lets it see. None:
    # every event (the ledger stage's own readers).
    seen_by: Mapping[str, str | None] | None = None


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


def encode_ordered_token(served: int, key: datetime, seq: int) -> str:
    """The token of the next page of an ordered query: how many were served, the last order key and seq."""
    text = f"ord:{served}:{seq}:{key.isoformat()}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_ordered_token(token: str) -> tuple[int, int, datetime]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, served, seq, key = text.split(":", 3)
        if kind != "ord" or not served.isdigit() or not seq.isdigit():
            raise ValueError(text)
        return int(served), int(seq), datetime.fromisoformat(key)
    except (ValueError, UnicodeDecodeError):
        raise QueryParameterError("nextPageToken is not one this server issued for this query") from None


def sensor_filters(params: Mapping[str, str], uom: str | None) -> list[tuple[str, str, str, float]]:
    """The ``<OP>_<field>_<type>`` parameters, thresholds converted to base units."""
    if uom is not None and uom not in UNIT_TO_BASE:
        raise QueryParameterError(f"uom must be one of {', '.join(sorted(UNIT_TO_BASE))}")
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


def _scalar(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or ()
    if len(values) > 1:
        raise QueryParameterError(f"{name} is given more than once")
    return values[0] if values else None


def _time(params: Mapping[str, Sequence[str]], name: str) -> datetime | None:
    raw = _scalar(params, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise QueryParameterError(f"{name} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise QueryParameterError(f"{name} needs a time zone (Z or an offset)")
    return value


def _count(params: Mapping[str, Sequence[str]], name: str) -> int | None:
    raw = _scalar(params, name)
    if raw is None:
        return None
    if not raw.strip().isdigit() or int(raw) < 1 or len(raw.strip()) > 9:
        raise QueryParameterError(f"{name} must be a whole number from 1 to 999999999")
    return int(raw)


def cbv_forms(name: str, prefixes: Sequence[str]) -> list[str]:
    """A bare CBV name and its Web URI and URN forms (``prefixes``); any other URI as it is."""
    return [name, *(p + name for p in prefixes)] if ":" not in name else [name]


def _forms(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(f for v in values for f in epc_forms(v)))


def _patterned(name: str, values: Sequence[str]) -> tuple[list[str], list[str]]:
    """The exact ids (every form) and the LIKE patterns of a MATCH_ parameter's values, EPC patterns
    (``urn:epc:idpat:…``) expanded by ``epc_patterns``."""
    exact: list[str] = []
    likes: list[str] = []
    for value in values:
        if not epc_patterns.is_pattern(value):
            exact.append(value)
            continue
        try:
            pattern = epc_patterns.parse(value)
            if pattern.exact is not None and name not in CLASS_PARAMS:
                exact.append(pattern.exact)
            else:
                likes.extend(epc_patterns.like_patterns(pattern, as_class=name in CLASS_PARAMS))
        except epc_patterns.PatternError as e:
            raise QueryParameterError(f"{name}: {e}") from None
    return _forms(exact), list(dict.fromkeys(likes))


# The parameters from_params reads (each a list, '|' separated, unless scalar); sensor filters besides.
LIST_PARAMS = frozenset(
    {
        "eventType",
        "EQ_bizStep",
        "EQ_disposition",
        "EQ_action",
        "EQ_readPoint",
        "EQ_bizLocation",
        "EQ_eventID",
        "MATCH_epc",
        "MATCH_parentID",
        *SUBJECT_ROLES,
    }
)
SCALAR_PARAMS = frozenset(
    {
        "GE_eventTime",
        "LT_eventTime",
        "GE_recordTime",
        "LT_recordTime",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
        "uom",
        "perPage",
        "nextPageToken",
    }
)


def from_params(
    params: Mapping[str, Sequence[str]], *, per_page: int | None = None, next_page_token: str | None = None
) -> EventQuery:
    """The query of a raw SimpleEventQuery parameter mapping (name -> its values). ``per_page`` and
    ``next_page_token``, when given, stand for the mapping's ``perPage`` and ``nextPageToken``. A name it does
    not know, a malformed value, or a combination the standard forbids is a ``QueryParameterError``."""
    for name in params:
        if name not in LIST_PARAMS and name not in SCALAR_PARAMS and SENSOR_PARAM.match(name) is None:
            raise QueryParameterError(f"query parameter {name!r} is not supported")
    lists = {name: _split(params.get(name)) for name in LIST_PARAMS}
    actions = lists["EQ_action"]
    if any(a not in ACTIONS for a in actions):
        raise QueryParameterError(f"EQ_action values must be among {', '.join(ACTIONS)}")
    if per_page is None:
        per_page = _count(params, "perPage")
    token = next_page_token if next_page_token is not None else _scalar(params, "nextPageToken")
    order_by = _scalar(params, "orderBy")
    if order_by is not None and order_by not in ORDER_COLUMNS:
        raise QueryParameterError(f"orderBy must be one of {', '.join(ORDER_COLUMNS)}")
    direction = _scalar(params, "orderDirection") or "DESC"
    if direction not in ("ASC", "DESC"):
        raise QueryParameterError("orderDirection must be ASC or DESC")
    limit, max_count = _count(params, "eventCountLimit"), _count(params, "maxEventCount")
    if limit is not None and max_count is not None:
        raise QueryParameterError("eventCountLimit and maxEventCount are mutually exclusive")
    if limit is not None and order_by is None:
        raise QueryParameterError("eventCountLimit needs orderBy")
    patterned = {  # the MATCH_ parameters with an EPC pattern: their own clause
        name: (roles, *_patterned(name, lists.pop(name)))
        for name, roles in {**OWN_CLAUSE_ROLES, **SUBJECT_ROLES}.items()
        if any(epc_patterns.is_pattern(v) for v in lists[name])
    }
    thresholds = {k: _scalar(params, k) for k in params if SENSOR_PARAM.match(k)}
    sensor = sensor_filters({k: v for k, v in thresholds.items() if v is not None}, _scalar(params, "uom"))
    q = EventQuery(
        ge_event_time=_time(params, "GE_eventTime"),
        lt_event_time=_time(params, "LT_eventTime"),
        ge_record_time=_time(params, "GE_recordTime"),
        lt_record_time=_time(params, "LT_recordTime"),
        event_types=lists["eventType"],
        biz_steps=[str(biz_step_name(b)) for b in lists["EQ_bizStep"]],
        dispositions=list(
            dict.fromkeys(
                f
                for d in lists["EQ_disposition"]
                for f in cbv_forms(str(disposition_name(d)), DISPOSITION_PREFIXES)
            )
        ),
        actions=actions,
        event_ids=lists["EQ_eventID"],
        epcs=_forms(lists.get("MATCH_epc", [])),
        parent_ids=_forms(lists.get("MATCH_parentID", [])),
        biz_locations=_forms(lists["EQ_bizLocation"]),
        read_points=_forms(lists["EQ_readPoint"]),
        subjects=[(roles, _forms(lists[name])) for name, roles in SUBJECT_ROLES.items() if lists.get(name)],
        subject_patterns=list(patterned.values()),
        sensor=sensor,
        per_page=min(max(per_page or DEFAULT_PER_PAGE, 1), MAX_PER_PAGE),
        order_by=order_by,
        order_desc=direction == "DESC",
        event_count_limit=limit,
        max_event_count=max_count,
    )
    if token:
        if order_by is None:
            q.after_seq = decode_token(token)
        else:
            q.served, q.after_seq, q.after_key = decode_ordered_token(token)
    return q


# Stored sensor value in base units: (value * scale + offset) by the report's uom.
_BASE_VALUE = """(CASE r->>'uom' WHEN 'CEL' THEN (r->>{f})::float8 + 273.15
    WHEN 'FAH' THEN ((r->>{f})::float8 + 459.67) * 5.0 / 9.0
    WHEN 'KEL' THEN (r->>{f})::float8 ELSE NULL END)"""


def _filters(q: EventQuery, args: dict[str, Any]) -> list[sql.Composable]:
    """The WHERE conditions of the query's filters (paging aside), their values put in ``args``."""
    where: list[sql.Composable] = []
    times: tuple[tuple[datetime | None, str, LiteralString], ...] = (
        (q.ge_event_time, "ge_time", "e.event_time >= %(ge_time)s"),
        (q.lt_event_time, "lt_time", "e.event_time < %(lt_time)s"),
        (q.ge_record_time, "ge_rtime", "e.record_time >= %(ge_rtime)s"),
        (q.lt_record_time, "lt_rtime", "e.record_time < %(lt_rtime)s"),
    )
    for when, key, clause in times:
        if when is not None:
            where.append(sql.SQL(clause))
            args[key] = when
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
        (q.dispositions, "disps", "e.event->>'disposition' = ANY(%(disps)s)"),
        (q.actions, "actions", "e.event->>'action' = ANY(%(actions)s)"),
        (q.event_ids, "ids", "e.event_id = ANY(%(ids)s)"),
    )
    for values, key, clause in any_of:
        if values:
            where.append(sql.SQL(clause))
            args[key] = list(values)
    for i, (roles, ids) in enumerate(q.subjects):
        ids_key, roles_key = f"subj{i}", f"roles{i}"
        args[ids_key], args[roles_key] = list(ids), list(roles)
        where.append(
            sql.SQL(
                "e.seq IN (SELECT s.seq FROM event_subject s WHERE s.subject_id = ANY({ids})"
                " AND s.role = ANY({roles}))"
            ).format(ids=sql.Placeholder(ids_key), roles=sql.Placeholder(roles_key))
        )
    for i, (roles, ids, likes) in enumerate(q.subject_patterns):
        ids_key, roles_key = f"pids{i}", f"proles{i}"
        args[ids_key], args[roles_key] = list(ids), list(roles)
        covers: list[sql.Composable] = []
        if ids:
            covers.append(sql.SQL("s.subject_id = ANY({})").format(sql.Placeholder(ids_key)))
        for j, like in enumerate(likes):
            # The explicit range on the literal prefix keeps the primary key of event_subject in use in a
            # plan made without the pattern's value (a prepared statement's generic plan).
            lo = epc_patterns.literal_prefix(like)
            keys = {k: f"p{i}_{j}_{k}" for k in ("lo", "hi", "like")}
            args[keys["lo"]], args[keys["hi"]], args[keys["like"]] = lo, epc_patterns.prefix_bound(lo), like
            covers.append(
                sql.SQL(
                    '(s.subject_id COLLATE "C" >= {lo} AND s.subject_id COLLATE "C" < {hi}'
                    " AND s.subject_id LIKE {like})"
                ).format(**{k: sql.Placeholder(v) for k, v in keys.items()})
            )
        where.append(
            sql.SQL(
                "e.seq IN (SELECT s.seq FROM event_subject s WHERE s.role = ANY({roles}) AND ({covers}))"
            ).format(roles=sql.Placeholder(roles_key), covers=sql.SQL(" OR ").join(covers))
        )
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
    if q.seen_by is not None:
        where.append(sql.SQL("(cc_sees_all(%(role)s) OR cc_sees_event(%(role)s, %(party)s, e.seq))"))
        args.update(q.seen_by)
    return where


def run(conn: Conn, q: EventQuery) -> tuple[list[tuple[str, str]], str | None]:
    """One page of matching events and the token of the next page. Each event comes as two JSON texts, its
    ``@context`` and the rest of it (eventID included), that nothing here parses: the page is served
    without a walk over any event, however deeply one is nested (``documents.query_document``).

    Events come in ledger order (seq), or ordered by ``order_by`` (seq breaking ties); a query with
    ``event_count_limit`` serves that many events over all its pages; one with ``max_event_count`` raises
    ``QueryTooLargeError`` when more events than that match."""
    args: dict[str, Any] = {"after": q.after_seq}
    where = _filters(q, args)
    if q.max_event_count is not None:
        args["max_plus_one"] = q.max_event_count + 1
        counted = sql.SQL(
            "SELECT count(*) FROM (SELECT 1 FROM ledger_event e WHERE {} LIMIT %(max_plus_one)s) m"
        ).format(sql.SQL(" AND ").join(where or [sql.SQL("true")]))
        row = conn.execute(counted, args).fetchone()
        if row is not None and int(row[0]) > q.max_event_count:
            raise QueryTooLargeError(f"more than maxEventCount={q.max_event_count} events match the query")
    page = q.per_page
    if q.event_count_limit is not None:
        page = min(page, q.event_count_limit - q.served)
        if page <= 0:
            return [], None
    args["limit"] = page + 1
    if q.order_by is None:
        key: sql.Composable = sql.SQL("NULL::timestamptz")
        where.append(sql.SQL("e.seq > %(after)s"))
        order: sql.Composable = sql.SQL("e.seq")
    else:
        key = sql.SQL(ORDER_COLUMNS[q.order_by])
        direction = sql.SQL("DESC" if q.order_desc else "ASC")
        if q.after_key is not None:
            args["after_key"] = q.after_key
            where.append(
                sql.SQL("({key}, e.seq) {cmp} (%(after_key)s, %(after)s)").format(
                    key=key, cmp=sql.SQL("<" if q.order_desc else ">")
                )
            )
        order = sql.SQL("{key} {d}, e.seq {d}").format(key=key, d=direction)
    statement = sql.SQL(
        "SELECT e.seq, {key}, (e.event -> '@context')::text, (e.event - '@context')::text FROM ledger_event e"
        " WHERE {where} ORDER BY {order} LIMIT %(limit)s"
    ).format(key=key, where=sql.SQL(" AND ").join(where or [sql.SQL("true")]), order=order)
    rows = conn.execute(statement, args).fetchall()
    more = len(rows) > page and (q.event_count_limit is None or q.served + page < q.event_count_limit)
    rows = rows[:page]
    token = None
    if more and rows:
        last = rows[-1]
        if q.order_by is None:
            token = encode_token(int(last[0]))
        else:
            token = encode_ordered_token(q.served + len(rows), last[1], int(last[0]))
    return [(str(r[2] or "null"), str(r[3])) for r in rows], token

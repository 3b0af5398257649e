"""Stage 2 (verdicts): the alarm lifecycle (open → acknowledged → resolved) in PostgreSQL.

One unresolved alarm per asset and rule (a partial unique index enforces it). The rules worker opens
and updates alarms as conditions appear, escalates them by the condition's duration and resolves them
automatically when the condition clears past the hysteresis; operators acknowledge and resolve them
through `acknowledge` / `resolve` (the API serves these). Every change the worker makes is handed to
the notifier (`rules.alarms.notify`) after commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
import structlog
from psycopg.rows import dict_row

from rules import queries
from rules.models import iso_utc

log = structlog.get_logger("rules.alarms")

Conn = psycopg.Connection[Any]

SEVERITIES = ("info", "warning", "critical")


class AlarmStateError(ValueError):
    """The alarm cannot make this transition (e.g. acknowledging a resolved alarm)."""


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso_utc(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def list_alarms(
    conn: Conn,
    *,
    state: str | None = None,
    asset_id: str | None = None,
    severity: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    seen_by: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Alarms, newest first, optionally of one state, asset, severity and/or kind (filtered before the
    limit), as JSON-ready dicts; with ``seen_by`` (a reader's ``{"role", "party"}``) only the alarms of the
    assets that reader may see."""
    if state is not None and state not in ("open", "acknowledged", "resolved"):
        raise ValueError(f"unknown alarm state {state!r}")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"unknown alarm severity {severity!r}")
    params = {"state": state, "asset_id": asset_id, "severity": severity, "kind": kind, "limit": int(limit)}
    with conn.cursor(row_factory=dict_row) as cur:
        if seen_by is None:
            rows = cur.execute(queries.ALARM_LIST, params).fetchall()
        else:
            rows = cur.execute(queries.ALARM_LIST_SEEN, {**params, **seen_by}).fetchall()
    return [_json(r) for r in rows]


def alarm_kinds(conn: Conn) -> list[str]:
    """Every kind of alarm stored, in name order (what a kind filter offers)."""
    return [str(r[0]) for r in conn.execute(queries.ALARM_KINDS).fetchall()]


def acknowledge(
    conn: Conn, alarm_id: int, *, by: str, note: str, seen_by: Mapping[str, str | None] | None = None
) -> dict[str, Any] | None:
    """Acknowledge an open alarm (None = no such alarm, or none ``seen_by`` may see; AlarmStateError if
    already resolved).

    Acknowledging an acknowledged alarm records the newer acknowledgement."""
    return _operator_update(conn, alarm_id, queries.ALARM_ACK, {"by": by, "note": note}, seen_by)


def resolve(
    conn: Conn, alarm_id: int, *, by: str, note: str, seen_by: Mapping[str, str | None] | None = None
) -> dict[str, Any] | None:
    """Resolve an alarm by an operator (None = no such alarm, or none ``seen_by`` may see;
    AlarmStateError if already resolved)."""
    return _operator_update(
        conn, alarm_id, queries.ALARM_RESOLVE, {"by": by, "note": note, "condition_end": None}, seen_by
    )


def _operator_update(
    conn: Conn,
    alarm_id: int,
    query: LiteralString,
    params: dict[str, Any],
    seen_by: Mapping[str, str | None] | None,
) -> dict[str, Any] | None:
    """Run an operator's update `query` on an alarm not yet resolved (and seen by ``seen_by``, when
    given), under the alarm's row lock."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if seen_by is None:
            row = cur.execute(queries.ALARM_GET_FOR_UPDATE, {"alarm_id": alarm_id}).fetchone()
        else:
            found = queries.ALARM_GET_SEEN_FOR_UPDATE
            row = cur.execute(found, {"alarm_id": alarm_id, **seen_by}).fetchone()
        if row is None:
            return None
        if row["state"] == "resolved":
            raise AlarmStateError(f"alarm {alarm_id} is already resolved")
        updated = cur.execute(query, {"alarm_id": alarm_id, **params}).fetchone()
    return None if updated is None else _json(updated)


# -- the worker's side ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition the worker sees on an asset under one rule."""

    asset_id: str
    rule_id: str
    kind: str
    severity: str
    series_id: int | None
    product_class: str | None  # None: not a class rule (a quarantined batch on an unclassed asset)
    pack_version: str | None
    reason: str
    condition_start: datetime
    condition_end: datetime
    peak_c: float | None
    trigger_committed_at: datetime | None
    # A shipment profile's alarm cites the shipment, the version in force and the shipper's specification
    # (a rule pack's alarm cites its pack: product_class, pack_version).
    shipment_id: str | None = None
    profile_version: int | None = None
    source: str | None = None


def raise_or_update(conn: Conn, c: Condition) -> tuple[str, dict[str, Any]] | None:
    """Open an alarm for the condition, or update the unresolved one of its asset and rule.

    Returns (event, alarm) for the notifier: event 'opened' or 'escalated'; None when nothing
    worth publishing changed. Must run inside the caller's transaction."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(queries.ALARM_UNRESOLVED, {"asset_id": c.asset_id, "rule_id": c.rule_id}).fetchone()
        if row is None:
            new = cur.execute(
                queries.ALARM_INSERT,
                {
                    "asset_id": c.asset_id,
                    "rule_id": c.rule_id,
                    "kind": c.kind,
                    "severity": c.severity,
                    "series_id": c.series_id,
                    "product_class": c.product_class,
                    "pack_version": c.pack_version,
                    "reason": c.reason,
                    "condition_start": c.condition_start,
                    "condition_end": c.condition_end,
                    "peak_c": c.peak_c,
                    "trigger_committed_at": c.trigger_committed_at,
                    "shipment_id": c.shipment_id,
                    "profile_version": c.profile_version,
                    "source": c.source,
                },
            ).fetchone()
            assert new is not None
            return "opened", _json(new)
        escalate = SEVERITIES.index(c.severity) > SEVERITIES.index(row["severity"])
        peak = row["peak_c"]
        if c.peak_c is not None and (peak is None or abs(c.peak_c) > abs(peak)):
            peak = c.peak_c
        upd = cur.execute(
            queries.ALARM_UPDATE,
            {
                "alarm_id": row["alarm_id"],
                "condition_end": max(c.condition_end, row["condition_end"] or c.condition_end),
                "peak_c": peak,
                "reason": c.reason,
                "severity": c.severity if escalate else row["severity"],
                "escalate": 1 if escalate else 0,
                "profile_version": c.profile_version,
                "source": c.source,
            },
        ).fetchone()
        assert upd is not None
        return ("escalated", _json(upd)) if escalate else None


def auto_resolve(
    conn: Conn, *, asset_id: str, rule_id: str, condition_end: datetime, note: str
) -> dict[str, Any] | None:
    """Resolve the unresolved alarm of this asset and rule as cleared ('auto'); None if there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(queries.ALARM_UNRESOLVED, {"asset_id": asset_id, "rule_id": rule_id}).fetchone()
        if row is None:
            return None
        upd = cur.execute(
            queries.ALARM_RESOLVE,
            {"alarm_id": row["alarm_id"], "by": "auto", "note": note, "condition_end": condition_end},
        ).fetchone()
    return None if upd is None else _json(upd)

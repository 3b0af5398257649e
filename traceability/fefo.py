"""Stage 3, trace: the FEFO list of a location: the lots there now, first-expired first, by the remaining
shelf life the rules stage stored beside each lot's verdict (``rules.worker.lots``); nothing judged here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg

from rules.verdicts import Verdict
from traceability import queries
from traceability.trace_model import FIELD_DOCS

Conn = psycopg.Connection[Any]

# How many lots one answer lists when the request names no limit, and the most it may ask for.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class FefoLot:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    lot_id: str
    product_class: str
    description: str | None
    location_id: str
    """where the lot is: the location asked for or a place under it"""
    since: datetime
    """when the lot (or the unit enclosing it) arrived there"""
    remaining_h: float | None
    """hours of shelf life left at the class's reference temperature, as of as_of (null: not stored)"""
    used: float | None
    """fraction of the reference shelf life the lot's temperature history consumed"""
    expired: bool
    """the lot has used all its reference shelf life"""
    model: str | None
    """the class's shelf-life model (arrhenius or sqrt)"""
    ref_life_h: float | None
    unevidenced_s: float | None
    """custody time no reading covers (not counted in used)"""
    as_of: datetime | None
    pack_version: str | None
    verdict: Verdict | None
    """the lot's latest verdict (null: not judged yet)"""
    verdict_version: int | None


@dataclass(frozen=True, slots=True)
class Fefo:
    location_id: str
    location_name: str | None
    lots: list[FefoLot]


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC)


def fefo(
    conn: Conn,
    location_id: str,
    limit: int = DEFAULT_LIMIT,
    seen_by: Mapping[str, str | None] = queries.EVERYTHING,
) -> Fefo | None:
    """The lots at the location (or under it) now that ``seen_by`` (a scope's parameters) may read, in
    order of remaining shelf life; None if the location is not in the registry."""
    place = conn.execute(queries.LOCATION_NAME, (location_id,)).fetchone()
    if place is None:
        return None
    args = {**seen_by, "location": location_id, "limit": limit}
    rows = conn.execute(queries.FEFO_AT_LOCATION, args).fetchall()
    lots = [
        FefoLot(
            lot_id=r[0],
            product_class=r[1],
            description=r[2],
            location_id=r[3],
            since=r[4].astimezone(UTC),
            model=r[5],
            ref_life_h=r[6],
            used=r[7],
            remaining_h=r[8],
            expired=r[7] is not None and r[7] >= 1.0,
            unevidenced_s=r[9],
            as_of=_utc(r[10]),
            pack_version=r[11],
            verdict=r[12],
            verdict_version=r[13],
        )
        for r in rows
    ]
    return Fefo(location_id=location_id, location_name=place[0], lots=lots)

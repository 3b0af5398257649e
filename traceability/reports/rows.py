"""Stage 3 (reports): the rows every report tabulates: one row per critical tracking event with its key
data elements (FSMA 204 style), and the legs' readings at the class's regulated recording interval.

The event rows are the ``Trace``'s events (``Trace.events``), enriched from their ledger rows in one query
(``queries.REPORT_EVENTS_AT_SEQS``: location, documents, quantities, sources and destinations, hashes),
since the ``Trace`` carries only what the pages need. Nothing is invented: a quantity an event does not
state for the lot stays empty, and the row's note says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg

from traceability import queries
from traceability.epcis.digital_link import epc_to_digital_link
from traceability.i18n import Gettext, Lang, format_time, gettext_for, translate_reason
from traceability.readings_model import LegReadings
from traceability.trace_model import Correction, CustodyLeg, Trace

Conn = psycopg.Connection[Any]
CellKind = Literal["text", "int", "float", "datetime", "bool"]
# The most slots one series contributes to the readings rows (a month at 1-minute slots fits).
MAX_SLOTS_PER_SERIES = 50_000

# Notes a row may carry (report domain msgids).
NOTE_NO_QUANTITY = "quantity not stated for this lot by the event"
NOTE_DECLARED_WRONG = "declared wrong by a later errorDeclaration"
NOTE_ERROR_DECLARATION = "errorDeclaration"
NOTE_NO_LOCATION = "no location stated"
# A row of a series the readings came downsampled for: its interval holds only the kept extremes.
FLAG_DOWNSAMPLED = "downsampled: extremes of each bucket kept"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    """English header (a reports msgid)"""
    kind: CellKind
    width: int = 16


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    event_id: str
    lot_code: str
    gtin: str | None
    product: str | None
    quantity: float | None
    unit: str | None
    location_gln: str | None
    location_id: str | None
    location_name: str | None
    time_utc: datetime
    time_local: str
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    references: str
    source: str
    destination: str
    event_hash: str
    entry_hash: str
    declared_wrong: bool
    notes: list[str] = field(default_factory=list)
    correction: str | None = None
    """for an event declared wrong: when, the CBV reason, why (translated), and its corrective events"""


@dataclass(frozen=True, slots=True)
class ReadingRow:
    leg_id: int
    asset_id: str
    series: str
    slot_start: datetime
    slot_local: str
    reading_time: datetime | None
    value_c: float | None
    min_c: float | None
    max_c: float | None
    readings: int
    interval_s: float | None
    out_of_range: bool
    gap: bool
    excursion: bool
    downsampled: bool = False

    def flags(self) -> list[str]:
        """The row's flags (report msgids): out of range, gap, excursion, downsampled."""
        out = []
        if self.out_of_range:
            out.append("out of range")
        if self.gap:
            out.append("gap")
        if self.excursion:
            out.append("excursion")
        if self.downsampled:
            out.append(FLAG_DOWNSAMPLED)
        return out


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("seq", "Ledger seq", "int", 9),
    Column("lot_code", "Traceability lot code", "text", 18),
    Column("gtin", "GTIN", "text", 16),
    Column("product", "Product", "text", 24),
    Column("quantity", "Quantity", "float", 10),
    Column("unit", "Unit", "text", 7),
    Column("location_gln", "Location GLN", "text", 16),
    Column("location_name", "Location name", "text", 26),
    Column("time_utc", "Time (UTC)", "datetime", 21),
    Column("time_local", "Local time", "text", 30),
    Column("event_type", "Event type", "text", 18),
    Column("action", "Action", "text", 8),
    Column("biz_step", "Business step", "text", 14),
    Column("disposition", "Disposition", "text", 14),
    Column("references", "Reference documents", "text", 34),
    Column("source", "Source", "text", 28),
    Column("destination", "Destination", "text", 28),
    Column("location_id", "Location (EPC)", "text", 34),
    Column("event_id", "Event ID", "text", 40),
    Column("event_hash", "Event hash", "text", 50),
    Column("declared_wrong", "Declared wrong", "bool", 10),
    Column("correction", "Correction", "text", 40),
    Column("notes", "Notes", "text", 34),
)

READING_COLUMNS: tuple[Column, ...] = (
    Column("leg_id", "Custody leg", "int", 10),
    Column("asset_id", "Asset", "text", 18),
    Column("series", "Series", "text", 20),
    Column("slot_start", "Interval start (UTC)", "datetime", 21),
    Column("slot_local", "Local time", "text", 30),
    Column("interval_s", "Recording interval (s)", "float", 12),
    Column("reading_time", "Reading time (UTC)", "datetime", 21),
    Column("value_c", "Temperature (°C)", "float", 12),
    Column("min_c", "Min (°C)", "float", 9),
    Column("max_c", "Max (°C)", "float", 9),
    Column("readings", "Readings", "int", 9),
    Column("flags", "Flags", "text", 26),
)


def short(term: str | None) -> str | None:
    """A CBV term without its URN or URI prefix (``urn:epcglobal:cbv:bizstep:shipping`` → ``shipping``)."""
    if term is None:
        return None
    for sep in ("urn:epcglobal:cbv:", "https://ref.gs1.org/cbv/"):
        if term.startswith(sep):
            return term.rsplit(":", 1)[-1].rsplit("-", 1)[-1]
    return term


def gln_of(location: str | None) -> str | None:
    """The GLN of an SGLN EPC URI (``urn:epc:id:sgln:6901234.00001.0`` → ``6901234000011``)."""
    if not location:
        return None
    link = epc_to_digital_link(location)
    if link is None or "/414/" not in link:
        return None
    return link.split("/414/", 1)[1].split("/", 1)[0]


def _typed_list(items: Any, value_key: str) -> str:
    """``type: value`` pairs of a bizTransactionList / sourceList / destinationList, '; ' separated."""
    out = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        value = item.get(value_key)
        kind = short(item.get("type"))
        out.append(f"{kind}: {value}" if kind else str(value))
    return "; ".join(out)


def _quantity(lot_id: str, lists: Iterable[Any]) -> tuple[float | None, str | None]:
    for items in lists:
        for q in items or []:
            if isinstance(q, dict) and q.get("epcClass") == lot_id and q.get("quantity") is not None:
                return float(q["quantity"]), q.get("uom")
    return None, None


def event_rows(conn: Conn, trace: Trace, *, lang: Lang, tz: ZoneInfo) -> list[EventRow]:
    """One row per event of the trace (``Trace.events``, in seq order), with its key data elements."""
    refs = trace.events
    found = {
        int(r[0]): r for r in conn.execute(queries.REPORT_EVENTS_AT_SEQS, ([e.seq for e in refs],)).fetchall()
    }
    lot = trace.lot
    lot_code = (lot.batch if lot is not None and lot.batch else None) or trace.lot_id
    corrections = {c.declared_event_id: c for c in trace.corrections}
    translate = gettext_for(lang)
    rows: list[EventRow] = []
    for e in refs:
        r = found[e.seq]
        (_, ev_hash, entry, biz_loc, biz_name, read_point, rp_name, txs, sources, dests) = r[:10]
        qty_lists, disposition = r[10:14], r[14]
        quantity, unit = _quantity(trace.lot_id, qty_lists)
        location = biz_loc or read_point
        name = biz_name if biz_loc else rp_name
        notes: list[str] = []
        if e.error_declaration:
            notes.append(NOTE_ERROR_DECLARATION)
        if e.declared_wrong:
            notes.append(NOTE_DECLARED_WRONG)
        if quantity is None:
            notes.append(NOTE_NO_QUANTITY)
        if location is None:
            notes.append(NOTE_NO_LOCATION)
        rows.append(
            EventRow(
                seq=e.seq,
                event_id=e.event_id,
                lot_code=lot_code,
                gtin=None if lot is None else lot.gtin,
                product=None if lot is None else lot.description,
                quantity=quantity,
                unit=unit,
                location_gln=gln_of(location),
                location_id=location,
                location_name=name,
                time_utc=e.event_time.astimezone(UTC),
                time_local=format_time(e.event_time, lang, tz, seconds=True),
                event_type=e.type,
                action=e.action,
                biz_step=short(e.biz_step),
                disposition=short(disposition),
                references=_typed_list(txs, "bizTransaction"),
                source=_typed_list(sources, "source"),
                destination=_typed_list(dests, "destination"),
                event_hash=str(ev_hash),
                entry_hash=str(entry),
                declared_wrong=e.declared_wrong,
                notes=notes,
                correction=correction_text(corrections.get(e.event_id), lang, tz, translate)
                if e.declared_wrong and not e.error_declaration
                else None,
            )
        )
    return rows


def correction_text(c: Correction | None, lang: Lang, tz: ZoneInfo, _: Gettext) -> str | None:
    """A correction in one line: when it was declared, the CBV reason, why, and the corrective events."""
    if c is None:
        return None
    parts = [format_time(c.declared_at, lang, tz, seconds=True), c.reason]
    if c.why:
        parts.append(translate_reason(c.why, _))
    if c.corrective_event_ids:
        parts.append(_("corrected by") + " " + ", ".join(c.corrective_event_ids))
    return "; ".join(parts)


def _leg_end(leg: CustodyLeg, readings: LegReadings) -> datetime | None:
    if leg.t_end is not None:
        return leg.t_end
    r = readings.readings
    ends = [s.points[-1].t for s in (r.temperature if r else []) if s.points]
    return max(ends) if ends else None


def reading_rows(trace: Trace, legs: list[LegReadings], *, lang: Lang, tz: ZoneInfo) -> list[ReadingRow]:
    """The legs' readings at the class's regulated recording interval (the leg's allowed interval, by its
    mode, as the ``Trace`` states it): per series one row per interval from the leg's start, holding the
    first reading in it with the interval's min and max; flagged out of range (outside the class's
    limits), gap (no reading in the interval, or inside a gap the rules stage found) and excursion
    (inside an excursion the rules stage found). Of a downsampled series only each bucket's extremes are
    at hand: an empty interval there is a gap only where the rules stage found one, and its rows say
    they were downsampled.
    A leg whose class states no interval lists every reading it was given."""
    limits = trace.limits
    low = None if limits is None else limits.low_c
    high = None if limits is None else limits.high_c

    def outside(v: float) -> bool:
        return (low is not None and v < low) or (high is not None and v > high)

    by_leg = {leg.leg_id: leg for leg in trace.custody}
    rows: list[ReadingRow] = []
    for lr in legs:
        leg = by_leg.get(lr.leg_id)
        if leg is None or lr.readings is None:
            continue
        end = _leg_end(leg, lr)
        interval = leg.temperature.allowed_gap_s
        for s in lr.readings.temperature:
            label = f"{s.device_id}/{s.channel}"
            spans = [(x.start_time, x.end_time) for x in leg.excursions if x.series_id == s.series_id]
            gaps = [
                (b.start_time, b.end_time)
                for b in leg.chain_breaks
                if b.kind == "gap" and b.series_id in (s.series_id, None)
            ]

            def in_excursion(
                a: datetime, b: datetime, spans: list[tuple[datetime, datetime]] = spans
            ) -> bool:
                return any(x0 < b and a <= x1 for x0, x1 in spans)

            def in_gap(a: datetime, b: datetime, gaps: list[tuple[datetime, datetime]] = gaps) -> bool:
                return any(x0 < b and a < x1 for x0, x1 in gaps)

            points = [p for p in s.points if math.isfinite(p.v)]
            if interval is None or interval <= 0 or end is None:
                for p in points:
                    rows.append(
                        ReadingRow(
                            lr.leg_id,
                            lr.readings.asset_id,
                            label,
                            p.t,
                            format_time(p.t, lang, tz, seconds=True),
                            p.t,
                            p.v,
                            p.v,
                            p.v,
                            1,
                            None,
                            outside(p.v),
                            False,
                            in_excursion(p.t, p.t),
                            s.downsampled,
                        )
                    )
                continue
            step = timedelta(seconds=interval)
            slots = min(MAX_SLOTS_PER_SERIES, max(1, math.ceil((end - leg.t_start) / step)))
            i = 0
            while i < len(points) and points[i].t < leg.t_start:
                i += 1
            for k in range(slots):
                a = leg.t_start + k * step
                b = min(a + step, end) if k == slots - 1 else a + step
                inside = []
                while i < len(points) and (points[i].t < b or (k == slots - 1 and points[i].t <= b)):
                    inside.append(points[i])
                    i += 1
                values = [p.v for p in inside]
                rows.append(
                    ReadingRow(
                        leg_id=lr.leg_id,
                        asset_id=lr.readings.asset_id,
                        series=label,
                        slot_start=a,
                        slot_local=format_time(a, lang, tz, seconds=True),
                        reading_time=inside[0].t if inside else None,
                        value_c=inside[0].v if inside else None,
                        min_c=min(values) if values else None,
                        max_c=max(values) if values else None,
                        readings=len(inside),
                        interval_s=interval,
                        out_of_range=any(outside(v) for v in values),
                        gap=(not inside and not s.downsampled) or in_gap(a, b),
                        excursion=in_excursion(a, b),
                        downsampled=s.downsampled,
                    )
                )
    return rows


def cell(row: EventRow | ReadingRow, key: str) -> Any:
    """The value of a row's column, as the spreadsheets write it (lists joined)."""
    if key == "flags" and isinstance(row, ReadingRow):
        return row.flags()
    value = getattr(row, key)
    return value

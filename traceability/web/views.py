"""Stage 3 (faces): what each page shows, built from the one typed ``Trace`` (and the ledger's proof): the
trace page's legs with their chart and track slots, its evidence panel, the search's matches, and the
public scan page's few buyer-safe facts."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from traceability import i18n, queries
from traceability.chart import leg_chart_svg, track_svg
from traceability.i18n import Gettext, Lang, words

# The words shared with the reports, shown by the pages as ``words.BONDED`` etc. (re-exported).
from traceability.i18n.words import BIZ_STEPS as BIZ_STEPS
from traceability.i18n.words import BONDED as BONDED
from traceability.i18n.words import IMPORT_STEPS as IMPORT_STEPS
from traceability.i18n.words import N_
from traceability.i18n.words import SHIPMENT_STATES as SHIPMENT_STATES
from traceability.i18n.words import TRANSPORT_MODES as TRANSPORT_MODES
from traceability.i18n.words import word as word
from traceability.ledger import checkpoint
from traceability.ledger import verify as ledger_verify
from traceability.readings import leg_readings
from traceability.readings_model import AssetReadings
from traceability.resolve import resolve
from traceability.trace import visible_lots
from traceability.trace_model import CustodyLeg, LedgerRef, Limits, Trace
from traceability.web import queries as web_queries
from traceability.web.identify import Identified, identify

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


# -- words the pages show for stored codes -------------------------------------------------------------------

ALARM_STATES = {"open": N_("open"), "acknowledged": N_("acknowledged"), "resolved": N_("resolved")}
SEVERITIES = {"info": N_("info"), "warning": N_("warning"), "critical": N_("critical")}
MATCH_KINDS = {
    "lot": N_("lot"),
    "epc": N_("EPC"),
    "epc_class": N_("product class of EPCs"),
    "container": N_("container"),
    "asset": N_("asset"),
    "document": N_("document"),
    "gs1": N_("GS1 scan"),
}
ROLES = {
    "inspector": N_("inspector"),
    "regulator": N_("regulator"),
    "customs": N_("customs"),
    "carrier": N_("carrier"),
    "shipper": N_("shipper"),
    "operator": N_("operator"),
    "capture": N_("capture"),
    "admin": N_("admin"),
}
# The kinds of alarm the rules stage raises (rules.engine.catalog's rules, and triggers).
ALARM_KINDS = {
    "excursion": N_("excursion"),
    "gap": N_("gap"),
    "door": N_("door"),
    "power": N_("power"),
    "trigger": N_("trigger"),
    "single_event": N_("single excursion over the limit"),
    "cumulative": N_("cumulative excursion"),
    "band": N_("out of band"),
    "mkt": N_("mean kinetic temperature"),
    "accuracy": N_("sensor accuracy"),
    "faults": N_("device faults"),
    "profile_range": N_("outside the shipper's profile"),
    "profile_gap": N_("gap beyond the shipper's profile"),
}
BREAK_KINDS = {
    "gap": N_("telemetry gap"),
    "handoff": N_("handoff without evidence"),
    "flow": N_("import flow violation"),
}


def reason_text(text: str, _: Gettext) -> str:
    """A verdict reason (an English sentence the rules stage stored) in the page's language."""
    return i18n.translate_reason(text, _)


# -- formatting -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Formats:
    """How a page writes times, temperatures and durations for its viewer."""

    lang: Lang
    tz: ZoneInfo
    _: Gettext

    def time(self, t: datetime | None, seconds: bool = False) -> str:
        return i18n.format_time(t, self.lang, self.tz, seconds=seconds)

    def celsius(self, v: float | None) -> str:
        return "–" if v is None else f"{v:.1f} °C"

    def duration(self, seconds: float | None) -> str:
        return words.duration(seconds, self._)

    def number(self, v: float | None) -> str:
        return words.number(v)


# -- the chart and track slots ----------------------------------------------------------------------------

# Points per temperature series on a leg's chart (the readings query keeps each bucket's extremes).
CHART_POINTS = 2_000


def leg_readings_of(conn: Conn, found: Trace) -> dict[int, AssetReadings | None]:
    """The readings behind each leg's chart, by leg id (the readings API's query)."""
    return {r.leg_id: r.readings for r in leg_readings(conn, found, CHART_POINTS)}


def chart_svg_of(leg: CustodyLeg, readings: AssetReadings | None, limits: Limits | None, fmt: Formats) -> str:
    """The leg's temperature chart (inline SVG, with the hover data chart.js reads)."""
    return leg_chart_svg(leg, readings, limits, _=fmt._, tz=fmt.tz, lang=fmt.lang, interactive=True)


def track_svg_of(leg: CustodyLeg, readings: AssetReadings | None, fmt: Formats, tile_url: str | None) -> str:
    """The leg's GPS track (inline SVG), on map tiles from ``tile_url`` when one is set."""
    return track_svg(readings, _=fmt._, leg_id=leg.leg_id, tile_url=tile_url)


@dataclass(frozen=True, slots=True)
class LegView:
    """One custody leg as the trace page shows it; ``chart_svg`` and ``track_svg`` are trusted SVG markup
    rendered with ``|safe``."""

    leg: CustodyLeg
    chart_svg: str
    track_svg: str


def leg_views(conn: Conn, found: Trace, fmt: Formats, *, tile_url: str | None = None) -> list[LegView]:
    """Every custody leg of the trace with its chart and track filled in (the page's slots)."""
    readings = leg_readings_of(conn, found)
    views = []
    for leg in found.custody:
        r = readings.get(leg.leg_id)
        views.append(
            LegView(
                leg=leg,
                chart_svg=chart_svg_of(leg, r, found.limits, fmt),
                track_svg=track_svg_of(leg, r, fmt, tile_url),
            )
        )
    return views


# -- the evidence panel -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventProof:
    event: LedgerRef
    event_hash: str | None
    entry_hash: str | None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the evidence panel says: the ledger head, the newest signed checkpoint and whether it holds
    (its signature under the pinned key, and its entry hash still at its seq), and every event's hashes.
    ``verified`` is True only when both hold; None when no checkpoint or no pinned key allows a check."""

    head_seq: int | None
    head_hash: str | None
    checkpoint: checkpoint.Checkpoint | None
    fingerprint: str | None
    pinned: bool
    signature_ok: bool | None
    entry_matches: bool | None
    covers_lot: bool
    events: list[EventProof] = field(default_factory=list)

    @property
    def verified(self) -> bool | None:
        if self.signature_ok is None or self.entry_matches is None:
            return None
        return self.signature_ok and self.entry_matches


def pinned_public_key(ledger_key: Path | None) -> str | None:
    """The public key the pages check checkpoints under: the ledger's key file's (as /ledger/verify)."""
    if ledger_key is None:
        return None
    try:
        return _pinned(str(ledger_key), ledger_key.stat().st_mtime_ns)
    except FileNotFoundError:
        return None
    except checkpoint.CheckpointFormatError:
        log.exception("the ledger's key file is unreadable")
        return None


@lru_cache(maxsize=4)
def _pinned(path: str, _mtime_ns: int) -> str:
    """The key file's public key, read again only when the file changes."""
    return checkpoint.pinned_key(path)


def verify_ledger(conn: Conn, ledger_key: Path | None) -> ledger_verify.VerifyResult | None:
    """The whole chain and every checkpoint verified, as ``GET /ledger/verify`` does (the pinned key and its
    checkpoint log beside it); None when the key file or the log is unreadable."""
    public_key = pinned_public_key(ledger_key)
    kept: list[tuple[str, checkpoint.Checkpoint]] = []
    if public_key is not None and ledger_key is not None:
        try:
            kept = checkpoint.own_log(ledger_key)
        except checkpoint.CheckpointFormatError:
            log.exception("the ledger's checkpoint log is unreadable")
            return None
    return ledger_verify.verify(conn, public_key=public_key, kept=kept)


def evidence(conn: Conn, found: Trace, public_key: str | None) -> Evidence:
    head = conn.execute(queries.LEDGER_HEAD).fetchone()
    cp = checkpoint.latest(conn)
    seqs = [e.seq for e in found.events]
    hashes = {
        int(r[0]): (str(r[1]), str(r[2]))
        for r in conn.execute(web_queries.EVENT_HASHES_AT_SEQS, (seqs,)).fetchall()
    }
    signature_ok = entry_matches = None
    if cp is not None:
        row = conn.execute(web_queries.ENTRY_HASH_AT, (cp.seq,)).fetchone()
        entry_matches = row is not None and str(row[0]) == cp.entry_hash
        if public_key is not None:
            signature_ok = checkpoint.signature_ok(cp, public_key)
    return Evidence(
        head_seq=None if head is None else int(head[0]),
        head_hash=None if head is None else str(head[1]),
        checkpoint=cp,
        fingerprint=None if cp is None else checkpoint.key_fingerprint(public_key or cp.public_key),
        pinned=public_key is not None,
        signature_ok=signature_ok,
        entry_matches=entry_matches,
        covers_lot=cp is not None and (not seqs or cp.seq >= max(seqs)),
        events=[EventProof(e, *(hashes.get(e.seq) or (None, None))) for e in found.events],
    )


# -- search -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Search:
    """What the search box's text led to: its reading (GS1 keys or text), how it matched, the lots."""

    identified: Identified
    kind: str
    lots: list[str]


def search(conn: Conn, raw: str, seen_by: Mapping[str, str | None] = queries.EVERYTHING) -> Search:
    """The lots the search box's text leads to that ``seen_by`` (a scope's parameters) may read, through
    the trace's own resolution (``resolve``): a GS1 scan by its GTIN and batch in the registry, else by the
    EPC URIs its keys name."""
    found = _search(conn, raw)
    return dataclasses.replace(found, lots=visible_lots(conn, found.lots, seen_by))


def _search(conn: Conn, raw: str) -> Search:
    ident = identify(raw)
    if not ident.text:
        return Search(ident, "unknown", [])
    if ident.is_gs1:
        gtin, batch = ident.gtin, ident.batch
        if gtin is not None and batch is not None:
            lots = [r[0] for r in conn.execute(web_queries.LOTS_BY_GTIN_BATCH, (gtin, batch)).fetchall()]
            if lots:
                return Search(ident, "gs1", lots)
        for epc in ident.epcs():
            kind, lots = resolve(conn, epc)
            if lots:
                return Search(ident, "gs1", lots)
        if gtin is not None and batch is None and ident.serial is None:
            lots = [r[0] for r in conn.execute(web_queries.LOTS_BY_GTIN, (gtin,)).fetchall()]
            return Search(ident, "gs1", lots)
        return Search(ident, "gs1", [])
    kind, lots = resolve(conn, ident.text)
    if not lots and conn.execute(queries.SUBJECT_KNOWN, (ident.text,)).fetchone() is not None:
        lots = [ident.text]  # a lot known only from the ledger, as ``trace`` finds it
        kind = "lot"
    return Search(ident, kind, lots)


# -- the public scan page ---------------------------------------------------------------------------------


def scan_lot(conn: Conn, code: str) -> str | None:
    """The one lot a public scan names, else None. Only a trace code is read: a lot id of the registry, or
    a GS1 scan carrying both GTIN and batch (element string, raw scan or Digital Link); a GTIN alone, an
    SSCC, a container, an asset or a document leads nowhere, and neither does a code that fits several
    lots (the page would otherwise show an arbitrary one's cold chain). A trace code the first receiving site
    issued (``import_step``) names its lot first."""
    coded = [str(r[0]) for r in conn.execute(queries.LOTS_BY_TRACE_CODE, (code.strip(),)).fetchall()]
    if coded:
        return coded[0] if len(coded) == 1 else None
    ident = identify(code)
    if not ident.text:
        return None
    if ident.is_gs1:
        gtin, batch = ident.gtin, ident.batch
        if gtin is None or batch is None:
            return None
        lots = [str(r[0]) for r in conn.execute(web_queries.LOTS_BY_GTIN_BATCH, (gtin, batch)).fetchall()]
        if not lots:  # a lot registered without its GS1 keys: its id is the keys' LGTIN
            lots = [e for e in ident.epcs() if e.startswith("urn:epc:class:lgtin:")]
            lots = [e for e in lots if conn.execute(queries.LOT, (e,)).fetchone() is not None]
        return lots[0] if len(lots) == 1 else None
    return ident.text if conn.execute(queries.LOT, (ident.text,)).fetchone() is not None else None


@dataclass(frozen=True, slots=True)
class ScanView:
    """Only what a buyer may see: never a party's contact, a temperature or a hash."""

    product: str | None
    origin_country: str | None
    inspection: str
    """passed | pending | not_required | failed | unknown"""
    cold_chain: str
    """intact | broken | unknown"""
    first_receiving_site: str | None
    trace_code: str | None = None
    """the batch's trace code, issued at the first receiving site (null: none)"""


def scan_view(found: Trace) -> ScanView:
    lot = found.lot
    status = found.bonded[-1].status if found.bonded else (lot.bonded_status if lot else None)
    inspection = {"released": "passed", "bonded": "pending", "domestic": "not_required"}.get(
        status or "", "unknown"
    )
    # The verdict is the rules stage's: pass means the chain held, indeterminate tells nothing.
    cold = {"pass": "intact", "indeterminate": "unknown"}.get(found.verdict, "broken")
    receiving = {e.seq for e in found.events if e.biz_step == "receiving"}
    site = None
    for leg in sorted(found.custody, key=lambda g: (g.t_start, g.leg_id)):
        if leg.start_seq in receiving and (leg.location is not None or leg.custodian is not None):
            if leg.location is not None:
                site = leg.location.name or leg.location.location_id
            elif leg.custodian is not None:
                site = leg.custodian.name or leg.custodian.party_id
            break
    flow = found.import_flow
    if flow is not None:
        # An imported batch passed only on its latest inspection result, whatever its bonded status says; a
        # result recorded as neither conformant nor non-conformant is no record of one.
        results = [s.conformant for s in flow.steps if s.step == "inspection"]
        if not results or results[-1] is None:
            inspection = "unknown"
        elif results[-1] is False:
            inspection = "failed"
        if flow.trace_code_site:
            site = flow.trace_code_site  # the first receiving site named itself when it issued the code
    return ScanView(
        trace_code=None if flow is None else flow.trace_code,
        product=None if lot is None else (lot.description or lot.product_class),
        origin_country=None if lot is None else lot.origin_country,
        inspection=inspection,
        cold_chain=cold,
        first_receiving_site=site,
    )

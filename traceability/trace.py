"""Stage 3, trace: a lot's chain of custody with the temperature evidence of every leg, one typed ``Trace``.

A lot's temperature history is the telemetry of whatever enclosed it at each moment: the lot is inside
units (lot ⊂ SSCC ⊂ truck ...), each unit has custody legs, each leg an asset, and the temperature
series of the devices mounted on that asset during the leg are the leg's evidence.

``trace`` reads the ``Trace`` (``traceability.trace_model``) that every reader renders. It judges
nothing itself: the lot's verdict is the rules stage's (the latest version of the lot's verdict
history, ``_lot_verdict``) and a leg's allowed recording interval is its class's, as the rules stage
published it from the pack (``rule_class``, read by ``_gap_limits``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from rules.engine import flow
from rules.verdicts import NOT_JUDGED, Verdict
from traceability import queries
from traceability.epcis.builders import parse_time
from traceability.epcis.steps import MOVEMENT_STEPS
from traceability.resolve import resolve
from traceability.shipments import ScopeParams, shipments_of_lot
from traceability.trace_model import (
    Asset,
    Backward,
    BondedStep,
    ChainBreak,
    Correction,
    CustodyLeg,
    Excursion,
    FirstEvent,
    Forward,
    ImportFlow,
    ImportRelease,
    ImportStep,
    LedgerRef,
    Limits,
    LineageLink,
    Location,
    Lot,
    Origin,
    Party,
    Placement,
    ProfileExcursion,
    Recipient,
    ShelfLife,
    Shipment,
    TemperatureSummary,
    Trace,
    TraceQuery,
    Unit,
    VerdictVersion,
)
from traceability.web.paths import scan_path

Conn = psycopg.Connection[Any]

# Mean kinetic temperature: ΔH/R = 10 000 K (DOMAIN.md; USP <1079.2>); each reading weighted by the time it
# represents (traceability.queries.HELD_S).
MKT_DH_R_K = 10_000.0
HANDOFF_RULE = "trace/handoff-without-evidence"
# The scope of a trace read for no API caller (the CLI, a report built at the console): every shipment.


# -- the two judgements ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LotVerdict:
    """The rules stage's verdict of a lot, as its verdict history holds it."""

    verdict: Verdict
    version: int | None
    reasons: list[str]


def _lot_verdict(conn: Conn, lot_id: str) -> LotVerdict:
    """The latest version of the lot's verdict history; indeterminate while the rules stage has not
    judged the lot."""
    row = conn.execute(queries.LOT_VERDICT, (lot_id,)).fetchone()
    if row is None:
        return LotVerdict("indeterminate", None, [NOT_JUDGED])
    return LotVerdict(row[1], int(row[0]), [str(r) for r in row[2]])


def _shelf_life(conn: Conn, lot_id: str) -> ShelfLife | None:
    """The lot's remaining shelf life as the rules stage stored it beside the verdict (None: not stored)."""
    r = conn.execute(queries.LOT_SHELF_LIFE, (lot_id,)).fetchone()
    if r is None:
        return None
    return ShelfLife(
        model=r[0],
        ref_c=float(r[1]),
        ref_life_h=float(r[2]),
        used=float(r[3]),
        remaining_h=float(r[4]),
        evidence_s=float(r[5]),
        unevidenced_s=float(r[6]),
        first_time=_utc_or_none(r[7]),
        as_of=_utc_or_none(r[8]),
        pack_version=r[9],
        verdict_version=r[10],
        computed_at=_utc(r[11]),
    )


@dataclass(frozen=True, slots=True)
class GapLimits:
    """The allowed recording interval of a leg, by the transport mode of its asset (the registry's
    ``asset_transport_mode``), as ``rule_class`` publishes the class's figures (None: the class states
    none). Road, rail and sea are the figures the pack gives that mode, else its transport one."""

    storage_s: float | None
    transport_s: float | None
    road_s: float | None = None
    rail_s: float | None = None
    sea_s: float | None = None

    def allowed_s(self, mode: str | None) -> float | None:
        specific = {"storage": self.storage_s, "road": self.road_s, "rail": self.rail_s, "sea": self.sea_s}
        found = specific.get(mode or "")
        return self.transport_s if found is None and mode != "storage" else found

    def params(self) -> dict[str, str | None]:
        """The figures as the interval parameters of ``queries.MODE_INTERVAL``."""
        return {
            f"{mode}_gap": None if s is None else f"{s} seconds"
            for mode, s in (
                ("storage", self.storage_s),
                ("transport", self.transport_s),
                ("road", self.road_s if self.road_s is not None else self.transport_s),
                ("rail", self.rail_s if self.rail_s is not None else self.transport_s),
                ("sea", self.sea_s if self.sea_s is not None else self.transport_s),
            )
        }


def _gap_limits(limits: Limits | None) -> GapLimits:
    """The allowed recording intervals of the lot's class, from its pack (through ``rule_class``)."""
    if limits is None:
        return GapLimits(None, None)
    return GapLimits(
        limits.storage_max_gap_s,
        limits.transport_max_gap_s,
        limits.road_max_gap_s,
        limits.rail_max_gap_s,
        limits.sea_max_gap_s,
    )


# -- reading it --------------------------------------------------------------------------------------


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


def _utc_or_none(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC)


def _num(x: Any, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def trace_lot(conn: Conn, lot_id: str, *, scope: ScopeParams = queries.EVERYTHING) -> Trace | None:
    """The trace of one lot, None if the lot is unknown; ``scope`` ({role, party}) picks the shipments
    shown."""
    lot_row = conn.execute(queries.LOT, (lot_id,)).fetchone()
    unit_rows = conn.execute(queries.UNITS_OF_LOT, {"lot": lot_id}).fetchall()
    if (
        lot_row is None
        and not unit_rows
        and conn.execute(queries.SUBJECT_KNOWN, (lot_id,)).fetchone() is None
    ):
        return None
    limits = None
    if lot_row is not None:
        rc = conn.execute(queries.RULE_CLASS, (lot_row[3],)).fetchone()
        if rc is not None:
            limits = Limits(
                *(rc[0], rc[1], rc[2], _float(rc[3]), _float(rc[4]), rc[5], _float(rc[6]), _float(rc[7])),
                mkt_limit_c=_float(rc[8]),
                mkt_window_s=_float(rc[9]),
                mkt_dh_r_k=_float(rc[10]),
                road_max_gap_s=_float(rc[11]),
                rail_max_gap_s=_float(rc[12]),
                sea_max_gap_s=_float(rc[13]),
            )
    units = [Unit(r[0], r[1], _utc(r[2]), _utc_or_none(r[3]), r[4], r[5]) for r in unit_rows]
    goods = [lot_id, *sorted({u.unit_id for u in units if u.asset_id is None})]
    placements = [
        Placement(r[0], r[1], r[2], _utc(r[3]), _utc_or_none(r[4]), r[5], r[6])
        for r in conn.execute(queries.PLACEMENTS, (goods,)).fetchall()
    ]
    legs = _legs(conn, lot_id, goods, limits)
    event_rows = conn.execute(queries.EVENTS_OF_IDS, {"ids": goods}).fetchall()
    declared = {r[1] for r in event_rows if r[6]}
    events = [
        LedgerRef(r[0], r[1], r[2], r[3], _utc(r[4]), r[5], bool(r[6]), r[1] in declared) for r in event_rows
    ]
    lot_breaks = [_break(r) for r in conn.execute(queries.LOT_BREAKS, (lot_id,)).fetchall()]
    bonded = [
        BondedStep(r[0], r[1], r[2], _utc(r[3]))
        for r in conn.execute(queries.BONDED_OF_LOT, (lot_id,)).fetchall()
    ]
    lot = None
    if lot_row is not None:
        lot_id_, gtin, batch, product_class, description, origin, hs_code, status = lot_row
        if bonded:
            status = bonded[-1].status
        lot = Lot(lot_id_, gtin, batch, product_class, description, origin, hs_code, status)
    judged = _lot_verdict(conn, lot_id)
    corrections = _corrections(conn, [e.seq for e in events if e.error_declaration])
    return Trace(
        shelf_life=_shelf_life(conn, lot_id),
        lot_id=lot_id,
        lot=lot,
        limits=limits,
        units=units,
        placements=placements,
        custody=legs,
        lot_chain_breaks=lot_breaks,
        events=events,
        verdict=judged.verdict,
        verdict_version=judged.version,
        verdict_reasons=judged.reasons,
        bonded=bonded,
        backward=_backward(conn, lot_id, lot, goods),
        forward=_forward(conn, lot_id, goods, [e.seq for e in events]),
        corrections=corrections,
        verdict_history=_verdict_history(conn, lot_id),
        shipments=shipments_of_lot(
            conn, lot_id, scope, [e.seq for e in events if not (e.error_declaration or e.declared_wrong)]
        ),
        import_flow=_import_flow(conn, lot_id),
        profile_excursions=_profile_excursions(conn, lot_id, [leg.leg_id for leg in legs]),
    )


def _profile_excursions(conn: Conn, lot_id: str, legs: list[int]) -> list[ProfileExcursion]:
    """The shipment-profile rows of the lot's shipments on its legs' assets (rules.worker.shipper)."""
    rows = conn.execute(queries.PROFILE_EXCURSIONS_OF_LEGS, {"lot": lot_id, "legs": legs}).fetchall()
    return [
        ProfileExcursion(
            kind=r[0],
            asset_id=r[1],
            series_id=r[2],
            shipment_id=r[3],
            profile_version=r[4],
            rule_id=r[5],
            source=r[6],
            start_time=_utc(r[7]),
            end_time=_utc(r[8]),
            open=r[9],
            peak_c=_num(r[10]),
            limit_low_c=_float(r[11]),
            limit_high_c=_float(r[12]),
            allowed_s=_float(r[13]),
        )
        for r in rows
    ]


def _import_flow(conn: Conn, lot_id: str) -> ImportFlow | None:
    """The lot's import flow from its derived steps, its releases and clearance time as the flow checker
    counts them (``rules.engine.flow``); None when the ledger records no import step of the lot."""
    steps = [
        flow.FlowStep(
            step=str(r[0]),
            seq=int(r[1]),
            t=_utc(r[2]),
            quantity=_float(r[3]),
            uom=r[4],
            conformant=r[5],
            site=r[6],
            certificates=tuple(r[7] or ()),
            trace_code=r[8],
            disinfection_required=bool(r[9]),
        )
        for r in conn.execute(queries.IMPORT_STEPS_OF_LOT, (lot_id,)).fetchall()
    ]
    if not steps:
        return None
    found = flow.check(steps)
    return ImportFlow(
        steps=[
            ImportStep(
                s.step,
                s.seq,
                s.t,
                s.quantity,
                s.uom,
                s.conformant,
                s.site,
                list(s.certificates),
                s.trace_code,
            )
            for s in found.steps
        ],
        releases=[
            ImportRelease(r.seq, r.t, r.quantity, r.uom, r.released_total, r.inspected, r.remaining)
            for r in found.releases
        ],
        discharged_at=found.discharged_at,
        first_release_at=found.first_release_at,
        clearance_s=found.clearance_s,
        trace_code=found.trace_code,
        trace_code_site=found.trace_code_site,
        scan_path=None if found.trace_code is None else scan_path(found.trace_code),
    )


def _corrections(conn: Conn, seqs: list[int]) -> list[Correction]:
    """The errorDeclarations at these seqs, each with what its corrective events state."""
    if not seqs:
        return []
    rows = conn.execute(queries.DECLARATIONS, (seqs,)).fetchall()
    ids = sorted({str(i) for r in rows for i in (r[2] or {}).get("correctiveEventIDs", [])})
    fixed = {r[0]: (r[1], r[2]) for r in conn.execute(queries.CORRECTIVE_EVENTS, (ids,)).fetchall()}
    out = []
    for seq, event_id, declaration, was in rows:
        corrective = [str(i) for i in declaration.get("correctiveEventIDs", [])]
        why, now = fixed.get(corrective[0], (None, None)) if corrective else (None, None)
        out.append(
            Correction(
                declared_event_id=event_id,
                declaration_seq=int(seq),
                declared_at=parse_time(str(declaration["declarationTime"])),
                reason=str(declaration.get("reason", "")),
                corrective_event_ids=corrective,
                why=why,
                was=was,
                now=now,
            )
        )
    return out


def _verdict_history(conn: Conn, lot_id: str) -> list[VerdictVersion]:
    return [
        VerdictVersion(
            version=int(r[0]),
            verdict=r[1],
            computed_at=_utc(r[2]),
            change_from=r[3],
            reasons=[str(x) for x in r[4]],
            arrived_from=None if r[5] is None else parse_time(r[5]),
            arrived_to=None if r[6] is None else parse_time(r[6]),
        )
        for r in conn.execute(queries.LOT_VERDICT_HISTORY, (lot_id,)).fetchall()
    ]


def _legs(conn: Conn, lot_id: str, goods: list[str], limits: Limits | None) -> list[CustodyLeg]:
    gap = _gap_limits(limits)
    params = {
        "units": goods,
        "low": None if limits is None else limits.low_c,
        "high": None if limits is None else limits.high_c,
        "mkt_dh_r": MKT_DH_R_K,
        **gap.params(),
    }
    rows = conn.execute(queries.LEGS_WITH_EVIDENCE, params).fetchall()
    ids = [r[0] for r in rows]
    excursions: dict[int, list[Excursion]] = {i: [] for i in ids}
    window = {
        "legs": ids,
        "mkt_window_s": None if limits is None else limits.mkt_window_s,
        "mkt_dh_r": MKT_DH_R_K if limits is None or limits.mkt_dh_r_k is None else limits.mkt_dh_r_k,
        **gap.params(),
    }
    for r in conn.execute(queries.EXCURSIONS_OF_LEGS, window).fetchall():
        excursions[r[0]].append(
            Excursion(
                excursion_id=r[1],
                series_id=r[2],
                device_id=r[3],
                channel=r[4],
                rule_id=r[5],
                pack_version=r[6],
                start_time=_utc(r[7]),
                end_time=_utc(r[8]),
                open=r[9],
                peak_c=_num(r[10]),
                limit_low_c=_float(r[11]),
                limit_high_c=_float(r[12]),
                readings=r[13],
                mkt_c=_mkt(r[14], window["mkt_dh_r"]),
            )
        )
    breaks: dict[int, list[ChainBreak]] = {i: [] for i in ids}
    for r in conn.execute(queries.BREAKS_OF_LEGS, {"lot": lot_id, "legs": ids}).fetchall():
        breaks[r[0]].append(_break(r[1:]))
    legs: list[CustodyLeg] = []
    for r in rows:
        t_start, t_end = _utc(r[9]), _utc_or_none(r[10])
        temperature = TemperatureSummary(
            readings=r[13],
            dropouts=r[14],
            min_c=_num(r[15]),
            max_c=_num(r[16]),
            mean_c=_num(r[17]),
            series=r[18],
            out_of_range_s=_num(r[19], 1),
            mkt_c=_mkt(r[20]),
            max_gap_s=_num(r[21], 1),
            gaps=r[22],
            allowed_gap_s=gap.allowed_s(r[25]),
            first_reading=_utc_or_none(r[23]),
            last_reading=_utc_or_none(r[24]),
        )
        leg_breaks = breaks[r[0]]
        # A custody leg that was handed on (closed) with no temperature reading at all: nobody can show
        # the goods stayed cold between the two handoffs.
        if t_end is not None and temperature.readings == 0:
            leg_breaks.append(
                ChainBreak(
                    chain_break_id=None,
                    kind="handoff",
                    series_id=None,
                    rule_id=HANDOFF_RULE,
                    pack_version="trace",
                    start_time=t_start,
                    end_time=t_end,
                    allowed_s=0.0,
                    detail={"reason": "custody leg handed on with no temperature evidence"},
                )
            )
        legs.append(
            CustodyLeg(
                leg_id=r[0],
                epc=r[1],
                custodian=None if r[2] is None else Party(r[2], r[3]),
                location=None if r[4] is None else Location(r[4], r[5]),
                asset=None if r[6] is None else Asset(r[6], r[7], r[8]),
                t_start=t_start,
                t_end=t_end,
                start_seq=r[11],
                end_seq=r[12],
                temperature=temperature,
                excursions=excursions[r[0]],
                chain_breaks=leg_breaks,
            )
        )
    return legs


def _mkt(mean_term: Any, dh_r_k: Any = MKT_DH_R_K) -> float | None:
    """MKT in °C from the mean of exp(-ΔH/R / T) (T in kelvin)."""
    if mean_term is None or mean_term <= 0:
        return None
    return round(float(dh_r_k) / -math.log(float(mean_term)) - 273.15, 3)


def _backward(conn: Conn, lot_id: str, lot: Lot | None, goods: list[str]) -> Backward:
    first = conn.execute(queries.FIRST_EVENT_OF_IDS, (goods,)).fetchone()
    return Backward(
        origin=Origin(
            country=None if lot is None else lot.origin_country,
            first_event=None
            if first is None
            else FirstEvent(first[0], _utc(first[1]), first[2], first[3], first[4]),
        ),
        inputs=[
            LineageLink(id=r[0], output_id=r[1], seq=r[2], event_time=_utc(r[3]), depth=r[4])
            for r in conn.execute(queries.LINEAGE_UP, {"id": lot_id}).fetchall()
        ],
    )


def _forward(conn: Conn, lot_id: str, goods: list[str], seqs: list[int]) -> Forward:
    outputs = [
        LineageLink(id=r[1], input_id=r[0], seq=r[2], event_time=_utc(r[3]), depth=r[4])
        for r in conn.execute(queries.LINEAGE_DOWN, {"id": lot_id}).fetchall()
    ]
    shipments = [
        Shipment(
            seq=r[0],
            event_time=_utc(r[1]),
            biz_step=r[2],
            biz_transactions=[str(b.get("bizTransaction")) for b in (r[3] or [])],
            destinations=[str(d.get("destination")) for d in (r[4] or [])],
            read_point=r[5],
            transport_mode=r[6] or r[7],
        )
        for r in conn.execute(queries.SHIPMENTS_OF_SEQS, (seqs, sorted(MOVEMENT_STEPS))).fetchall()
    ]
    units = goods + [o.id for o in outputs]
    recipients = [
        Recipient(r[0], r[1], r[2], _utc_or_none(r[3]))
        for r in conn.execute(queries.CUSTODIANS_OF_UNITS, (units,)).fetchall()
    ]
    recipients.sort(key=lambda p: (_since_key(p.since), p.party_id))
    return Forward(outputs=outputs, shipments=shipments, recipients=recipients)


def _since_key(since: datetime | None) -> str:
    """The old sort key of a recipient: its ISO time, the empty string (first) when unknown."""
    return "" if since is None else since.isoformat()


def visible_lots(conn: Conn, lots: list[str], seen_by: Mapping[str, str | None]) -> list[str]:
    """The lots of ``lots`` the reader ``seen_by`` (a scope's ``{"role", "party"}``) may read (sorted)."""
    if not lots:
        return []
    return [r[0] for r in conn.execute(queries.VISIBLE_LOTS, {**seen_by, "lots": lots}).fetchall()]


def trace(conn: Conn, ident: str, seen_by: Mapping[str, str | None] = queries.EVERYTHING) -> Trace | None:
    """The trace of whatever ``ident`` names (lot id or code, EPC, container number, B/L or waybill):
    the first lot it leads to that ``seen_by`` may read, traced, with ``query`` = {id, kind, lots} listing
    every such lot it leads to. None when it leads to none (or to none ``seen_by`` may read)."""
    kind, lots = resolve(conn, ident)
    if not lots:
        if not visible_lots(conn, [ident], seen_by):
            return None
        found = trace_lot(conn, ident, scope=seen_by)  # a lot known only from the ledger (no registry row)
        kind = "lot"
    else:
        lots = visible_lots(conn, lots, seen_by)
        if not lots:
            return None
        found = trace_lot(conn, lots[0], scope=seen_by)
    if found is None:
        return None
    return dataclasses.replace(found, query=TraceQuery(id=ident, kind=kind, lots=lots or [ident]))


def _break(r: Any) -> ChainBreak:
    return ChainBreak(
        chain_break_id=r[0],
        kind=r[1],
        series_id=r[2],
        rule_id=r[3],
        pack_version=r[4],
        start_time=_utc(r[5]),
        end_time=_utc(r[6]),
        allowed_s=float(r[7]),
        detail=r[8],
    )

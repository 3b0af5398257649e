"""Composition root: human-readable renderings of a trace and of the demo's summary."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceability.trace_model import Trace


def _t(t: datetime | None) -> str:
    return "open" if t is None else t.strftime("%Y-%m-%d %H:%M")


def _c(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f} °C"


def format_trace(trace: Trace) -> str:
    """A lot's trace as an inspector reads it: who held it, where, in what, and what temperature it saw."""
    lot, limits = trace.lot, trace.limits
    low, high = (None, None) if limits is None else (limits.low_c, limits.high_c)
    source = "no published limits" if limits is None else limits.source
    lines = [
        f"lot {trace.lot_id}: {(lot.description if lot else None) or ''}".rstrip(),
        f"  class {lot.product_class if lot else None} ({_c(low)} .. {_c(high)}, {source}); "
        f"origin {lot.origin_country if lot else None}; HS {lot.hs_code if lot else None}; "
        f"{lot.bonded_status if lot else None}",
        f"  verdict: {trace.verdict.upper()}"
        + ("" if trace.verdict_version is None else f" (rules verdict v{trace.verdict_version})"),
        *(f"    {why}" for why in trace.verdict_reasons),
        "  custody legs:",
    ]
    for leg in trace.custody:
        who = leg.custodian.name if leg.custodian else "unknown custodian"
        where = leg.location.name if leg.location else ""
        what = leg.asset.name if leg.asset else "no monitored asset"
        temp = leg.temperature
        lines.append(f"    {_t(leg.t_start)} → {_t(leg.t_end)}  {who}; {where}; {what}")
        if temp.readings:
            lines.append(
                f"      {temp.readings} readings, {_c(temp.min_c)} .. {_c(temp.max_c)}, "
                f"mean {_c(temp.mean_c)}, {temp.out_of_range_s or 0:.0f} s out of range"
            )
        else:
            lines.append("      no temperature evidence")
        for e in leg.excursions:
            lines.append(
                f"      EXCURSION {_t(e.start_time)} → {_t(e.end_time)} peak {_c(e.peak_c)} "
                f"({e.device_id} {e.channel}, {e.rule_id} v{e.pack_version})"
            )
        for b in leg.chain_breaks:
            lines.append(
                f"      CHAIN BREAK ({b.kind}) {_t(b.start_time)} → {_t(b.end_time)}, "
                f"allowed {b.allowed_s:.0f} s ({b.rule_id})"
            )
    for b in trace.lot_chain_breaks:
        why = f": {b.detail['reason']}" if b.kind == "flow" and b.detail and b.detail.get("reason") else ""
        lines.append(f"  CHAIN BREAK ({b.kind}) {_t(b.start_time)} → {_t(b.end_time)} ({b.rule_id}){why}")
    lines += _import_flow(trace)
    lines.append(f"  ledger events: {len(trace.events)}")
    return "\n".join(lines)


def _import_flow(trace: Trace) -> list[str]:
    """The lot's import flow: steps, releases with what remains, clearance time, trace code."""
    flow = trace.import_flow
    if flow is None:
        return []
    clearance = "–" if flow.clearance_s is None else f"{flow.clearance_s / 3600:.1f} h"
    lines = [f"  import flow: trace code {flow.trace_code or '–'}; clearance {clearance}"]
    for s in flow.steps:
        amount = "" if s.quantity is None else f" {s.quantity:g} {s.uom or ''}".rstrip()
        result = "" if s.conformant is None else (" conformant" if s.conformant else " NON-CONFORMANT")
        lines.append(f"    {_t(s.event_time)}  {s.step}{amount}{result}")
    for r in flow.releases:
        left = "–" if r.remaining is None else f"{r.remaining:g}"
        lines.append(f"    release {_t(r.event_time)}: {r.released_total:g} released so far, {left} left")
    return lines


def format_demo_summary(summary: dict[str, Any]) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in summary["dead_letter_reasons"].items()) or "none"
    lines = [
        "",
        "== demo summary ==",
        f"readings stored      {summary['readings']}",
        f"rfid reads           {summary['rfid_reads']}",
        f"dead letters         {summary['dead_letters']} ({reasons})",
        f"excursions           {summary['excursions']}",
        f"chain breaks         {summary['chain_breaks']}",
        f"ledger events        {summary['ledger_events']} "
        f"({'hash chain verified' if summary['ledger_verified'] else 'HASH CHAIN BROKEN'}; "
        f"signed checkpoint at seq {summary.get('checkpoint_seq')})",
        "",
    ]
    if summary.get("trace"):
        from traceability.trace_model import from_json

        lines.append(format_trace(from_json(summary["trace"])))
    else:
        lines.append(f"trace of {summary['trace_lot']}: HTTP {summary['trace_status']}")
    return "\n".join(lines)

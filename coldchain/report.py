"""Composition root: human-readable renderings of a trace and of the demo's summary."""

from __future__ import annotations

from typing import Any


def _t(iso: str | None) -> str:
    return "open" if iso is None else iso.replace("T", " ").replace("Z", "")[:16]


def _c(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f} °C"


def format_trace(trace: dict[str, Any]) -> str:
    """A lot's trace as an inspector reads it: who held it, where, in what, and what temperature it saw."""
    lot = trace.get("lot") or {}
    limits = trace.get("limits") or {}
    lines = [
        f"lot {trace['lot_id']}: {lot.get('description') or ''}".rstrip(),
        f"  class {lot.get('product_class')} ({_c(limits.get('low_c'))} .. {_c(limits.get('high_c'))}, "
        f"{limits.get('source', 'no published limits')}); origin {lot.get('origin_country')}; "
        f"HS {lot.get('hs_code')}; {lot.get('bonded_status')}",
        f"  verdict: {str(trace['verdict']).upper()}",
        "  custody legs:",
    ]
    for leg in trace["custody"]:
        who = (leg.get("custodian") or {}).get("name", "unknown custodian")
        where = (leg.get("location") or {}).get("name", "")
        what = (leg.get("asset") or {}).get("name", "no monitored asset")
        temp = leg["temperature"]
        lines.append(f"    {_t(leg['t_start'])} → {_t(leg['t_end'])}  {who}; {where}; {what}")
        if temp["readings"]:
            lines.append(
                f"      {temp['readings']} readings, {_c(temp['min_c'])} .. {_c(temp['max_c'])}, "
                f"mean {_c(temp['mean_c'])}, {temp['out_of_range_s'] or 0:.0f} s out of range"
            )
        else:
            lines.append("      no temperature evidence")
        for e in leg["excursions"]:
            lines.append(
                f"      EXCURSION {_t(e['start_time'])} → {_t(e['end_time'])} peak {_c(e['peak_c'])} "
                f"({e['device_id']} {e['channel']}, {e['rule_id']} v{e['pack_version']})"
            )
        for b in leg["chain_breaks"]:
            lines.append(
                f"      CHAIN BREAK ({b['kind']}) {_t(b['start_time'])} → {_t(b['end_time'])}, "
                f"allowed {b['allowed_s']:.0f} s ({b['rule_id']})"
            )
    for b in trace.get("lot_chain_breaks") or []:
        lines.append(
            f"  CHAIN BREAK ({b['kind']}) {_t(b['start_time'])} → {_t(b['end_time'])} ({b['rule_id']})"
        )
    lines.append(f"  ledger events: {len(trace.get('events') or [])}")
    return "\n".join(lines)


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
        lines.append(format_trace(summary["trace"]))
    else:
        lines.append(f"trace of {summary['trace_lot']}: HTTP {summary['trace_status']}")
    return "\n".join(lines)

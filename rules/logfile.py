"""Stage 2 (verdicts): read a data-logger CSV export and shape the offline check report (no database).

The file has a header with `time` and `temp_c` columns (and optionally `rh`); times are ISO 8601
(a time without an offset is taken as UTC) or integer epoch milliseconds; an empty `temp_c` is a
dropout (NaN). Rows are put in device-time order (a stable sort) before evaluation.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rules.engine import Evaluation
from rules.models import iso_utc, to_epoch_ms


class LogFileError(ValueError):
    """The file is not a usable logger export; the message names the line."""


@dataclass(frozen=True, slots=True)
class LoggerSeries:
    t_ms: NDArray[np.int64]
    temp_c: NDArray[np.float64]
    rh: NDArray[np.float64] | None


def _parse_time(text: str, line: int) -> int:
    s = text.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise LogFileError(f"line {line}: time {text!r} is neither ISO 8601 nor epoch milliseconds") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return to_epoch_ms(t)


def _parse_value(text: str | None, line: int, column: str) -> float:
    s = (text or "").strip()
    if s == "" or s.lower() in {"nan", "null", "na"}:
        return math.nan
    try:
        x = float(s)
    except ValueError:
        raise LogFileError(f"line {line}: {column} {text!r} is not a number") from None
    if math.isinf(x):
        raise LogFileError(f"line {line}: {column} must be finite")
    return x


def read_logger_csv(path: Path) -> LoggerSeries:
    """Parse a logger export; raise LogFileError naming the line of the first bad value."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            if "time" not in fields or "temp_c" not in fields:
                raise LogFileError(f"line 1: header must contain time and temp_c, got {fields}")
            reader.fieldnames = fields
            has_rh = "rh" in fields
            ts: list[int] = []
            vs: list[float] = []
            rhs: list[float] = []
            for line, row in enumerate(reader, start=2):
                ts.append(_parse_time(row["time"] or "", line))
                vs.append(_parse_value(row["temp_c"], line, "temp_c"))
                if has_rh:
                    rhs.append(_parse_value(row.get("rh"), line, "rh"))
    except OSError as exc:
        raise LogFileError(f"cannot read {path}: {exc}") from exc
    t = np.array(ts, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    return LoggerSeries(
        t_ms=t[order],
        temp_c=np.array(vs, dtype=np.float64)[order],
        rh=np.array(rhs, dtype=np.float64)[order] if has_rh else None,
    )


def _iso(t_ms: int) -> str:
    return iso_utc(datetime.fromtimestamp(t_ms / 1000, tz=UTC))


def check_report(ev: Evaluation) -> dict[str, Any]:
    """The JSON object `coldchain rules check` prints (times RFC 3339 UTC)."""
    return {
        "verdict": ev.verdict,
        "reasons": ev.reasons,
        "product_class": ev.product_class,
        "mode": ev.mode,
        "excursions": [
            {
                "start": _iso(e.start_ms),
                "end": _iso(e.end_ms),
                "duration_s": e.duration_s,
                "peak_c": e.peak_c,
                "rule_id": e.rule_id,
                "certain": e.certain,
            }
            for e in ev.excursions
        ],
        "suspended_excursions": [
            {"start": _iso(e.start_ms), "end": _iso(e.end_ms), "duration_s": e.duration_s, "peak_c": e.peak_c}
            for e in ev.suspended
        ],
        "gaps": [
            {
                "start": _iso(g.start_ms),
                "end": _iso(g.end_ms),
                "duration_s": g.duration_s,
                "allowed_s": g.allowed_s,
                "rule_id": g.rule_id,
            }
            for g in ev.gaps
        ],
        "triggers": [
            {"name": x.name, "kind": x.kind, "at": _iso(x.at_ms), "rule_id": x.rule_id} for x in ev.triggers
        ],
        "time_out_of_range_s": ev.time_out_of_range_s,
        "cumulative_max_s": ev.cumulative_max_s,
        "mkt_c": None if ev.mkt_c is None else round(ev.mkt_c, 3),
        "min_c": ev.min_c,
        "max_c": ev.max_c,
        "mean_c": None if ev.mean_c is None else round(ev.mean_c, 3),
        "readings": ev.readings,
        "near_limit": ev.near_limit,
        "faults": ev.faults,
        "remaining_shelf_life_h": None
        if ev.remaining_shelf_life_h is None
        else round(ev.remaining_shelf_life_h, 3),
        "pack_id": ev.pack_id,
        "pack_version": ev.pack_version,
    }

"""Stage 2 (verdicts): read a data-logger CSV export and shape the offline check report (no database).

The file is UTF-8 CSV text with a header naming `time` and `temp_c` columns (and optionally `rh`);
times are ISO 8601 (a time without an offset is taken as UTC) or integer epoch milliseconds; an empty
(or `nan`, `na`, `null`) value is a dropout (NaN). Rows are put in device-time order (a stable sort)
before evaluation. A file is refused whole, naming the line, when it is not UTF-8 text, exceeds the
bounds below, or holds a time or a value the gateway would refuse from a live device: a time outside
the device clock range, a temperature or humidity outside what a probe can physically read
(VALUE_RANGES, from `gateway.decode.CHANNEL_RANGES`), or an infinite value. Such a reading is a broken
sensor, a wrong unit or a corrupt export, and a verdict over the rest would hide it.
"""

from __future__ import annotations

import csv
import math
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
from numpy.typing import NDArray

from gateway.decode import CHANNEL_RANGES, MAX_DEVICE_T_MS, MIN_DEVICE_T_MS
from rules.engine import Evaluation
from rules.models import iso_utc, to_epoch_ms

# Bounds of one file, so that a device file (/dev/zero), a pipe or a binary given by mistake is refused
# before memory grows without bound. A row of time, temp_c and rh is under 60 bytes, so 256 MiB and
# 5 000 000 rows hold over nine years of one reading a minute (or eight weeks of one a second).
MAX_FILE_BYTES: Final = 256 * 1024 * 1024
MAX_ROWS: Final = 5_000_000
# A logger row is under 100 bytes; 4 KiB leaves room for a long header and extra columns.
MAX_LINE_BYTES: Final = 4096
# What a probe can read per value column: the ranges the gateway holds a live device's readings to.
VALUE_RANGES: Final[dict[str, tuple[float, float]]] = {
    "temp_c": CHANNEL_RANGES["temp"],
    "rh": CHANNEL_RANGES["rh"],
}
# How much of a bad header the error shows.
_HEADER_SHOWN: Final = 120

# The device clock range (years, the end exclusive), as the gateway holds a live device's times to.
YEARS: Final = tuple(
    datetime.fromtimestamp(t / 1000, tz=UTC).year for t in (MIN_DEVICE_T_MS, MAX_DEVICE_T_MS)
)
_EPOCH_MS = re.compile(r"-?[0-9]+")  # ASCII digits: str.isdigit also takes "²"
_BOM: Final = b"\xef\xbb\xbf"


class LogFileError(ValueError):
    """The file is not a usable logger export; the message (one line) names the line."""


@dataclass(frozen=True, slots=True)
class LoggerSeries:
    t_ms: NDArray[np.int64]
    temp_c: NDArray[np.float64]
    rh: NDArray[np.float64] | None


def _parse_time(text: str, line: int) -> int:
    s = text.strip()
    if _EPOCH_MS.fullmatch(s):
        t_ms = int(s)
    else:
        try:
            t = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        except ValueError:
            raise LogFileError(
                f"line {line}: time {text!r} is neither ISO 8601 nor epoch milliseconds"
            ) from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        t_ms = to_epoch_ms(t)
    if not MIN_DEVICE_T_MS <= t_ms < MAX_DEVICE_T_MS:
        raise LogFileError(f"line {line}: time {text!r} lies outside {YEARS[0]}..{YEARS[1]} (clock not set?)")
    return t_ms


def _parse_value(text: str | None, line: int, column: str) -> float:
    s = (text or "").strip()
    if s == "" or s.lower() in {"nan", "null", "na"}:
        return math.nan
    try:
        x = float(s)
    except ValueError:
        raise LogFileError(f"line {line}: {column} {text!r} is not a number") from None
    if math.isnan(x):
        return math.nan
    lo, hi = VALUE_RANGES[column]
    if not lo <= x <= hi:
        raise LogFileError(
            f"line {line}: {column} {text!r} lies outside {lo:g}..{hi:g}, the range a probe can read"
            " (a broken sensor, a wrong unit or a corrupt file)"
        )
    return x


def _text_lines(fh: IO[bytes]) -> Iterator[str]:
    """The file's lines as text, refusing non-UTF-8 bytes, NUL bytes and anything beyond the bounds."""
    total = 0
    number = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        total += len(raw)
        if total > MAX_FILE_BYTES:
            raise LogFileError(f"line {number}: the file is larger than {MAX_FILE_BYTES} bytes")
        if len(raw) > MAX_LINE_BYTES:
            raise LogFileError(f"line {number}: longer than {MAX_LINE_BYTES} bytes (not a logger export?)")
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if b"\0" in raw:
            raise LogFileError(f"line {number}: holds a NUL byte (a binary file, not a CSV export)")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogFileError(
                f"line {number}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8 text"
                " (a binary file, not a CSV export)"
            ) from None


def read_logger_csv(path: Path) -> LoggerSeries:
    """Parse a logger export; raise LogFileError naming the line of the first problem."""
    ts = array("q")
    vs = array("d")
    rhs = array("d")
    i_rh: int | None = None
    try:
        with path.open("rb") as fh:
            reader = csv.reader(_text_lines(fh), strict=True)
            try:
                header = next(reader, [])
                fields = [f.strip() for f in header]
                if "time" not in fields or "temp_c" not in fields:
                    shown = repr(fields)
                    if len(shown) > _HEADER_SHOWN:
                        shown = shown[:_HEADER_SHOWN] + "…"
                    raise LogFileError(f"line 1: header must contain time and temp_c, got {shown}")
                i_time, i_temp = fields.index("time"), fields.index("temp_c")
                i_rh = fields.index("rh") if "rh" in fields else None
                for row in reader:
                    if not row:
                        continue  # a blank line
                    line = reader.line_num
                    if len(ts) >= MAX_ROWS:
                        raise LogFileError(f"line {line}: more than {MAX_ROWS} rows")
                    ts.append(_parse_time(row[i_time] if i_time < len(row) else "", line))
                    vs.append(_parse_value(row[i_temp] if i_temp < len(row) else None, line, "temp_c"))
                    if i_rh is not None:
                        rhs.append(_parse_value(row[i_rh] if i_rh < len(row) else None, line, "rh"))
            except csv.Error:
                raise LogFileError(f"line {reader.line_num}: not a valid CSV row") from None
    except OSError as exc:
        raise LogFileError(f"cannot read: {exc.strerror or 'input/output error'}") from None
    t = np.frombuffer(ts, dtype=np.int64) if len(ts) else np.empty(0, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    v = np.frombuffer(vs, dtype=np.float64) if len(vs) else np.empty(0, dtype=np.float64)
    rh = np.frombuffer(rhs, dtype=np.float64) if len(rhs) else np.empty(0, dtype=np.float64)
    return LoggerSeries(t_ms=t[order], temp_c=v[order], rh=rh[order] if i_rh is not None else None)


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

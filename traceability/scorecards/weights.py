"""Stage 3, scorecards: the versioned, cited weights and thresholds file, read and validated once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from traceability.scorecards.model import INDICATOR_KEYS

WEIGHTS_FILE: Final = Path(__file__).with_name("weights.toml")
# Timeliness thresholds the rollups can answer: their lag buckets (reading_1h.lag_le_60s/300s/3600s).
LAG_COLUMNS: Final = {1: "lag_le_60s", 5: "lag_le_300s", 60: "lag_le_3600s"}
MODES: Final = ("road", "rail", "sea", "storage", "transport")


class WeightsError(ValueError):
    """The weights file is not valid; the message gives the key path."""


@dataclass(frozen=True, slots=True)
class Weights:
    version: str
    weights: dict[str, float]
    sources: dict[str, str]
    timeliness_minutes: dict[str, int]
    alarm_sla_s: float
    max_speed_kmh: float
    still_m: float
    still_hours: int
    silent_hours: int
    cap_anomalies_per_100h: float
    cap_ack_median_s: float


def _get(table: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise WeightsError(f"{path}.{key}: missing")
    v = table[key]
    if not isinstance(v, kind) or isinstance(v, bool):
        raise WeightsError(f"{path}.{key}: {v!r} is not of the expected type")
    return v


def _source(table: dict[str, Any], key: str, path: str) -> str:
    s = _get(table, key, path, str)
    if not s.strip():
        raise WeightsError(f"{path}.{key}: empty: cite a source or say 'project default'")
    return str(s)


def parse_weights(doc: dict[str, Any]) -> Weights:
    """Validate a parsed weights document: every indicator weighted (>= 0) and cited, timeliness minutes
    for every mode among the rollups' lag buckets, positive thresholds."""
    version = _get(doc, "version", "", str)
    table = _get(doc, "weights", "", dict)
    unknown = set(table) - set(INDICATOR_KEYS)
    if unknown:
        raise WeightsError(f"weights: unknown indicator(s) {sorted(unknown)}")
    weights: dict[str, float] = {}
    sources: dict[str, str] = {}
    for key in INDICATOR_KEYS:
        entry = _get(table, key, "weights", dict)
        w = float(_get(entry, "weight", f"weights.{key}", (int, float)))
        if w < 0:
            raise WeightsError(f"weights.{key}.weight: {w} is negative")
        weights[key] = w
        sources[key] = _source(entry, "source", f"weights.{key}")
    if sum(weights.values()) <= 0:
        raise WeightsError("weights: every weight is 0")
    tm = _get(doc, "timeliness_minutes", "", dict)
    minutes: dict[str, int] = {}
    for mode in MODES:
        entry = _get(tm, mode, "timeliness_minutes", dict)
        n = _get(entry, "minutes", f"timeliness_minutes.{mode}", int)
        if n not in LAG_COLUMNS:
            raise WeightsError(f"timeliness_minutes.{mode}.minutes: {n} is not one of {sorted(LAG_COLUMNS)}")
        _source(entry, "source", f"timeliness_minutes.{mode}")
        minutes[mode] = n
    sla = _get(doc, "alarm_sla", "", dict)
    traj = _get(doc, "trajectory", "", dict)
    caps = _get(doc, "caps", "", dict)
    _source(sla, "source", "alarm_sla")
    for k in ("max_speed_source", "still_source", "silent_source"):
        _source(traj, k, "trajectory")
    _source(caps, "source", "caps")
    figures = {
        "alarm_sla.seconds": float(_get(sla, "seconds", "alarm_sla", (int, float))),
        "trajectory.max_speed_kmh": float(_get(traj, "max_speed_kmh", "trajectory", (int, float))),
        "trajectory.still_m": float(_get(traj, "still_m", "trajectory", (int, float))),
        "trajectory.still_hours": float(_get(traj, "still_hours", "trajectory", int)),
        "trajectory.silent_hours": float(_get(traj, "silent_hours", "trajectory", int)),
        "caps.trajectory_anomalies_per_100h": float(
            _get(caps, "trajectory_anomalies_per_100h", "caps", (int, float))
        ),
        "caps.alarm_ack_median_s": float(_get(caps, "alarm_ack_median_s", "caps", (int, float))),
    }
    for path, v in figures.items():
        if v <= 0:
            raise WeightsError(f"{path}: {v} is not positive")
    return Weights(
        version=version,
        weights=weights,
        sources=sources,
        timeliness_minutes=minutes,
        alarm_sla_s=figures["alarm_sla.seconds"],
        max_speed_kmh=figures["trajectory.max_speed_kmh"],
        still_m=figures["trajectory.still_m"],
        still_hours=int(figures["trajectory.still_hours"]),
        silent_hours=int(figures["trajectory.silent_hours"]),
        cap_anomalies_per_100h=figures["caps.trajectory_anomalies_per_100h"],
        cap_ack_median_s=figures["caps.alarm_ack_median_s"],
    )


def load_weights(path: Path = WEIGHTS_FILE) -> Weights:
    """Read and validate a weights file (WeightsError names the bad key path)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{path.name}: not TOML: {exc}") from None
    return parse_weights(doc)


@cache
def default_weights() -> Weights:
    """The shipped weights file, read once."""
    return load_weights()

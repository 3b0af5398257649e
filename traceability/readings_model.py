"""Stage 3 (trace): the typed readings behind a leg's chart: temperature points (downsampled without
losing a peak), door / power / defrost markers and the GPS track of an asset over a time window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from traceability.trace_model import FIELD_DOCS

# What a marker on a chart says happened (from the door / power channels and the devices' events).
MarkerKind = Literal["door_open", "door_closed", "power_off", "power_on", "defrost_start", "defrost_end"]
# The largest max_points a request may ask for, and what it gets when it names none.
MAX_POINTS_LIMIT = 20_000
DEFAULT_MAX_POINTS = 2_000


@dataclass(frozen=True, slots=True)
class Point:
    t: datetime
    v: float


@dataclass(frozen=True, slots=True)
class SeriesPoints:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    series_id: int
    device_id: str
    channel: str
    """temp, temp:2 ... (°C)"""
    readings: int
    """readings of the series in the window, before downsampling"""
    downsampled: bool
    """whether points holds fewer points than readings (each bucket's minimum and maximum kept)"""
    points: list[Point]
    """in time order; a dropout (NaN) is left out"""


@dataclass(frozen=True, slots=True)
class Marker:
    t: datetime
    kind: MarkerKind
    device_id: str


@dataclass(frozen=True, slots=True)
class TrackPoint:
    t: datetime
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class AssetReadings:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    asset_id: str
    t_from: datetime
    t_to: datetime
    max_points: int
    """the most points any one series carries"""
    temperature: list[SeriesPoints]
    """the temperature series of the devices mounted on the asset in the window"""
    markers: list[Marker]
    track: list[TrackPoint]
    """GPS positions in time order, downsampled to at most max_points"""


@dataclass(frozen=True, slots=True)
class LegReadings:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    leg_id: int
    readings: AssetReadings | None
    """null when the leg has no asset (so no temperature evidence)"""

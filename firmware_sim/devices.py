"""Stage 0, devices: models of reefer trucks and containers, a cold-room logger and RFID readers (pure)."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Final

from firmware_sim.encode import Reading

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS


@dataclass(frozen=True)
class Waypoint:
    lat: float
    lon: float


# Qinzhou bonded-zone cold store -> G75 expressway -> a service area -> Nanning seafood market.
QINZHOU_NANNING_ROUTE: Final = (
    Waypoint(21.6953, 108.6122),  # Qinzhou bonded zone cold store, dock 3
    Waypoint(21.9560, 108.6240),  # Qinzhou city bypass
    Waypoint(22.2480, 108.5520),  # expressway service area (door-open stop)
    Waypoint(22.5900, 108.4400),  # Nanning south
    Waypoint(22.8170, 108.3660),  # Nanning seafood market, dock 1
)
SERVICE_AREA_INDEX: Final = 2
EARTH_RADIUS_KM: Final = 6371.0


def haversine_km(a: Waypoint, b: Waypoint) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def along(route: tuple[Waypoint, ...], start: int, end: int, fraction: float) -> Waypoint:
    """The point `fraction` (0..1) of the distance from waypoint `start` to waypoint `end`."""
    legs = [haversine_km(route[i], route[i + 1]) for i in range(start, end)]
    target = max(0.0, min(1.0, fraction)) * sum(legs)
    for i, leg in enumerate(legs):
        if target <= leg or i == len(legs) - 1:
            f = 0.0 if leg == 0 else min(1.0, target / leg)
            a, b = route[start + i], route[start + i + 1]
            return Waypoint(a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f)
        target -= leg
    return route[end]


def leg_km(route: tuple[Waypoint, ...], start: int, end: int) -> float:
    return sum(haversine_km(route[i], route[i + 1]) for i in range(start, end))


@dataclass
class ColdRoomLogger:
    """A temp/rh logger in a steady chilled cold room (~2 degC, ~88 %RH)."""

    device_id: str
    rng: random.Random
    temp_c: float = 2.0
    rh_pct: float = 88.0

    def sample(self, t_ms: int) -> list[Reading]:
        # A slow compressor cycle (40 min period) plus probe noise.
        cycle = 0.4 * math.sin(2 * math.pi * t_ms / (40 * MINUTE_MS))
        temp = self.temp_c + cycle + self.rng.gauss(0, 0.08)
        rh = self.rh_pct + self.rng.gauss(0, 1.0)
        return [(t_ms, "temp", round(temp, 2)), (t_ms, "rh", round(min(100.0, max(0.0, rh)), 1))]


# Time constants of the reefer box air, minutes: with the door open it warms toward the air outside
# (88 min: 25 min open in 29 degC air lifts the box from 2 to ~8.7 degC); closed, the unit pulls it
# back to setpoint (7 min: back within 0.5 degC of setpoint ~20 min after closing).
TAU_OPEN_MIN: Final = 88.0
TAU_CLOSED_MIN: Final = 7.0


@dataclass(frozen=True)
class DoorOpening:
    from_ms: int
    to_ms: int
    outside_c: float  # air the open door lets in


def box_probes(
    box_c: dict[str, float],
    rng: random.Random,
    t_ms: int,
    dt_min: float,
    setpoint_c: float,
    door: DoorOpening | None,
) -> list[Reading]:
    """Advance a reefer box's two probes by `dt_min` (state in `box_c`) and read them, with probe noise."""
    out: list[Reading] = []
    # Probe 2 sits deeper in the load: it follows the air a little more slowly.
    for probe, lag in (("temp:1", 1.0), ("temp:2", 0.9)):
        box = box_c.get(probe, setpoint_c)
        if door is not None:
            box += (door.outside_c - box) * (1 - math.exp(-dt_min * lag / TAU_OPEN_MIN))
        else:
            box += (setpoint_c - box) * (1 - math.exp(-dt_min * lag / TAU_CLOSED_MIN))
        box_c[probe] = box
        out.append((t_ms, probe, round(box + rng.gauss(0, 0.08), 2)))
    return out


@dataclass
class ReeferTruck:
    """A reefer controller: two probes, door, setpoint and GPS, along a scripted trip (scenario ms)."""

    device_id: str
    rng: random.Random
    depart_ms: int  # leaves the origin dock
    stop_ms: int  # reaches the service area
    resume_ms: int  # leaves the service area
    arrive_ms: int  # reaches the destination dock
    doors: tuple[DoorOpening, ...]
    setpoint_c: float = 2.0
    route: tuple[Waypoint, ...] = QINZHOU_NANNING_ROUTE
    _box_c: dict[str, float] = field(default_factory=dict)
    _last_ms: int | None = None

    def door(self, t_ms: int) -> DoorOpening | None:
        return next((d for d in self.doors if d.from_ms <= t_ms < d.to_ms), None)

    def position(self, t_ms: int) -> tuple[Waypoint, float]:
        """(where, speed km/h) at scenario time t_ms."""
        r = self.route
        if t_ms < self.depart_ms:
            return r[0], 0.0
        if t_ms < self.stop_ms:
            span = self.stop_ms - self.depart_ms
            kmh = leg_km(r, 0, SERVICE_AREA_INDEX) / (span / 3_600_000)
            return along(r, 0, SERVICE_AREA_INDEX, (t_ms - self.depart_ms) / span), kmh
        if t_ms < self.resume_ms:
            return r[SERVICE_AREA_INDEX], 0.0
        if t_ms < self.arrive_ms:
            span = self.arrive_ms - self.resume_ms
            kmh = leg_km(r, SERVICE_AREA_INDEX, len(r) - 1) / (span / 3_600_000)
            return along(r, SERVICE_AREA_INDEX, len(r) - 1, (t_ms - self.resume_ms) / span), kmh
        return r[-1], 0.0

    def sample(self, t_ms: int) -> list[Reading]:
        """Advance the box model to t_ms (called every minute, also while nothing gets sent)."""
        dt_min = 1.0 if self._last_ms is None else (t_ms - self._last_ms) / MINUTE_MS
        self._last_ms = t_ms
        door = self.door(t_ms)
        out = box_probes(self._box_c, self.rng, t_ms, dt_min, self.setpoint_c, door)
        where, kmh = self.position(t_ms)
        moving = kmh > 0

        def jitter() -> float:  # GPS noise while driving, ~5 m
            return self.rng.gauss(0, 0.00005) if moving else 0.0

        out += [
            (t_ms, "door", 0.0 if door is None else 1.0),
            (t_ms, "setpoint", self.setpoint_c),
            (t_ms, "lat", round(where.lat + jitter(), 6)),
            (t_ms, "lon", round(where.lon + jitter(), 6)),
            (t_ms, "speed", round(max(0.0, kmh + self.rng.gauss(0, 3.0)), 1) if moving else 0.0),
        ]
        return out


@dataclass
class RfidReader:
    """A dock-door UHF reader: a tag passing the door is read a few times on several antennas."""

    device_id: str
    rng: random.Random

    def pass_tags(self, t_ms: int, epcs: tuple[str, ...]) -> list[tuple[int, str, int, float]]:
        reads: list[tuple[int, str, int, float]] = []
        for i, epc in enumerate(epcs):
            for k in range(3):  # three reads over ~1.5 s as the load moves through the portal
                t = t_ms + i * 200 + k * 500 + self.rng.randrange(0, 50)
                reads.append((t, epc, 1 + (k % 2), round(self.rng.uniform(-68.0, -45.0), 1)))
        reads.sort()
        return reads


@dataclass(frozen=True)
class Fix:
    """Where a tracked asset is at scenario time `t_ms`; between two fixes it moves in a straight line."""

    t_ms: int
    at: Waypoint


def track_position(fixes: tuple[Fix, ...], t_ms: int) -> tuple[Waypoint, float]:
    """(where, speed km/h) at `t_ms` on a track of fixes in time order: still before the first and after
    the last, straight and at even speed between two."""
    if t_ms <= fixes[0].t_ms:
        return fixes[0].at, 0.0
    for a, b in itertools.pairwise(fixes):
        if t_ms < b.t_ms:
            f = (t_ms - a.t_ms) / (b.t_ms - a.t_ms)
            where = Waypoint(a.at.lat + (b.at.lat - a.at.lat) * f, a.at.lon + (b.at.lon - a.at.lon) * f)
            return where, haversine_km(a.at, b.at) / ((b.t_ms - a.t_ms) / HOUR_MS)
        if t_ms == b.t_ms:
            return b.at, 0.0
    return fixes[-1].at, 0.0


@dataclass
class TrackedReefer:
    """A reefer controller (container or truck) on a scripted track of fixes: two probes, door, setpoint,
    GPS. GPS noise is ~5 m while moving, none standing still."""

    device_id: str
    rng: random.Random
    fixes: tuple[Fix, ...]
    setpoint_c: float
    doors: tuple[DoorOpening, ...] = ()
    _box_c: dict[str, float] = field(default_factory=dict)
    _last_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.fixes or any(b.t_ms <= a.t_ms for a, b in itertools.pairwise(self.fixes)):
            raise ValueError(f"{self.device_id}: a track needs fixes in strictly increasing time")

    def sample(self, t_ms: int) -> list[Reading]:
        """Advance the box model to t_ms and read every channel (called every minute)."""
        dt_min = 1.0 if self._last_ms is None else (t_ms - self._last_ms) / MINUTE_MS
        self._last_ms = t_ms
        door = next((d for d in self.doors if d.from_ms <= t_ms < d.to_ms), None)
        out = box_probes(self._box_c, self.rng, t_ms, dt_min, self.setpoint_c, door)
        where, kmh = track_position(self.fixes, t_ms)
        moving = kmh > 0
        lat = where.lat + (self.rng.gauss(0, 0.00005) if moving else 0.0)
        lon = where.lon + (self.rng.gauss(0, 0.00005) if moving else 0.0)
        return [
            *out,
            (t_ms, "door", 0.0 if door is None else 1.0),
            (t_ms, "setpoint", self.setpoint_c),
            (t_ms, "lat", round(lat, 6)),
            (t_ms, "lon", round(lon, 6)),
            (t_ms, "speed", round(max(0.0, kmh + self.rng.gauss(0, 2.0)), 1) if moving else 0.0),
        ]

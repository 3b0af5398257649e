"""Stage 2 (verdicts), pure: an asset's geofence crossings from its positions, and what changed in them.

An asset enters a fence at the device time of its first position inside after a position outside, and
exits it at the first position outside after one inside; the asset's first known position crosses
nothing (nothing says where it was before). Crossings are a function of the time-ordered positions alone,
so a re-judged window gives the same crossings whatever order the readings arrived in: a late position
between two others changes at most the crossings at itself and at the next position, which `diff`
turns into crossings added, crossings moved (same fence and direction, an earlier or later position:
the one the ledger holds is corrected) and crossings withdrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Literal

from registry.geometry import contains
from registry.models import Geofence

Direction = Literal["enter", "exit"]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """One position of an asset: a lat and a lon reading of one device at one device time."""

    t: datetime
    device_id: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Crossing:
    """The asset crossing a fence: the position that was first inside (enter) or outside (exit)."""

    location_id: str
    direction: Direction
    t: datetime
    device_id: str
    lat: float
    lon: float

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.location_id, self.direction, self.t)


def crossings(positions: Sequence[Position], fences: Sequence[Geofence]) -> list[Crossing]:
    """The crossings at positions[1:] (positions[0] is what came before: it crosses nothing), in time
    order then by fence. ``ValueError`` when the positions are not in time order."""
    ordered = list(positions)
    if any(b < a for a, b in pairwise(ordered)):
        raise ValueError("positions must be in (time, device) order")
    out: list[Crossing] = []
    if len(ordered) < 2:
        return out
    for fence in sorted(fences, key=lambda f: f.location_id):
        was = contains(fence, ordered[0].lat, ordered[0].lon)
        for p in ordered[1:]:
            now = contains(fence, p.lat, p.lon)
            if now != was:
                out.append(
                    Crossing(fence.location_id, "enter" if now else "exit", p.t, p.device_id, p.lat, p.lon)
                )
            was = now
    out.sort(key=lambda c: (c.t, c.location_id))
    return out


@dataclass(frozen=True, slots=True)
class Change:
    """What re-judging a window changed: crossings new to it, crossings that replace a stored one (a late
    position moved it), stored crossings nothing replaces."""

    added: list[Crossing]
    moved: list[tuple[Crossing, Crossing]]  # (the stored one, the one replacing it)
    withdrawn: list[Crossing]

    def __bool__(self) -> bool:
        return bool(self.added or self.moved or self.withdrawn)


def diff(stored: Sequence[Crossing], judged: Sequence[Crossing]) -> Change:
    """Compare the crossings stored for a window with those judged now. A stored crossing that is no more
    and a new one of the same fence and direction pair up in time order as a move; the rest are added or
    withdrawn. Crossings in both are left alone (a redelivered batch changes nothing)."""
    have = {c.key: c for c in stored}
    now = {c.key: c for c in judged}
    gone = sorted((c for k, c in have.items() if k not in now), key=lambda c: c.t)
    new = sorted((c for k, c in now.items() if k not in have), key=lambda c: c.t)
    moved: list[tuple[Crossing, Crossing]] = []
    added: list[Crossing] = []
    for c in new:
        match = next((g for g in gone if (g.location_id, g.direction) == (c.location_id, c.direction)), None)
        if match is None:
            added.append(c)
        else:
            gone.remove(match)
            moved.append((match, c))
    return Change(added, moved, gone)

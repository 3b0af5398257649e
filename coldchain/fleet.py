"""Composition root: the fleet simulation: its registry seeded, and scorecards compared with its faults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from coldchain.port_demo import registry_shipment
from coldchain.seed import register_world

if TYPE_CHECKING:
    from firmware_sim.fleet import Expected
    from firmware_sim.fleet_world import Fleet

# Ratios compare equal within this much: float rounding of an exact fraction, never a tolerance.
RATIO_EPSILON = 1e-9


def seed_fleet(conn: psycopg.Connection[Any], fleet: Fleet, start_ms: int) -> None:
    """Register the fleet's carriers, trucks, loggers, mounts, lots, geofences and trips (one shipment each)
    in the caller's transaction."""
    from registry import models
    from registry.shipments import add_shipments, upsert_geofences

    world = fleet.world
    register_world(conn, world.base, start_ms=start_ms)
    upsert_geofences(conn, (models.Geofence(**asdict(g)) for g in world.geofences))
    add_shipments(conn, (registry_shipment(shipment, start_ms) for shipment in world.shipments))


def required_interval_ms(product_class: str, mode: str = "road") -> int:
    """The recording interval the rule packs require of `product_class` in `mode`, ms."""
    from rules.packs import load_packs

    return load_packs()[product_class].rules.max_interval_s(mode) * 1000  # type: ignore[arg-type]


def period_of(fleet: Fleet, start_ms: int) -> tuple[datetime, datetime]:
    """The fleet's simulated period [start, end) as UTC datetimes."""
    return (
        datetime.fromtimestamp(start_ms / 1000, tz=UTC),
        datetime.fromtimestamp((start_ms + fleet.period_ms) / 1000, tz=UTC),
    )


@dataclass(frozen=True)
class Mismatch:
    carrier: str
    indicator: str
    expected: str
    got: str


def compare(scoreboard: Any, expected: Mapping[str, Mapping[str, Expected]]) -> list[Mismatch]:
    """Where a carrier scoreboard differs from what the injected faults imply: every carrier of
    `expected` has a card, and each implied indicator's ratio is within its tolerance."""
    cards = {card.subject_id: card for card in scoreboard.cards}
    out: list[Mismatch] = []
    for carrier, indicators in expected.items():
        card = cards.get(carrier)
        if card is None:
            out.append(Mismatch(carrier, "*", "a card", "none"))
            continue
        for key, want in indicators.items():
            got = card.indicators.get(key)
            wanted = f"{want.numerator:g}/{want.denominator:g} = {want.ratio} ± {want.tolerance:g}"
            if got is None:
                out.append(Mismatch(carrier, key, wanted, "no such indicator"))
                continue
            shown = f"{got.numerator:g}/{got.denominator:g} = {got.ratio}"
            if want.ratio is None or got.ratio is None:
                if want.ratio is not got.ratio:
                    out.append(Mismatch(carrier, key, wanted, shown))
            elif not math.isclose(got.ratio, want.ratio, rel_tol=0, abs_tol=want.tolerance + RATIO_EPSILON):
                out.append(Mismatch(carrier, key, wanted, shown))
    return out

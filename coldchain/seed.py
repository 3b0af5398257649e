"""Composition root: registers the demo world (registry rows, read points, the packed lot) in the database."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from firmware_sim.world import World

# The scenario's device time starts this long before now, so every reading is in the past.
SCENARIO_LEAD_MS = 8 * 3600 * 1000
_MINUTE_MS = 60_000

# The reader configuration is the ledger stage's table; existing readers are kept.
_INSERT_READ_POINT = """
INSERT INTO read_point (device_id, read_point_id, biz_location, biz_step, disposition, custodian)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"""


def scenario_start_ms(now_ms: int | None = None) -> int:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return (now - SCENARIO_LEAD_MS) // _MINUTE_MS * _MINUTE_MS


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def register_world(conn: psycopg.Connection[Any], world: World, *, start_ms: int) -> None:
    """Add the world's registry rows and read points in the caller's transaction; existing keys are kept.

    Mount times are scenario-relative: `start_ms` plus each mount's offset."""
    from registry import models
    from registry.store import add_assets, add_devices, add_locations, add_lots, add_mounts, add_parties

    # The scenario's parties, locations, assets and lots carry the registry's columns, named alike.
    add_parties(conn, (models.Party(**asdict(p)) for p in world.parties))
    add_locations(conn, (models.Location(**asdict(x)) for x in world.locations))
    add_assets(conn, (models.Asset(**asdict(a)) for a in world.assets))
    add_devices(
        conn,
        (models.Device(d.device_id, d.kind, accuracy_c=d.accuracy_c, status=d.status) for d in world.devices),
    )
    add_mounts(
        conn,
        (
            models.Mount(
                m.device_id,
                m.asset_id,
                _ts(start_ms + m.valid_from_offset_ms),
                None if m.valid_to_offset_ms is None else _ts(start_ms + m.valid_to_offset_ms),
            )
            for m in world.mounts
        ),
    )
    for r in world.read_points:
        conn.execute(
            _INSERT_READ_POINT,
            (r.device_id, r.read_point_id, r.biz_location, r.biz_step, r.disposition, r.custodian),
        )
    add_lots(conn, (models.Lot(**asdict(lot)) for lot in world.lots))


def seed_world(database_url: str, *, now_ms: int | None = None) -> int:
    """Register the demo world and append the shipper's packing event; return the scenario start, epoch ms."""
    from firmware_sim.world import demo_world
    from traceability.ledger.seed import append_packing

    world = demo_world()
    start_ms = scenario_start_ms(now_ms)
    with psycopg.connect(database_url) as conn:
        register_world(conn, world, start_ms=start_ms)
        for packing in world.packings:
            append_packing(conn, packing, start_ms=start_ms)
        conn.commit()
    return start_ms

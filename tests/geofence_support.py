"""Tests: shared scaffolding of the geofence tests: a fenced terminal, a tracked container, a shipment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
from rules_support import at

import registry.store as registry
from registry.models import Asset, Device, Geofence, Location, Mount, Shipment, ShipmentLeg
from registry.shipments import add_shipment, upsert_geofences
from traceability.geofence_ledger import live_events

Conn = psycopg.Connection[Any]

TERMINAL = "urn:epc:id:sgln:6901234.00010.0"  # the port terminal, a circle of 500 m
YARD = "urn:epc:id:sgln:6901234.00020.0"  # the rail yard, a polygon
CONTAINER = "REEFER-CSQU3054383"
CONTAINER_EPC = "urn:epc:id:bic:CSQU3054383"
TRACKER = "gps-csqu"
SHIPMENT = "SHP-GEO-1"
THROUGH = "TD-2026-0001"

CENTRE = (21.6800, 108.6000)  # (lat, lon)
INSIDE = (21.6801, 108.6001)  # some 15 m from the centre
OUTSIDE = (21.7000, 108.6000)  # some 2.2 km north
YARD_RING = ((108.70, 21.80), (108.72, 21.80), (108.72, 21.82), (108.70, 21.82))
IN_YARD = (21.81, 108.71)


def fenced_world(
    conn: Conn,
    *,
    device: str = TRACKER,
    asset_epc: str | None = CONTAINER_EPC,
    through_document: str | None = THROUGH,
    bill_of_lading: str | None = None,
    rail_waybill: str | None = None,
    road_waybill: str | None = None,
) -> None:
    """The terminal and the yard with their fences, the container (tracked by `device`) and its shipment
    under the documents given."""
    registry.add_locations(
        conn,
        [
            Location(TERMINAL, "Qinzhou terminal", "port", lat=CENTRE[0], lon=CENTRE[1]),
            Location(YARD, "Qinzhou rail yard", "rail_station"),
        ],
    )
    upsert_geofences(
        conn,
        [
            Geofence(TERMINAL, "circle", center_lat=CENTRE[0], center_lon=CENTRE[1], radius_m=500.0),
            Geofence(YARD, "polygon", polygon=YARD_RING),
        ],
    )
    registry.add_assets(conn, [Asset(CONTAINER, "reefer_container", "reefer CSQU3054383", epc=asset_epc)])
    registry.add_devices(conn, [Device(device, "gps_tracker")])
    registry.add_mounts(conn, [Mount(device, CONTAINER, at(-24 * 60))])
    add_shipment(
        conn,
        Shipment(
            SHIPMENT,
            planned_start=at(-60),
            legs=(ShipmentLeg(1, "sea", asset_id=CONTAINER),),
            through_document=through_document,
            bill_of_lading=bill_of_lading,
            rail_waybill=rail_waybill,
            road_waybill=road_waybill,
        ),
    )


def track(conn: Conn, points: Iterable[tuple[float, tuple[float, float]]], device: str = TRACKER) -> None:
    """Positions (minute, (lat, lon)) of `device` as the gateway stores them: lat and lon readings and one
    ingest_batch row, in one transaction."""
    pts = list(points)
    ids = registry.ensure_series(conn, [(device, "lat"), (device, "lon")])
    lat_id, lon_id = ids[(device, "lat")], ids[(device, "lon")]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, now())"
            " ON CONFLICT DO NOTHING",
            [(at(m), sid, v) for m, (lat, lon) in pts for sid, v in ((lat_id, lat), (lon_id, lon))],
        )
        cur.execute(
            "INSERT INTO ingest_batch (kind, series_ids, t_min, t_max) VALUES ('telemetry', %s, %s, %s)",
            ([lat_id, lon_id], at(min(m for m, _ in pts)), at(max(m for m, _ in pts))),
        )


def stored_crossings(conn: Conn) -> list[tuple[str, str, datetime]]:
    return [
        (str(loc), str(d), t)
        for loc, d, t in conn.execute(
            "SELECT location_id, direction, crossed_at FROM geofence_crossing"
            " ORDER BY crossed_at, location_id"
        ).fetchall()
    ]


def live_geofence_events(conn: Conn) -> list[tuple[str, str, str, str | None]]:
    """(bizStep, readPoint, eventTime, cc:shipment) of the geofence events the ledger holds undeclared."""
    return [
        (e["bizStep"], e["readPoint"]["id"], e["eventTime"], e.get("cc:shipment")) for e in live_events(conn)
    ]


def declared_geofence_events(conn: Conn) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT event FROM ledger_event WHERE event ? 'cc:geofence' AND declares_error ORDER BY seq"
    ).fetchall()
    return [r[0] for r in rows]

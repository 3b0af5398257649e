"""Stage 0, devices: the fleet world: carriers with fault profiles, their reefer trucks, loggers and trips.

N carriers × M trucks, each truck with one logger (temp, lat, lon), running back-to-back trips between a
Qinzhou cold store and a Nanning market, each trip a shipment with one lot. Every time here is relative to
the period start. What the devices send, and which readings the faults take, is ``firmware_sim.fleet``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

from firmware_sim.devices import HOUR_MS, MINUTE_MS, QINZHOU_NANNING_ROUTE, Fix, Waypoint, along, haversine_km
from firmware_sim.port_world import Geofence, Leg, PortWorld, Shipment, ShipmentLot
from firmware_sim.world import MOUNTED_OFFSET_MS, Asset, Device, DeviceMount, Location, Lot, Party, World

TRIP_MS: Final = 6 * HOUR_MS  # one trip's planned window; trips follow each other without a break
LOAD_MS: Final = 30 * MINUTE_MS  # standing at the origin dock before leaving
DRIVE_KMH: Final = 60.0  # average over the G75 expressway, towns and toll gates
FENCE_M: Final = 500.0  # the cold store's and the market's geofence radius
# The off-track truck stops this share of the way: ~5 km short of the market, far outside its fence.
OFF_TRACK_FRACTION: Final = 0.96
CHANNELS: Final = ("temp", "lat", "lon")
PRODUCT_CLASS: Final = "chilled"
SETPOINT_C: Final = 2.0

SHIPPER: Final = "6901234000301"
CONSIGNEE: Final = "6901234000318"
QZ_STORE: Final = "urn:epc:id:sgln:6901234.00031.0"
NN_MARKET: Final = "urn:epc:id:sgln:6901234.00032.0"
GTIN: Final = "06901234120018"


@dataclass(frozen=True)
class FaultProfile:
    """What goes wrong at a carrier, as shares of its devices' readings (by whole one-minute samples) and
    messages; the fault generator picks exactly round(share × n) of each device's samples."""

    name: str
    lost: float = 0.0  # samples never sent (the device's seq numbers skip them)
    late: float = 0.0  # samples uploaded LATE_MS after their device time, not at once
    malformed: float = 0.0  # messages sent malformed (dead-lettered; their readings are lost)
    off_track_trucks: int = 0  # trucks whose last trip stops short of the destination's geofence


# The profiles of the scorecard simulation, one carrier each.
CLEAN: Final = FaultProfile("clean")
LOSSY: Final = FaultProfile("lossy", lost=0.10)
LATE: Final = FaultProfile("late", late=0.20)
MALFORMED: Final = FaultProfile("malformed", malformed=0.02)
OFF_TRACK: Final = FaultProfile("off_track", off_track_trucks=1)
PROFILES: Final = (CLEAN, LOSSY, LATE, MALFORMED, OFF_TRACK)


@dataclass(frozen=True)
class Truck:
    asset_id: str
    device_id: str
    plate: str
    off_track: bool  # its last trip misses the destination


@dataclass(frozen=True)
class Carrier:
    party_id: str
    name: str
    profile: FaultProfile
    trucks: tuple[Truck, ...]


@dataclass(frozen=True)
class Trip:
    """One shipment of one truck: from where to where in which window, and the fixes of its track."""

    shipment_id: str
    carrier_party_id: str
    asset_id: str
    device_id: str
    from_location_id: str
    to_location_id: str
    start_offset_ms: int
    end_offset_ms: int
    fixes: tuple[Fix, ...]  # offsets from the period start
    off_track: bool


@dataclass(frozen=True)
class Fleet:
    """A fleet over a period of `period_ms` (a whole number of trips) and its registry world."""

    period_ms: int
    carriers: tuple[Carrier, ...]
    trips: tuple[Trip, ...]
    world: PortWorld


def gln(prefix12: str) -> str:
    """A 13-digit GLN: the 12 digits and their GS1 mod-10 check digit."""
    weights = [3 if i % 2 == 0 else 1 for i in range(len(prefix12))]
    total = sum(int(d) * w for d, w in zip(reversed(prefix12), weights, strict=True))
    return prefix12 + str((10 - total % 10) % 10)


def _track(start_ms: int, route: tuple[Waypoint, ...], *, stop_fraction: float = 1.0) -> tuple[Fix, ...]:
    """Standing at route[0] for LOAD_MS, then driving at DRIVE_KMH along the route (to `stop_fraction` of
    its length), then standing there until the trip's window ends."""
    total_km = sum(haversine_km(a, b) for a, b in itertools.pairwise(route))
    fixes = [Fix(start_ms, route[0]), Fix(start_ms + LOAD_MS, route[0])]
    done_km = 0.0
    target_km = total_km * stop_fraction
    for a, b in itertools.pairwise(route):
        leg = haversine_km(a, b)
        if done_km + leg >= target_km:
            end = along(route, 0, len(route) - 1, stop_fraction)
            fixes.append(Fix(start_ms + LOAD_MS + round(target_km / DRIVE_KMH * HOUR_MS), end))
            break
        done_km += leg
        fixes.append(Fix(start_ms + LOAD_MS + round(done_km / DRIVE_KMH * HOUR_MS), b))
    fixes.append(Fix(start_ms + TRIP_MS - 1, fixes[-1].at))
    return tuple(fixes)


def fleet(carriers: int = len(PROFILES), trucks_per_carrier: int = 2, period_ms: int = 24 * HOUR_MS) -> Fleet:
    """`carriers` carriers (their profiles cycle through PROFILES) of `trucks_per_carrier` trucks each,
    over `period_ms` (a whole number of TRIP_MS); every time relative to the period start."""
    if carriers < 1 or trucks_per_carrier < 1:
        raise ValueError("a fleet needs at least one carrier with one truck")
    if period_ms <= 0 or period_ms % TRIP_MS:
        raise ValueError(f"the period must be a whole number of {TRIP_MS // HOUR_MS} h trips")
    route = QINZHOU_NANNING_ROUTE
    qz, nn = route[0], route[-1]
    out_carriers: list[Carrier] = []
    trips: list[Trip] = []
    for c in range(carriers):
        profile = PROFILES[c % len(PROFILES)]
        party = gln(f"69012340{1000 + c:04d}")
        trucks = tuple(
            Truck(
                asset_id=f"TRUCK-FL{c:03d}-{t:03d}",
                device_id=f"fl{c:03d}-{t:03d}-logger",
                plate=f"桂A{c:03d}{t:02d}",
                off_track=t < profile.off_track_trucks,
            )
            for t in range(trucks_per_carrier)
        )
        out_carriers.append(Carrier(party, f"Fleet carrier {c:03d} ({profile.name})", profile, trucks))
        n_trips = period_ms // TRIP_MS
        for truck in trucks:
            for k in range(n_trips):
                outbound = k % 2 == 0
                leg_route = route if outbound else tuple(reversed(route))
                off = truck.off_track and k == n_trips - 1
                trips.append(
                    Trip(
                        shipment_id=f"SHP-FL{c:03d}-{truck.asset_id[-3:]}-{k:04d}",
                        carrier_party_id=party,
                        asset_id=truck.asset_id,
                        device_id=truck.device_id,
                        from_location_id=QZ_STORE if outbound else NN_MARKET,
                        to_location_id=NN_MARKET if outbound else QZ_STORE,
                        start_offset_ms=k * TRIP_MS,
                        end_offset_ms=(k + 1) * TRIP_MS,
                        fixes=_track(
                            k * TRIP_MS, leg_route, stop_fraction=OFF_TRACK_FRACTION if off else 1.0
                        ),
                        off_track=off,
                    )
                )
    world = _world(tuple(out_carriers), tuple(trips), qz, nn)
    return Fleet(period_ms, tuple(out_carriers), tuple(trips), world)


def _lot_id(trip: Trip) -> str:
    return f"urn:epc:class:lgtin:6901234.012001.{_batch(trip)}"


def _batch(trip: Trip) -> str:
    return trip.shipment_id.removeprefix("SHP-")


def _world(carriers: tuple[Carrier, ...], trips: tuple[Trip, ...], qz: Waypoint, nn: Waypoint) -> PortWorld:
    parties = (
        Party(SHIPPER, "Qinzhou Chilled Seafood Trading Co.", "shipper"),
        Party(CONSIGNEE, "Nanning Fresh Market Co.", "receiver"),
        *(Party(c.party_id, c.name, "carrier") for c in carriers),
    )
    locations = (
        Location(QZ_STORE, "Qinzhou fleet cold store", "cold_store", SHIPPER, None, qz.lat, qz.lon),
        Location(NN_MARKET, "Nanning fleet market", "market", CONSIGNEE, None, nn.lat, nn.lon),
    )
    geofences = (
        Geofence(QZ_STORE, "circle", qz.lat, qz.lon, FENCE_M),
        Geofence(NN_MARKET, "circle", nn.lat, nn.lon, FENCE_M),
    )
    trucks = [(c, t) for c in carriers for t in c.trucks]
    assets = tuple(
        Asset(
            t.asset_id,
            "reefer_truck",
            f"Reefer truck {t.plate}",
            epc=f"urn:epc:id:giai:6901234.{t.asset_id.replace('-', '')}",
            operator_party_id=c.party_id,
            product_class=PRODUCT_CLASS,
            mode="transport",
        )
        for c, t in trucks
    )
    devices = tuple(Device(t.device_id, "temp_logger", channels=CHANNELS) for _, t in trucks)
    mounts = tuple(DeviceMount(t.device_id, t.asset_id, MOUNTED_OFFSET_MS) for _, t in trucks)
    lots = tuple(
        Lot(
            _lot_id(trip),
            gtin=GTIN,
            batch=_batch(trip),
            product_class=PRODUCT_CLASS,
            description="Chilled pomfret, 2 t",
            origin_country="CN",
            hs_code="030289",
            bonded_status="domestic",
            owner_party_id=SHIPPER,
        )
        for trip in trips
    )
    plates = {t.asset_id: t.plate for _, t in trucks}
    shipments = tuple(
        Shipment(
            trip.shipment_id,
            f"FLTD-{_batch(trip)}",
            None,  # a road trip: no bill of lading
            SHIPPER,
            CONSIGNEE,
            PRODUCT_CLASS,
            trip.from_location_id,
            trip.to_location_id,
            trip.start_offset_ms,
            trip.end_offset_ms,
            legs=(
                Leg(
                    1,
                    "road",
                    trip.carrier_party_id,
                    trip.from_location_id,
                    trip.to_location_id,
                    trip.start_offset_ms,
                    trip.end_offset_ms,
                    asset_id=trip.asset_id,
                    truck_plate=plates[trip.asset_id],
                ),
            ),
            stops=(),
            lots=(ShipmentLot(_lot_id(trip), 2000.0, "KGM"),),
            road_waybill=f"FLRW-{_batch(trip)}",
        )
        for trip in trips
    )
    base = World(parties, locations, assets, devices, mounts, (), lots, ())
    return PortWorld(base=base, geofences=geofences, shipments=shipments, trace_code="", trace_code_lot="")

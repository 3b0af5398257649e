"""Stage 0, devices: the port scenario's timeline: reefer tracks, the fences they cross, the human steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from firmware_sim.devices import HOUR_MS, MINUTE_MS, DoorOpening, Fix, Waypoint
from firmware_sim.port_world import (
    COLD_STORE,
    COLD_STORE_OP,
    CQ_COLD_STORE,
    CQ_IMPORTER,
    DURIAN_CONTAINER,
    DURIAN_CONTAINER_RC,
    DURIAN_LOT,
    DURIAN_RAIL_UNIT,
    DURIAN_TRACE_CODE,
    DURIAN_TRUCK,
    DURIAN_TRUCK_PLATE,
    DURIAN_TRUCK_RC,
    GATE,
    INSPECTION,
    KILOGRAM,
    NN_MARKET,
    NN_MARKET_GATE,
    QZ_BONDED_GATE,
    QZ_COLD_STORE,
    QZ_INSPECTION,
    QZ_RAIL,
    QZ_TERMINAL,
    RAIL_CARRIER,
    RAIL_YARD,
    SEA_RAIL_TRAIN,
    SEAFOOD_CONTAINER,
    SEAFOOD_CONTAINER_RC,
    SEAFOOD_TRUCK,
    SEAFOOD_TRUCK_PLATE,
    SEAFOOD_TRUCK_RC,
    SHRIMP_LOT,
    SQUID_LOT,
    TH_SHIPMENT,
    VN_SHIPMENT,
    ShipmentLot,
)

PORT_SCENARIO_MS: Final = 9 * HOUR_MS  # the devices' window: what the port's reefers report
# The sea-rail train's run from Qinzhou port east to Chongqing: the destination's system records its arrival.
RAIL_RUN_MS: Final = 30 * HOUR_MS

# The faults the scenario plays, by what shows them: the container whose telemetry stops at the rail yard
# (its track is the one with ``silent_from_offset_ms``) and the lot it carries onward; the truck whose track
# ends outside its shipment's destination.
SILENT_CONTAINER: Final = DURIAN_CONTAINER
SILENT_CONTAINER_LOT: Final = DURIAN_LOT
STRANDED_TRUCK: Final = SEAFOOD_TRUCK
STRANDED_SHIPMENT: Final = VN_SHIPMENT

# ---- where the reefers go between the places ---------------------------------------------------------
SEA_APPROACH_DURIAN: Final = Waypoint(21.560, 108.656)  # Qinzhou bay fairway, inbound
SEA_APPROACH_SEAFOOD: Final = Waypoint(21.520, 108.660)
BERTH_DURIAN: Final = Waypoint(21.650, 108.656)  # Dalanping container terminal, berth 5
BERTH_SEAFOOD: Final = Waypoint(21.648, 108.660)  # berth 6
TRUCK_PARK: Final = Waypoint(21.700, 108.648)  # outside every fence
PORT_EXIT: Final = Waypoint(21.730, 108.640)
G75_QINZHOU: Final = Waypoint(21.9560, 108.6240)
G75_SERVICE_AREA: Final = Waypoint(22.2480, 108.5520)
NANNING_SOUTH: Final = Waypoint(22.5900, 108.4400)
NN_ROADSIDE: Final = Waypoint(22.7900, 108.3900)  # ~3.8 km short of the market: where one truck's track ends

DOCK_AIR_C: Final = 6.0  # an enclosed, chilled loading dock (GB 31605-2020 asks for one)
DURIAN_SETPOINT_C: Final = 12.0  # durian class: 10 to 15 °C
FROZEN_SETPOINT_C: Final = -20.0  # frozen seafood class: at or below −18 °C


StepKind = Literal[
    "discharge", "inspection", "disinfection", "bonded_entry", "trace_code", "release", "departure"
]


@dataclass(frozen=True)
class Step:
    """A step of the import flow as a port, customs or cold-store system records it (not a device).

    Per lot (``lots`` holds one) except a departure, which names every lot on the conveyance."""

    t_offset_ms: int
    kind: StepKind
    shipment_id: str
    location_id: str
    lots: tuple[ShipmentLot, ...]
    asset_id: str | None = None  # the container or truck concerned (discharge, departure)
    certificates: tuple[str, ...] = ()
    conformant: bool = True  # an inspection's result
    disinfection_required: bool = False  # an inspection's result asks for disinfection
    trace_code: str | None = None
    mode: Literal["sea", "rail", "road"] | None = None  # a discharge's or departure's conveyance
    vessel: str | None = None
    voyage: str | None = None
    train: str | None = None
    truck_plate: str | None = None


HandlingKind = Literal["stuffing", "shipping", "departing", "arriving", "receiving"]


@dataclass(frozen=True)
class Handling:
    """A logistic unit (SSCC) handled in its container, as the cold store's, the railway's or the
    destination's system records it: packed with its batch and stuffed (``stuffing``), handed on
    (``shipping``, ``departing``), arriving at and received by the destination (``arriving``,
    ``receiving``). These carry the batch's custody from the cold store to the destination."""

    t_offset_ms: int
    kind: HandlingKind
    shipment_id: str
    location_id: str
    unit: str
    container: str
    lot: ShipmentLot  # the batch (part of a lot) the unit holds
    custodian: str | None = None  # the party taking the unit (a registered party's GLN)
    mode: Literal["sea", "rail", "road"] | None = None  # the conveyance, for a unit on the move
    train: str | None = None


@dataclass(frozen=True)
class Track:
    """A reefer controller on an asset: its setpoint, where it goes (fixes, relative ms), its door openings,
    and when it stops sending (None: it reports to the end)."""

    device_id: str
    asset_id: str
    setpoint_c: float
    fixes: tuple[Fix, ...]
    doors: tuple[DoorOpening, ...] = ()
    silent_from_offset_ms: int | None = None


@dataclass(frozen=True)
class Crossing:
    """A geofence crossing the tracks make: the asset enters or exits the location's fence."""

    asset_id: str
    location_id: str
    direction: Literal["enter", "exit"]


@dataclass(frozen=True)
class PortTimeline:
    steps: tuple[Step, ...]  # in time order
    handlings: tuple[Handling, ...]  # in time order; those after PORT_SCENARIO_MS the destination records
    tracks: tuple[Track, ...]
    crossings: tuple[Crossing, ...]  # in time order per asset


def port_timeline() -> PortTimeline:
    """When things happen in the port scenario (relative to its start): deterministic."""
    durian = ShipmentLot(DURIAN_LOT, 18_000.0, KILOGRAM)
    shrimp = ShipmentLot(SHRIMP_LOT, 20_000.0, KILOGRAM)
    squid = ShipmentLot(SQUID_LOT, 6_000.0, KILOGRAM)
    return PortTimeline(_steps(durian, shrimp, squid), _handlings(), _tracks(), _crossings())


def _m(minutes: int) -> int:
    return minutes * MINUTE_MS


def _tracks() -> tuple[Track, ...]:
    """Where each reefer goes (minutes after the start). Every track starts outside every fence."""

    def fixes(*points: tuple[int, Waypoint]) -> tuple[Fix, ...]:
        return tuple(Fix(_m(minute), at) for minute, at in points)

    to_nanning = (G75_QINZHOU, G75_SERVICE_AREA, NANNING_SOUTH)
    return (
        Track(
            DURIAN_CONTAINER_RC,
            DURIAN_CONTAINER,
            DURIAN_SETPOINT_C,
            fixes(
                (0, SEA_APPROACH_DURIAN),
                (40, BERTH_DURIAN),
                (75, BERTH_DURIAN),
                (85, INSPECTION),
                (130, INSPECTION),
                (145, GATE),
                (150, GATE),
                (165, COLD_STORE),
                (320, COLD_STORE),
                (335, GATE),
                (340, GATE),
                (355, RAIL_YARD),
            ),
            doors=(
                DoorOpening(_m(95), _m(105), 30.0),  # opened for the inspection, in the open yard
                DoorOpening(_m(306), _m(314), DOCK_AIR_C),  # re-stuffed with the first release
            ),
            # The fault: the container's telemetry stops in the rail yard, before the train leaves.
            silent_from_offset_ms=_m(380),
        ),
        Track(
            SEAFOOD_CONTAINER_RC,
            SEAFOOD_CONTAINER,
            FROZEN_SETPOINT_C,
            fixes(
                (0, SEA_APPROACH_SEAFOOD),
                (60, BERTH_SEAFOOD),
                (95, BERTH_SEAFOOD),
                (110, INSPECTION),
                (150, INSPECTION),
                (165, GATE),
                (170, GATE),
                (185, COLD_STORE),
            ),
        ),
        Track(
            SEAFOOD_TRUCK_RC,
            SEAFOOD_TRUCK,
            FROZEN_SETPOINT_C,
            fixes(
                (0, TRUCK_PARK),
                (240, TRUCK_PARK),
                (255, GATE),
                (257, GATE),
                (270, COLD_STORE),
                (310, COLD_STORE),
                (325, GATE),
                (327, GATE),
                (340, PORT_EXIT),
                *zip((380, 420, 460), to_nanning, strict=True),
                # The fault: the track ends at the roadside, outside the market's geofence.
                (490, NN_ROADSIDE),
            ),
            doors=(DoorOpening(_m(296), _m(300), DOCK_AIR_C),),
        ),
        Track(
            DURIAN_TRUCK_RC,
            DURIAN_TRUCK,
            DURIAN_SETPOINT_C,
            fixes(
                (0, TRUCK_PARK),
                (300, TRUCK_PARK),
                (315, GATE),
                (317, GATE),
                (330, COLD_STORE),
                (345, COLD_STORE),
                (360, GATE),
                (362, GATE),
                (375, PORT_EXIT),
                *zip((415, 455, 495), to_nanning, strict=True),
                (520, NN_MARKET_GATE),
            ),
            doors=(DoorOpening(_m(335), _m(340), DOCK_AIR_C),),
        ),
    )


def _crossings() -> tuple[Crossing, ...]:
    """The fences each track crosses, in order: what the geofence events of the ledger must be."""

    def visits(asset: str, *fences: str, last_open: bool) -> list[Crossing]:
        out: list[Crossing] = []
        for fence in fences:
            out += [Crossing(asset, fence, "enter"), Crossing(asset, fence, "exit")]
        return out[:-1] if last_open else out

    return (
        *visits(
            DURIAN_CONTAINER,
            QZ_TERMINAL,
            QZ_INSPECTION,
            QZ_BONDED_GATE,
            QZ_COLD_STORE,
            QZ_BONDED_GATE,
            QZ_RAIL,
            last_open=True,
        ),
        *visits(SEAFOOD_CONTAINER, QZ_TERMINAL, QZ_INSPECTION, QZ_BONDED_GATE, QZ_COLD_STORE, last_open=True),
        *visits(SEAFOOD_TRUCK, QZ_BONDED_GATE, QZ_COLD_STORE, QZ_BONDED_GATE, last_open=False),
        *visits(DURIAN_TRUCK, QZ_BONDED_GATE, QZ_COLD_STORE, QZ_BONDED_GATE, NN_MARKET, last_open=True),
    )


def _steps(durian: ShipmentLot, shrimp: ShipmentLot, squid: ShipmentLot) -> tuple[Step, ...]:
    """The human steps, in time order: discharge, inspection per batch (one disinfection), first-line entry,
    the trace code, second-line releases (two partial ones; one with no inspection: the fault), departures."""
    part1 = ShipmentLot(DURIAN_LOT, 12_000.0, KILOGRAM)  # leaves by the sea-rail train
    part2 = ShipmentLot(DURIAN_LOT, 6_000.0, KILOGRAM)  # leaves by truck for Nanning
    th, vn = TH_SHIPMENT, VN_SHIPMENT
    steps = (
        Step(
            _m(50),
            "discharge",
            th,
            QZ_TERMINAL,
            (durian,),
            asset_id=DURIAN_CONTAINER,
            mode="sea",
            vessel="XIN NAN SHA",
            voyage="2611N",
        ),
        Step(
            _m(70),
            "discharge",
            vn,
            QZ_TERMINAL,
            (shrimp,),
            asset_id=SEAFOOD_CONTAINER,
            mode="sea",
            vessel="HAIAN MIND",
            voyage="2611S",
        ),
        Step(
            _m(70),
            "discharge",
            vn,
            QZ_TERMINAL,
            (squid,),
            asset_id=SEAFOOD_CONTAINER,
            mode="sea",
            vessel="HAIAN MIND",
            voyage="2611S",
        ),
        Step(
            _m(100),
            "inspection",
            th,
            QZ_INSPECTION,
            (durian,),
            certificates=("CIQ-QZ-2611-000118",),
        ),
        Step(
            _m(125),
            "inspection",
            vn,
            QZ_INSPECTION,
            (shrimp,),
            certificates=("CIQ-QZ-2611-000121",),
            disinfection_required=True,  # imported frozen seafood: every package disinfected
        ),
        Step(
            _m(140),
            "disinfection",
            vn,
            QZ_INSPECTION,
            (shrimp,),
            certificates=("XS-QZ-2611-000045",),
        ),
        Step(_m(180), "bonded_entry", th, QZ_COLD_STORE, (durian,)),
        Step(_m(185), "trace_code", th, QZ_COLD_STORE, (durian,), trace_code=DURIAN_TRACE_CODE),
        Step(_m(205), "bonded_entry", vn, QZ_COLD_STORE, (shrimp,)),
        Step(_m(206), "bonded_entry", vn, QZ_COLD_STORE, (squid,)),
        Step(_m(290), "release", vn, QZ_COLD_STORE, (shrimp,)),
        # The fault: the squid batch is released with no inspection on record.
        Step(_m(295), "release", vn, QZ_COLD_STORE, (squid,)),
        Step(_m(300), "release", th, QZ_COLD_STORE, (part1,)),
        Step(
            _m(310),
            "departure",
            vn,
            QZ_COLD_STORE,
            (shrimp, squid),
            asset_id=SEAFOOD_TRUCK,
            mode="road",
            truck_plate=SEAFOOD_TRUCK_PLATE,
        ),
        Step(_m(332), "release", th, QZ_COLD_STORE, (part2,)),
        Step(
            _m(345),
            "departure",
            th,
            QZ_COLD_STORE,
            (part2,),
            asset_id=DURIAN_TRUCK,
            mode="road",
            truck_plate=DURIAN_TRUCK_PLATE,
        ),
        Step(
            _m(420),
            "departure",
            th,
            QZ_RAIL,
            (part1,),
            asset_id=DURIAN_CONTAINER,
            mode="rail",
            train=SEA_RAIL_TRAIN,
        ),
    )
    return steps


def _handlings() -> tuple[Handling, ...]:
    """The durian's first release as one unit: stuffed into its container at the cold store, shipped to the
    rail yard, on the sea-rail train after the container fell silent, then at the Chongqing cold store: so
    the batch's custody runs on through legs no reading covers."""
    part1 = ShipmentLot(DURIAN_LOT, 12_000.0, KILOGRAM)
    arrival = _m(420) + RAIL_RUN_MS
    on_train: dict[str, Any] = {"custodian": RAIL_CARRIER, "mode": "rail", "train": SEA_RAIL_TRAIN}

    def handling(t: int, kind: HandlingKind, where: str, **kw: Any) -> Handling:
        return Handling(t, kind, TH_SHIPMENT, where, DURIAN_RAIL_UNIT, DURIAN_CONTAINER, part1, **kw)

    return (
        handling(_m(308), "stuffing", QZ_COLD_STORE),
        handling(_m(316), "shipping", QZ_COLD_STORE, custodian=COLD_STORE_OP),
        handling(_m(420), "departing", QZ_RAIL, **on_train),
        handling(arrival, "arriving", CQ_COLD_STORE, **on_train),
        handling(arrival + HOUR_MS, "receiving", CQ_COLD_STORE, custodian=CQ_IMPORTER),
    )

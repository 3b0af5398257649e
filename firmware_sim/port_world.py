"""Stage 0, devices: the port world: Thai durian and Vietnamese frozen seafood through Qinzhou to market.

Registry rows, geofences, shipments, the reefers' tracks and the human steps of the import flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from firmware_sim.devices import DAY_MS, HOUR_MS, MINUTE_MS, DoorOpening, Fix, Waypoint
from firmware_sim.world import MOUNTED_OFFSET_MS, Asset, Device, DeviceMount, Location, Lot, Party, World

PORT_SCENARIO_MS: Final = 9 * HOUR_MS

# ---- parties (13-digit GLNs) -----------------------------------------------------------------------------
TH_SHIPPER: Final = "8850000000101"
CQ_IMPORTER: Final = "6901234000103"
VN_SHIPPER: Final = "8930000000101"
NN_RECEIVER: Final = "6901234000028"
OCEAN_COSCO: Final = "6901234000110"
OCEAN_HAIAN: Final = "8930000000200"
RAIL_CARRIER: Final = "6901234000127"
ROAD_BEIBU: Final = "6901234000011"
ROAD_FRESHLINK: Final = "6901234000134"
COLD_STORE_OP: Final = "6901234000004"
PORT_OPERATOR: Final = "6901234000141"
CUSTOMS: Final = "6901234000158"

# ---- locations (SGLN) --------------------------------------------------------------------------------------
LAEM_CHABANG: Final = "urn:epc:id:sgln:8850000.00001.0"
HAIPHONG: Final = "urn:epc:id:sgln:8930000.00001.0"
QZ_TERMINAL: Final = "urn:epc:id:sgln:6901234.00011.0"
QZ_INSPECTION: Final = "urn:epc:id:sgln:6901234.00012.0"
QZ_BONDED_GATE: Final = "urn:epc:id:sgln:6901234.00013.0"
QZ_COLD_STORE: Final = "urn:epc:id:sgln:6901234.00001.0"
QZ_RAIL: Final = "urn:epc:id:sgln:6901234.00014.0"
NN_MARKET: Final = "urn:epc:id:sgln:6901234.00002.0"
CQ_COLD_STORE: Final = "urn:epc:id:sgln:6901234.00021.0"

# ---- assets and their devices ----------------------------------------------------------------------------
# Reefer containers by ISO 6346 number (check digit included), kept from origin to market (一箱到底).
DURIAN_CONTAINER: Final = "CXRU1524184"
SEAFOOD_CONTAINER: Final = "TRIU8812493"
SEAFOOD_TRUCK: Final = "TRUCK-GXN-52781"
DURIAN_TRUCK: Final = "TRUCK-GXA-60317"
SEAFOOD_TRUCK_PLATE: Final = "桂N52781"
DURIAN_TRUCK_PLATE: Final = "桂A60317"
DURIAN_CONTAINER_RC: Final = "cxru1524184-rc"
SEAFOOD_CONTAINER_RC: Final = "triu8812493-rc"
SEAFOOD_TRUCK_RC: Final = "truck-52781-rc"
DURIAN_TRUCK_RC: Final = "truck-60317-rc"

# ---- lots (LGTIN) ------------------------------------------------------------------------------------------
DURIAN_LOT: Final = "urn:epc:class:lgtin:8850000.012001.TH2611D01"
SHRIMP_LOT: Final = "urn:epc:class:lgtin:8930000.015001.VN2611S01"
SQUID_LOT: Final = "urn:epc:class:lgtin:8930000.015002.VN2611Q01"

# ---- shipments and their documents (一单制) ----------------------------------------------------------
TH_SHIPMENT: Final = "SHP-QZ-2611-TH01"
VN_SHIPMENT: Final = "SHP-QZ-2611-VN02"
TH_THROUGH: Final = "QZTD-2611-TH-0001"
VN_THROUGH: Final = "QZTD-2611-VN-0002"
TH_BOL: Final = "COSU6391827450"
VN_BOL: Final = "HASLHPQZ2611017"
TH_RAIL_WAYBILL: Final = "QZCQ26110001"
TH_ROAD_WAYBILL: Final = "GXRW26110003"
VN_ROAD_WAYBILL: Final = "GXRW26110002"
SEA_RAIL_TRAIN: Final = "X9203"

# The durian lot's trace code, issued by the first receiving site (首站赋码): the bonded cold store.
DURIAN_TRACE_CODE: Final = "GX2611QZ000118"
KILOGRAM: Final = "KGM"  # UN/ECE rec 20


@dataclass(frozen=True)
class Geofence:
    """A location's geofence, with the registry's columns: a circle, or a polygon ring of (lon, lat)."""

    location_id: str
    shape: Literal["circle", "polygon"]
    center_lat: float | None = None
    center_lon: float | None = None
    radius_m: float | None = None
    polygon: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class Leg:
    """A shipment leg, with the registry's columns; planned times relative to the scenario start."""

    leg_no: int
    mode: Literal["sea", "rail", "road", "cold_store"]
    carrier_party_id: str
    from_location_id: str
    to_location_id: str
    planned_start_offset_ms: int
    planned_end_offset_ms: int
    asset_id: str | None = None
    container_number: str | None = None
    vessel: str | None = None
    voyage: str | None = None
    train: str | None = None
    truck_plate: str | None = None


@dataclass(frozen=True)
class ShipmentLot:
    lot_id: str
    quantity: float
    uom: str


@dataclass(frozen=True)
class Shipment:
    """A shipment under one through document, with the registry's columns (planned times relative)."""

    shipment_id: str
    through_document: str
    bill_of_lading: str
    shipper_party_id: str
    consignee_party_id: str
    product_class: str
    origin_location_id: str
    destination_location_id: str
    planned_start_offset_ms: int
    planned_end_offset_ms: int
    legs: tuple[Leg, ...]
    stops: tuple[str, ...]
    lots: tuple[ShipmentLot, ...]
    rail_waybill: str | None = None
    road_waybill: str | None = None


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
    result: str | None = None
    conformant: bool = True
    trace_code: str | None = None
    mode: Literal["sea", "rail", "road"] | None = None  # a discharge's or departure's conveyance
    vessel: str | None = None
    voyage: str | None = None
    train: str | None = None
    truck_plate: str | None = None


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
class PortWorld:
    base: World
    geofences: tuple[Geofence, ...]
    shipments: tuple[Shipment, ...]
    steps: tuple[Step, ...]
    tracks: tuple[Track, ...]
    crossings: tuple[Crossing, ...]  # in time order per asset
    trace_code: str
    trace_code_lot: str


def _m(minutes: int) -> int:
    return minutes * MINUTE_MS


# ---- geography ---------------------------------------------------------------------------------------
SEA_APPROACH_DURIAN: Final = Waypoint(21.560, 108.656)  # Qinzhou bay fairway, inbound
SEA_APPROACH_SEAFOOD: Final = Waypoint(21.520, 108.660)
BERTH_DURIAN: Final = Waypoint(21.650, 108.656)  # Dalanping container terminal, berth 5
BERTH_SEAFOOD: Final = Waypoint(21.648, 108.660)  # berth 6
INSPECTION: Final = Waypoint(21.668, 108.650)  # customs inspection site (查验场)
GATE: Final = Waypoint(21.682, 108.632)  # bonded port zone gate (卡口)
COLD_STORE: Final = Waypoint(21.6953, 108.6122)
RAIL_YARD: Final = Waypoint(21.711, 108.668)  # Qinzhou port east rail container station
TRUCK_PARK: Final = Waypoint(21.700, 108.648)  # outside every fence
PORT_EXIT: Final = Waypoint(21.730, 108.640)
G75_QINZHOU: Final = Waypoint(21.9560, 108.6240)
G75_SERVICE_AREA: Final = Waypoint(22.2480, 108.5520)
NANNING_SOUTH: Final = Waypoint(22.5900, 108.4400)
NN_MARKET_GATE: Final = Waypoint(22.8170, 108.3660)
NN_ROADSIDE: Final = Waypoint(22.7900, 108.3900)  # ~3.8 km short of the market: where one truck's track ends

DOCK_AIR_C: Final = 6.0  # an enclosed, chilled loading dock (GB 31605-2020 asks for one)
DURIAN_SETPOINT_C: Final = 12.0  # durian class: 10 to 15 °C
FROZEN_SETPOINT_C: Final = -20.0  # frozen seafood class: at or below −18 °C


def port_world() -> PortWorld:
    """The port scenario's world, deterministic: every time is relative to the scenario start."""
    parties = (
        Party(TH_SHIPPER, "Chanthaburi Durian Export Co., Ltd.", "shipper"),
        Party(CQ_IMPORTER, "Chongqing Xinguomao Fruit Import Co.", "receiver"),
        Party(VN_SHIPPER, "Haiphong Seafood Export JSC", "shipper"),
        Party(NN_RECEIVER, "Nanning Haijixing Seafood Market", "receiver"),
        Party(OCEAN_COSCO, "COSCO Shipping Lines", "carrier"),
        Party(OCEAN_HAIAN, "Hai An Transport and Stevedoring", "carrier"),
        Party(RAIL_CARRIER, "China Railway Container Transport, Nanning", "carrier"),
        Party(ROAD_BEIBU, "Beibu Gulf Reefer Logistics", "carrier"),
        Party(ROAD_FRESHLINK, "Guangxi Fresh Link Transport", "carrier"),
        Party(COLD_STORE_OP, "Qinzhou Bonded Zone Cold Store Co.", "cold_store"),
        Party(PORT_OPERATOR, "Beibu Gulf Port Qinzhou Terminal", "port"),
        Party(CUSTOMS, "Qinzhou Port Customs", "customs"),
    )
    locations = (
        Location(LAEM_CHABANG, "Laem Chabang port", "port", None, None, 13.0830, 100.8830),
        Location(HAIPHONG, "Haiphong port, Dinh Vu", "port", None, None, 20.8450, 106.7700),
        Location(
            QZ_TERMINAL, "Qinzhou port container terminal", "port", PORT_OPERATOR, None, 21.6505, 108.6565
        ),
        Location(
            QZ_INSPECTION, "Qinzhou port inspection site", "inspection_site", CUSTOMS, None, *_ll(INSPECTION)
        ),
        Location(QZ_BONDED_GATE, "Qinzhou bonded port zone gate", "bonded_zone", CUSTOMS, None, *_ll(GATE)),
        Location(
            QZ_COLD_STORE, "Qinzhou bonded cold store", "cold_store", COLD_STORE_OP, None, *_ll(COLD_STORE)
        ),
        Location(
            QZ_RAIL,
            "Qinzhou port east rail container station",
            "rail_station",
            RAIL_CARRIER,
            None,
            21.711,
            108.668,
        ),
        Location(
            NN_MARKET, "Nanning Haijixing seafood market", "market", NN_RECEIVER, None, *_ll(NN_MARKET_GATE)
        ),
        Location(
            CQ_COLD_STORE,
            "Chongqing Tuanjiecun rail port cold store",
            "cold_store",
            CQ_IMPORTER,
            None,
            29.5565,
            106.4300,
        ),
    )
    geofences = (
        Geofence(LAEM_CHABANG, "circle", 13.0830, 100.8830, 3000.0),
        Geofence(HAIPHONG, "circle", 20.8450, 106.7700, 3000.0),
        Geofence(
            QZ_TERMINAL,
            "polygon",
            polygon=((108.645, 21.643), (108.668, 21.643), (108.668, 21.658), (108.645, 21.658)),
        ),
        Geofence(QZ_INSPECTION, "circle", *_ll(INSPECTION), 250.0),
        Geofence(QZ_BONDED_GATE, "circle", *_ll(GATE), 150.0),
        Geofence(QZ_COLD_STORE, "circle", *_ll(COLD_STORE), 300.0),
        Geofence(
            QZ_RAIL,
            "polygon",
            polygon=((108.660, 21.706), (108.676, 21.706), (108.676, 21.716), (108.660, 21.716)),
        ),
        Geofence(NN_MARKET, "circle", *_ll(NN_MARKET_GATE), 500.0),
        Geofence(CQ_COLD_STORE, "circle", 29.5565, 106.4300, 800.0),
    )
    assets = (
        Asset(
            DURIAN_CONTAINER,
            "reefer_container",
            "Reefer container CXRU 152418 4 (40' HC)",
            epc=f"urn:epc:id:bic:{DURIAN_CONTAINER}",
            operator_party_id=OCEAN_COSCO,
            product_class="durian",
        ),
        Asset(
            SEAFOOD_CONTAINER,
            "reefer_container",
            "Reefer container TRIU 881249 3 (40' HC)",
            epc=f"urn:epc:id:bic:{SEAFOOD_CONTAINER}",
            operator_party_id=OCEAN_HAIAN,
            product_class="seafood_frozen",
        ),
        Asset(
            SEAFOOD_TRUCK,
            "reefer_truck",
            f"Reefer truck {SEAFOOD_TRUCK_PLATE}",
            epc="urn:epc:id:giai:6901234.TRUCK52781",
            operator_party_id=ROAD_BEIBU,
            product_class="seafood_frozen",
        ),
        Asset(
            DURIAN_TRUCK,
            "reefer_truck",
            f"Reefer truck {DURIAN_TRUCK_PLATE}",
            epc="urn:epc:id:giai:6901234.TRUCK60317",
            operator_party_id=ROAD_FRESHLINK,
            product_class="durian",
        ),
    )
    tracks = _tracks()
    channels = ("temp:1", "temp:2", "door", "setpoint", "lat", "lon", "speed")
    devices = tuple(Device(t.device_id, "reefer_controller", channels=channels) for t in tracks)
    mounts = tuple(DeviceMount(t.device_id, t.asset_id, MOUNTED_OFFSET_MS) for t in tracks)
    lots = (
        Lot(
            DURIAN_LOT,
            "08850000120015",
            "TH2611D01",
            "durian",
            "Fresh durian (Monthong), 18 t",
            "TH",
            "081060",
            "bonded",
            owner_party_id=CQ_IMPORTER,
        ),
        Lot(
            SHRIMP_LOT,
            "08930000150011",
            "VN2611S01",
            "seafood_frozen",
            "Frozen whiteleg shrimp (Litopenaeus vannamei), 20 t",
            "VN",
            "030617",
            "bonded",
            owner_party_id=NN_RECEIVER,
        ),
        Lot(
            SQUID_LOT,
            "08930000150028",
            "VN2611Q01",
            "seafood_frozen",
            "Frozen squid (Loligo), 6 t",
            "VN",
            "030743",
            "bonded",
            owner_party_id=NN_RECEIVER,
        ),
    )
    durian = ShipmentLot(DURIAN_LOT, 18_000.0, KILOGRAM)
    shrimp = ShipmentLot(SHRIMP_LOT, 20_000.0, KILOGRAM)
    squid = ShipmentLot(SQUID_LOT, 6_000.0, KILOGRAM)
    shipments = (
        Shipment(
            TH_SHIPMENT,
            TH_THROUGH,
            TH_BOL,
            TH_SHIPPER,
            CQ_IMPORTER,
            "durian",
            LAEM_CHABANG,
            CQ_COLD_STORE,
            -5 * DAY_MS,
            3 * DAY_MS,
            legs=(
                Leg(
                    1,
                    "sea",
                    OCEAN_COSCO,
                    LAEM_CHABANG,
                    QZ_TERMINAL,
                    -5 * DAY_MS,
                    _m(60),
                    asset_id=DURIAN_CONTAINER,
                    container_number=DURIAN_CONTAINER,
                    vessel="XIN NAN SHA",
                    voyage="2611N",
                ),
                Leg(2, "cold_store", COLD_STORE_OP, QZ_COLD_STORE, QZ_COLD_STORE, 2 * HOUR_MS, 6 * HOUR_MS),
                Leg(
                    3,
                    "rail",
                    RAIL_CARRIER,
                    QZ_RAIL,
                    CQ_COLD_STORE,
                    5 * HOUR_MS + _m(15),
                    3 * DAY_MS,
                    asset_id=DURIAN_CONTAINER,
                    container_number=DURIAN_CONTAINER,
                    train=SEA_RAIL_TRAIN,
                ),
                Leg(
                    4,
                    "road",
                    ROAD_FRESHLINK,
                    QZ_COLD_STORE,
                    NN_MARKET,
                    5 * HOUR_MS,
                    9 * HOUR_MS,
                    asset_id=DURIAN_TRUCK,
                    truck_plate=DURIAN_TRUCK_PLATE,
                ),
            ),
            stops=(QZ_TERMINAL, QZ_INSPECTION, QZ_BONDED_GATE, QZ_COLD_STORE, QZ_RAIL, NN_MARKET),
            lots=(durian,),
            rail_waybill=TH_RAIL_WAYBILL,
            road_waybill=TH_ROAD_WAYBILL,
        ),
        Shipment(
            VN_SHIPMENT,
            VN_THROUGH,
            VN_BOL,
            VN_SHIPPER,
            NN_RECEIVER,
            "seafood_frozen",
            HAIPHONG,
            NN_MARKET,
            -2 * DAY_MS,
            10 * HOUR_MS,
            legs=(
                Leg(
                    1,
                    "sea",
                    OCEAN_HAIAN,
                    HAIPHONG,
                    QZ_TERMINAL,
                    -2 * DAY_MS,
                    _m(90),
                    asset_id=SEAFOOD_CONTAINER,
                    container_number=SEAFOOD_CONTAINER,
                    vessel="HAIAN MIND",
                    voyage="2611S",
                ),
                Leg(2, "cold_store", COLD_STORE_OP, QZ_COLD_STORE, QZ_COLD_STORE, 3 * HOUR_MS, 5 * HOUR_MS),
                Leg(
                    3,
                    "road",
                    ROAD_BEIBU,
                    QZ_COLD_STORE,
                    NN_MARKET,
                    4 * HOUR_MS,
                    9 * HOUR_MS,
                    asset_id=SEAFOOD_TRUCK,
                    truck_plate=SEAFOOD_TRUCK_PLATE,
                ),
            ),
            stops=(QZ_TERMINAL, QZ_INSPECTION, QZ_BONDED_GATE, QZ_COLD_STORE),
            lots=(shrimp, squid),
            road_waybill=VN_ROAD_WAYBILL,
        ),
    )
    base = World(parties, locations, assets, devices, mounts, (), lots, ())
    return PortWorld(
        base=base,
        geofences=geofences,
        shipments=shipments,
        steps=_steps(durian, shrimp, squid),
        tracks=tracks,
        crossings=_crossings(),
        trace_code=DURIAN_TRACE_CODE,
        trace_code_lot=DURIAN_LOT,
    )


def _ll(w: Waypoint) -> tuple[float, float]:
    return w.lat, w.lon


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
            result="no quarantine pests; pesticide residues within GB 2763",
        ),
        Step(
            _m(125),
            "inspection",
            vn,
            QZ_INSPECTION,
            (shrimp,),
            certificates=("CIQ-QZ-2611-000121",),
            result="nucleic acid negative; core temperature -19.5 C",
        ),
        Step(
            _m(140),
            "disinfection",
            vn,
            QZ_INSPECTION,
            (shrimp,),
            certificates=("XS-QZ-2611-000045",),
            result="outer packaging sprayed, chlorine dioxide",
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

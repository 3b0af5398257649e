"""Stage 0, devices: the port world: Thai durian and Vietnamese frozen seafood through Qinzhou to market.

Registry rows (parties, places, assets, devices, lots), geofences and the two shipments with their documents.
When things happen is ``firmware_sim.port_timeline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from firmware_sim.devices import DAY_MS, HOUR_MS, MINUTE_MS, Waypoint
from firmware_sim.world import MOUNTED_OFFSET_MS, Asset, Device, DeviceMount, Location, Lot, Party, World

# ---- parties (13-digit GLNs, check digit included) ---------------------------------------------------------
TH_SHIPPER: Final = "8850000000102"
CQ_IMPORTER: Final = "6901234000108"
VN_SHIPPER: Final = "8930000000101"
NN_RECEIVER: Final = "6901234000023"
OCEAN_COSCO: Final = "6901234000115"
OCEAN_HAIAN: Final = "8930000000200"
RAIL_CARRIER: Final = "6901234000122"
ROAD_BEIBU: Final = "6901234000016"
ROAD_FRESHLINK: Final = "6901234000139"
COLD_STORE_OP: Final = "6901234000009"
PORT_OPERATOR: Final = "6901234000146"
CUSTOMS: Final = "6901234000153"

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
# Each reefer controller and the asset it is mounted on.
MOUNTED_ON: Final = (
    (DURIAN_CONTAINER_RC, DURIAN_CONTAINER),
    (SEAFOOD_CONTAINER_RC, SEAFOOD_CONTAINER),
    (SEAFOOD_TRUCK_RC, SEAFOOD_TRUCK),
    (DURIAN_TRUCK_RC, DURIAN_TRUCK),
)

# ---- lots (LGTIN) ------------------------------------------------------------------------------------------
DURIAN_LOT: Final = "urn:epc:class:lgtin:8850000.012001.TH2611D01"
SHRIMP_LOT: Final = "urn:epc:class:lgtin:8930000.015001.VN2611S01"
SQUID_LOT: Final = "urn:epc:class:lgtin:8930000.015002.VN2611Q01"
# The durian's first release (12 t), palletised as one logistic unit for the sea-rail train (SSCC).
DURIAN_RAIL_UNIT: Final = "urn:epc:id:sscc:8850000.0261100118"

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
    bill_of_lading: str | None
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


# ---- geography: where the places are ------------------------------------------------------------------
INSPECTION: Final = Waypoint(21.668, 108.650)  # customs inspection site (查验场)
GATE: Final = Waypoint(21.682, 108.632)  # bonded port zone gate (卡口)
COLD_STORE: Final = Waypoint(21.6953, 108.6122)
RAIL_YARD: Final = Waypoint(21.711, 108.668)  # Qinzhou port east rail container station
NN_MARKET_GATE: Final = Waypoint(22.8170, 108.3660)


@dataclass(frozen=True)
class PortWorld:
    base: World
    geofences: tuple[Geofence, ...]
    shipments: tuple[Shipment, ...]
    trace_code: str
    trace_code_lot: str


def port_world() -> PortWorld:
    """The port scenario's world: every time in it is relative to the scenario start."""
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
    channels = ("temp:1", "temp:2", "door", "setpoint", "lat", "lon", "speed")
    devices = tuple(Device(device, "reefer_controller", channels=channels) for device, _ in MOUNTED_ON)
    mounts = tuple(DeviceMount(device, asset, MOUNTED_OFFSET_MS) for device, asset in MOUNTED_ON)
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
                    HOUR_MS,
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
                    5 * HOUR_MS + 15 * MINUTE_MS,
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
                    90 * MINUTE_MS,
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
        trace_code=DURIAN_TRACE_CODE,
        trace_code_lot=DURIAN_LOT,
    )


def _ll(w: Waypoint) -> tuple[float, float]:
    return w.lat, w.lon

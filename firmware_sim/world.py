"""Stage 0, devices: the demo world's registry (parties, places, assets, devices, the lot and its pallet)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from firmware_sim.devices import HOUR_MS, MINUTE_MS

MOUNTED_OFFSET_MS: Final = -30 * 24 * HOUR_MS  # devices were mounted a month before the scenario
PACKED_OFFSET_MS: Final = -3 * 24 * HOUR_MS  # the shipper packed the pallet three days before

# ---- the registry ----------------------------------------------------------------------------
# Field names are the registry table columns; `*_offset_ms` fields are relative to the scenario start.


@dataclass(frozen=True)
class Party:
    party_id: str
    name: str
    role: str


@dataclass(frozen=True)
class Location:
    location_id: str
    name: str
    kind: str
    party_id: str | None = None
    parent_location_id: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Asset:
    asset_id: str
    kind: str
    name: str
    epc: str | None = None
    parent_asset_id: str | None = None
    operator_party_id: str | None = None
    location_id: str | None = None
    product_class: str | None = None
    mode: str = "transport"


@dataclass(frozen=True)
class Device:
    device_id: str
    kind: str
    accuracy_c: float = 0.5
    status: str = "active"
    channels: tuple[str, ...] = ()
    interval_ms: int = MINUTE_MS


@dataclass(frozen=True)
class DeviceMount:
    device_id: str
    asset_id: str
    valid_from_offset_ms: int
    valid_to_offset_ms: int | None = None


@dataclass(frozen=True)
class ReadPoint:
    device_id: str
    read_point_id: str  # SGLN of the door the reader watches
    biz_location: str
    biz_step: str
    disposition: str
    custodian: str | None  # party holding custody after this step


@dataclass(frozen=True)
class Lot:
    lot_id: str
    gtin: str
    batch: str
    product_class: str
    description: str
    origin_country: str
    hs_code: str
    bonded_status: str
    owner_party_id: str | None = None  # the shipper or importer it belongs to


@dataclass(frozen=True)
class Packing:
    """AggregationEvent ADD as captured from the shipper's system: parent SSCC <- quantity of the lot."""

    parent_id: str
    lot_id: str
    quantity: float
    uom: str  # UN/ECE rec 20 code
    event_time_offset_ms: int
    party_id: str  # whose system captured it


@dataclass(frozen=True)
class World:
    parties: tuple[Party, ...]
    locations: tuple[Location, ...]
    assets: tuple[Asset, ...]
    devices: tuple[Device, ...]
    mounts: tuple[DeviceMount, ...]
    read_points: tuple[ReadPoint, ...]
    lots: tuple[Lot, ...]
    packings: tuple[Packing, ...]


COLD_STORE_PARTY: Final = "6901234000004"
CARRIER_PARTY: Final = "6901234000011"
RECEIVER_PARTY: Final = "6901234000028"
SHIPPER_PARTY: Final = "8850000000001"
QZ_SITE: Final = "urn:epc:id:sgln:6901234.00001.0"
QZ_PUTAWAY: Final = "urn:epc:id:sgln:6901234.00001.1"
QZ_DOCK3: Final = "urn:epc:id:sgln:6901234.00001.3"
NN_SITE: Final = "urn:epc:id:sgln:6901234.00002.0"
NN_DOCK1: Final = "urn:epc:id:sgln:6901234.00002.1"
COLD_ROOM: Final = "COLDROOM-QZ-B2"
TRUCK: Final = "TRUCK-GXA-12345"
TRUCK_EPC: Final = "urn:epc:id:giai:6901234.TRUCK12345"
PALLET_SSCC: Final = "urn:epc:id:sscc:6901234.0000000001"
LOT_ID: Final = "urn:epc:class:lgtin:6901234.012345.QZ2611A"
LOGGER: Final = "qz-b2-logger"
REEFER: Final = "truck-12345-rc"
READER_PUTAWAY: Final = "rfid-qz-putaway"
READER_DOCK3: Final = "rfid-qz-dock3"
READER_NN_DOCK1: Final = "rfid-nn-dock1"
UNKNOWN_DEVICE: Final = "qz-b9-logger"  # not in the registry: its data must end in dead_letter


def demo_world() -> World:
    """The registry of the demo scenario, exactly as the shared contract lists it."""
    return World(
        parties=(
            Party(COLD_STORE_PARTY, "Qinzhou Bonded Zone Cold Store Co.", "cold_store"),
            Party(CARRIER_PARTY, "Beibu Gulf Reefer Logistics", "carrier"),
            Party(RECEIVER_PARTY, "Nanning Haijixing Seafood Market", "receiver"),
            Party(SHIPPER_PARTY, "Andaman Seafood Export Co.", "shipper"),
        ),
        locations=(
            Location(
                QZ_SITE, "Qinzhou bonded cold store", "cold_store", COLD_STORE_PARTY, None, 21.6953, 108.6122
            ),
            Location(
                QZ_PUTAWAY, "Qinzhou bonded cold store put-away door", "dock_door", COLD_STORE_PARTY, QZ_SITE
            ),
            Location(
                QZ_DOCK3, "Qinzhou bonded cold store dock door 3", "dock_door", COLD_STORE_PARTY, QZ_SITE
            ),
            Location(
                NN_SITE, "Nanning Haijixing seafood market", "market", RECEIVER_PARTY, None, 22.8170, 108.3660
            ),
            Location(
                NN_DOCK1, "Nanning Haijixing seafood market dock door 1", "dock_door", RECEIVER_PARTY, NN_SITE
            ),
        ),
        assets=(
            Asset(
                COLD_ROOM,
                "cold_room",
                "Qinzhou bonded cold store room B2",
                location_id=QZ_SITE,
                operator_party_id=COLD_STORE_PARTY,
                product_class="chilled",
                mode="storage",
            ),
            Asset(
                TRUCK,
                "reefer_truck",
                "Reefer truck Gui A-12345",
                epc=TRUCK_EPC,
                operator_party_id=CARRIER_PARTY,
                product_class="chilled",
                mode="transport",
            ),
        ),
        devices=(
            Device(LOGGER, "temp_logger", channels=("temp", "rh")),
            Device(
                REEFER,
                "reefer_controller",
                channels=("temp:1", "temp:2", "door", "setpoint", "lat", "lon", "speed"),
            ),
            Device(READER_PUTAWAY, "rfid_reader"),
            Device(READER_DOCK3, "rfid_reader"),
            Device(READER_NN_DOCK1, "rfid_reader"),
        ),
        mounts=(
            DeviceMount(LOGGER, COLD_ROOM, MOUNTED_OFFSET_MS),
            DeviceMount(REEFER, TRUCK, MOUNTED_OFFSET_MS),
        ),
        read_points=(
            ReadPoint(READER_PUTAWAY, QZ_PUTAWAY, QZ_SITE, "storing", "in_progress", COLD_STORE_PARTY),
            ReadPoint(READER_DOCK3, QZ_DOCK3, QZ_SITE, "shipping", "in_transit", CARRIER_PARTY),
            ReadPoint(READER_NN_DOCK1, NN_DOCK1, NN_SITE, "receiving", "in_progress", RECEIVER_PARTY),
        ),
        lots=(
            Lot(
                LOT_ID,
                gtin="06901234123456",
                batch="QZ2611A",
                product_class="chilled",
                description="Chilled white shrimp (Litopenaeus vannamei)",
                origin_country="TH",
                hs_code="030636",
                bonded_status="released",
            ),
        ),
        packings=(Packing(PALLET_SSCC, LOT_ID, 800.0, "KGM", PACKED_OFFSET_MS, SHIPPER_PARTY),),
    )

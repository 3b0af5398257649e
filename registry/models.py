"""Stage 0½, reference data: the registry's record types, one frozen dataclass per table row."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Party:
    """A shipper, carrier, cold-store operator, port, customs office, …: ``party_id`` is a GLN or code."""

    party_id: str
    name: str
    role: str  # shipper, carrier, cold_store, port, customs, retailer, receiver, regulator, other


@dataclass(frozen=True, slots=True)
class Location:
    """A place: ``location_id`` is an SGLN EPC URI (cold store, dock door, port, yard, bonded zone, …)."""

    location_id: str
    name: str
    kind: str
    party_id: str | None = None
    parent_location_id: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Asset:
    """What goods ride in or sit in: a reefer truck or its compartment, a container, a cold room, …"""

    asset_id: str
    kind: str
    name: str
    epc: str | None = None  # GIAI / BIC EPC URI of the asset's own tag
    parent_asset_id: str | None = None
    operator_party_id: str | None = None
    location_id: str | None = None  # fixed assets (cold rooms) sit at a location
    product_class: str | None = None  # configured rule profile (class code from a rule pack)
    mode: str = "transport"  # storage or transport (the transport mode: SQL asset_transport_mode)
    probe: str | None = None  # a compartment: the probe (temp[:n]) of its parent's devices measuring it


@dataclass(frozen=True, slots=True)
class Device:
    """A device: ``device_id`` is its MQTT client id, username and topic segment."""

    device_id: str
    kind: str  # temp_logger, reefer_controller, rfid_reader, gps_tracker, gateway_box
    accuracy_c: float | None = None  # °C; None: not stated (the class's, then the pack's default applies)
    status: str = "active"  # active or decommissioned
    calibration_due: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Mount:
    """Device ``device_id`` sat on asset ``asset_id`` from ``valid_from`` until ``valid_to`` (None: still)."""

    device_id: str
    asset_id: str
    valid_from: dt.datetime
    valid_to: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """One channel of one device (temp, temp:2, rh, door, power, …), numbered by the database."""

    series_id: int
    device_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class Lot:
    """A lot: ``lot_id`` is an LGTIN class URI (GTIN + batch) of a product class from a rule pack."""

    lot_id: str
    product_class: str
    gtin: str | None = None
    batch: str | None = None
    description: str | None = None
    origin_country: str | None = None  # ISO 3166 alpha-2
    hs_code: str | None = None
    bonded_status: str | None = None  # bonded, released or domestic
    owner_party_id: str | None = None  # the shipper or importer it belongs to


@dataclass(frozen=True, slots=True)
class Geofence:
    """A location's geofence: a circle (centre, radius in metres) or a polygon ring of (lon, lat) pairs."""

    location_id: str
    shape: str  # circle or polygon
    center_lat: float | None = None
    center_lon: float | None = None
    radius_m: float | None = None
    polygon: tuple[tuple[float, float], ...] | None = None  # (lon, lat), GeoJSON order


@dataclass(frozen=True, slots=True)
class ShipmentLeg:
    """One leg of a shipment: its mode (sea, rail, road, cold_store), carrier and conveyance."""

    leg_no: int
    mode: str
    carrier_party_id: str | None = None
    asset_id: str | None = None
    container_number: str | None = None  # ISO 6346
    vessel: str | None = None
    voyage: str | None = None
    train: str | None = None
    truck_plate: str | None = None
    from_location_id: str | None = None
    to_location_id: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ShipmentLot:
    """A lot a shipment carries, with its quantity (UN/CEFACT unit)."""

    lot_id: str
    quantity: float | None = None
    uom: str | None = None


@dataclass(frozen=True, slots=True)
class ShipmentProfile:
    """A shipper's alarm profile for one shipment: tighter than the class, never looser; versioned."""

    version: int
    source: str  # the shipper's specification it cites
    low_c: float | None = None
    high_c: float | None = None
    max_gap_s: float | None = None


@dataclass(frozen=True, slots=True)
class ClassBounds:
    """What a product class allows, as the rule pack states it: the range and the tightest recording
    interval over the modes (None: the class sets no bound there). A shipment profile may only narrow it."""

    product_class: str
    low_c: float | None
    high_c: float | None
    max_gap_s: float | None


@dataclass(frozen=True, slots=True)
class Shipment:
    """A shipment under one through document (一单制), with its legs, stops, lots and planned window."""

    shipment_id: str
    through_document: str | None = None
    bill_of_lading: str | None = None
    rail_waybill: str | None = None
    road_waybill: str | None = None
    shipper_party_id: str | None = None
    consignee_party_id: str | None = None
    product_class: str | None = None
    origin_location_id: str | None = None
    destination_location_id: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    legs: tuple[ShipmentLeg, ...] = ()
    stops: tuple[str, ...] = ()  # location ids, in order
    lots: tuple[ShipmentLot, ...] = ()
    source: str = "api"  # api, cli, epcis or seed
    closed_at: dt.datetime | None = None
    profiles: tuple[ShipmentProfile, ...] = ()  # every version, oldest first (the newest applies)

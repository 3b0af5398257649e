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

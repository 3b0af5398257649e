"""Stage 3, API: the request and response bodies of /shipments (pydantic), and their registry records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from registry.models import Shipment, ShipmentLeg, ShipmentLot, ShipmentProfile
from traceability.epcis import multimodal
from traceability.shipments import ShipmentSummary, ShipmentView

Code = Annotated[str, Field(min_length=1, max_length=200)]
Mode = Literal["sea", "rail", "road", "cold_store"]
State = Literal["planned", "in_transit", "arrived", "delivered", "closed"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShipmentLegIn(_In):
    leg_no: int = Field(ge=1, le=100)
    mode: Mode
    carrier_party_id: Code | None = None
    asset_id: Code | None = Field(None, description="the registered asset carrying the goods on this leg")
    container_number: Code | None = Field(None, description="ISO 6346, check digit validated")
    vessel: Code | None = None
    voyage: Code | None = None
    train: Code | None = None
    truck_plate: Code | None = None
    from_location_id: Code | None = None
    to_location_id: Code | None = None
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None

    @field_validator("container_number")
    @classmethod
    def _iso6346(cls, value: str | None) -> str | None:
        return None if value is None else multimodal.container_number(value)


class ShipmentLotIn(_In):
    lot_id: Code
    quantity: float | None = Field(None, gt=0)
    uom: Annotated[str, Field(min_length=1, max_length=8)] | None = Field(
        None, description="UN/CEFACT unit code as in EPCIS quantityList (KGM, CT, ...)"
    )


class ProfileIn(_In):
    """A shipper's alarm profile: tighter than the shipment's class, never looser."""

    source: Code = Field(description="the shipper's specification it comes from (document, clause)")
    low_c: float | None = Field(None, ge=-273.15, le=1000)
    high_c: float | None = Field(None, ge=-273.15, le=1000)
    max_gap_s: float | None = Field(None, gt=0, le=365 * 86400)


class ShipmentIn(_In):
    shipment_id: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    ]
    through_document: Code | None = Field(None, description="the through document number (一单制)")
    bill_of_lading: Code | None = None
    rail_waybill: Code | None = None
    road_waybill: Code | None = None
    shipper_party_id: Code | None = None
    consignee_party_id: Code | None = None
    product_class: Code | None = Field(None, description="class code of a rule pack")
    origin_location_id: Code | None = None
    destination_location_id: Code | None = None
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None
    legs: list[ShipmentLegIn] = Field(default_factory=list, max_length=50)
    stops: list[Code] = Field(default_factory=list, max_length=100, description="location ids, in order")
    lots: list[ShipmentLotIn] = Field(default_factory=list, max_length=1000)
    profile: ProfileIn | None = None

    def record(self, source: str) -> Shipment:
        """The registry's record of this shipment, registered through ``source`` (api or cli)."""
        fields = self.model_dump(exclude={"legs", "stops", "lots", "profile"})
        profiles = () if self.profile is None else (ShipmentProfile(1, **self.profile.model_dump()),)
        return Shipment(
            **fields,
            legs=tuple(ShipmentLeg(**leg.model_dump()) for leg in self.legs),
            stops=tuple(self.stops),
            lots=tuple(ShipmentLot(**lot.model_dump()) for lot in self.lots),
            source=source,
            profiles=profiles,
        )


class ShipmentCloseIn(_In):
    at: AwareDatetime | None = Field(None, description="when it closed; now when left out")


class ShipmentLegOut(BaseModel):
    leg_no: int
    mode: str
    carrier_party_id: str | None
    asset_id: str | None
    container_number: str | None
    vessel: str | None
    voyage: str | None
    train: str | None
    truck_plate: str | None
    from_location_id: str | None
    to_location_id: str | None
    planned_start: datetime | None
    planned_end: datetime | None


class ShipmentLotOut(BaseModel):
    lot_id: str
    quantity: float | None
    uom: str | None


class ProfileOut(BaseModel):
    version: int
    source: str
    low_c: float | None
    high_c: float | None
    max_gap_s: float | None


class ShipmentSummaryOut(BaseModel):
    shipment_id: str
    through_document: str | None
    bill_of_lading: str | None
    rail_waybill: str | None
    road_waybill: str | None
    shipper_party_id: str | None
    consignee_party_id: str | None
    product_class: str | None
    origin_location_id: str | None
    destination_location_id: str | None
    planned_start: datetime | None
    planned_end: datetime | None
    source: str = Field(description="api, cli, epcis (named by captured events) or seed")
    state: State = Field(description="from the shipment's ledger events; closed when closed by hand")

    @classmethod
    def of(cls, found: ShipmentSummary) -> ShipmentSummaryOut:
        return cls.model_validate(found, from_attributes=True)


class ShipmentOut(ShipmentSummaryOut):
    departed_at: datetime | None = Field(description="first departing event")
    arrived_at: datetime | None = Field(description="first arriving event at the destination")
    delivered_at: datetime | None = Field(description="first receiving event at the destination")
    closed_at: datetime | None
    legs: list[ShipmentLegOut]
    stops: list[str]
    lots: list[ShipmentLotOut]
    profiles: list[ProfileOut] = Field(description="every version of the shipper's profile; the last applies")

    @classmethod
    def of_view(cls, view: ShipmentView) -> ShipmentOut:
        s, p = view.shipment, view.progress
        return cls(
            shipment_id=s.shipment_id,
            through_document=s.through_document,
            bill_of_lading=s.bill_of_lading,
            rail_waybill=s.rail_waybill,
            road_waybill=s.road_waybill,
            shipper_party_id=s.shipper_party_id,
            consignee_party_id=s.consignee_party_id,
            product_class=s.product_class,
            origin_location_id=s.origin_location_id,
            destination_location_id=s.destination_location_id,
            planned_start=s.planned_start,
            planned_end=s.planned_end,
            source=s.source,
            state=p.state,  # type: ignore[arg-type]  # the view's states are State's (migration 0021)
            departed_at=p.departed_at,
            arrived_at=p.arrived_at,
            delivered_at=p.delivered_at,
            closed_at=p.closed_at,
            legs=[ShipmentLegOut.model_validate(leg, from_attributes=True) for leg in s.legs],
            stops=list(s.stops),
            lots=[ShipmentLotOut.model_validate(lot, from_attributes=True) for lot in s.lots],
            profiles=[ProfileOut.model_validate(p, from_attributes=True) for p in s.profiles],
        )

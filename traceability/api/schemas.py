"""Stage 3, API: the response and request bodies of the API's routes (pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]
    database: bool
    ledger_head_seq: int | None = Field(description="seq of the newest ledger entry; null when empty")
    stages: dict[str, bool] = Field(
        default_factory=dict, description="each stage of this process and whether it is alive"
    )


class VerifyResponse(BaseModel):
    ok: bool = Field(description="nothing found wrong in the chain or any checkpoint")
    events: int = Field(description="ledger entries read")
    first_bad_seq: int | None = Field(description="first seq where the chain does not hold; null if ok")
    anchored: bool = Field(
        default=False, description="ok, a key is pinned, and a checkpoint signed by it vouches for the chain"
    )
    signed_seq: int | None = Field(default=None, description="the chain is signed through this seq")
    pinned: bool = Field(default=False, description="a public key outside the database was pinned")
    problems: list[str] = Field(default_factory=list, description="each problem found, naming its seq")


class Lot(BaseModel):
    lot_id: str
    gtin: str | None
    batch: str | None
    product_class: str
    description: str | None
    origin_country: str | None
    hs_code: str | None
    bonded_status: str | None


class Limits(BaseModel):
    product_class: str
    pack_id: str
    pack_version: str
    low_c: float | None
    high_c: float | None
    source: str


class Unit(BaseModel):
    child_id: str = Field(description="what is enclosed (the lot, or a unit enclosing it)")
    unit_id: str = Field(description="the enclosing unit (SSCC, asset tag ...)")
    t0: datetime
    t1: datetime | None
    depth: int = Field(description="1 = directly encloses the lot")
    asset_id: str | None = Field(description="set when the unit is an asset (truck, container ...)")


class Placement(BaseModel):
    child_id: str
    location_id: str
    location_name: str
    t0: datetime
    t1: datetime | None
    start_seq: int
    end_seq: int | None


class Party(BaseModel):
    party_id: str
    name: str | None


class Location(BaseModel):
    location_id: str
    name: str | None


class Asset(BaseModel):
    asset_id: str
    name: str | None
    kind: str | None


class TemperatureSummary(BaseModel):
    readings: int
    dropouts: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    series: int = Field(description="temperature series (probes) contributing")
    out_of_range_s: float | None = Field(
        description="longest time any one probe was outside the class limits; null without limits"
    )
    mkt_c: float | None = Field(None, description="mean kinetic temperature, ΔH/R = 10 000 K")
    max_gap_s: float | None = Field(None, description="longest interval between two readings of a probe")
    gaps: int = Field(0, description="intervals longer than the allowed recording interval")
    allowed_gap_s: float = Field(
        600.0, description="allowed recording interval (storage 30 min, transport 10)"
    )
    first_reading: datetime | None = None
    last_reading: datetime | None = None


class Excursion(BaseModel):
    excursion_id: int
    series_id: int
    device_id: str | None
    channel: str | None
    rule_id: str
    pack_version: str
    start_time: datetime
    end_time: datetime
    open: bool
    peak_c: float | None
    limit_low_c: float | None
    limit_high_c: float | None
    readings: int


class ChainBreak(BaseModel):
    chain_break_id: int | None = Field(description="null for a break the trace itself finds (handoff)")
    kind: str
    series_id: int | None
    rule_id: str
    pack_version: str
    start_time: datetime
    end_time: datetime
    allowed_s: float
    detail: dict[str, Any] | None


class CustodyLeg(BaseModel):
    leg_id: int
    epc: str
    custodian: Party | None
    location: Location | None
    asset: Asset | None
    t_start: datetime
    t_end: datetime | None
    start_seq: int
    end_seq: int | None
    temperature: TemperatureSummary
    excursions: list[Excursion]
    chain_breaks: list[ChainBreak]


class LedgerRef(BaseModel):
    seq: int
    event_id: str
    type: str
    biz_step: str | None
    event_time: datetime
    action: str | None
    error_declaration: bool = Field(False, description="this entry is an errorDeclaration")
    declared_wrong: bool = Field(False, description="an errorDeclaration names this event")


class BondedStep(BaseModel):
    status: str
    line: str | None
    seq: int
    event_time: datetime


class FirstEvent(BaseModel):
    seq: int
    event_time: datetime
    biz_step: str | None
    read_point: str | None
    biz_location: str | None


class Origin(BaseModel):
    country: str | None
    first_event: FirstEvent | None


class LineageLink(BaseModel):
    id: str
    seq: int
    event_time: datetime
    depth: int
    output_id: str | None = None
    input_id: str | None = None


class Backward(BaseModel):
    origin: Origin
    inputs: list[LineageLink]


class Shipment(BaseModel):
    seq: int
    event_time: datetime
    biz_step: str | None
    biz_transactions: list[str]
    destinations: list[str]
    read_point: str | None
    transport_mode: str | None


class Recipient(BaseModel):
    party_id: str
    name: str | None
    role: str | None
    since: datetime | None


class Forward(BaseModel):
    outputs: list[LineageLink]
    shipments: list[Shipment]
    recipients: list[Recipient] = Field(
        description="custodians of the lot and its outputs: whom a recall calls"
    )


class TraceQuery(BaseModel):
    id: str
    kind: str = Field(description="lot, epc, epc_class, container, asset, document")
    lots: list[str]


class Trace(BaseModel):
    lot_id: str
    lot: Lot | None
    limits: Limits | None
    units: list[Unit]
    placements: list[Placement]
    custody: list[CustodyLeg]
    lot_chain_breaks: list[ChainBreak]
    events: list[LedgerRef]
    verdict: Literal["pass", "excursion", "broken"]
    bonded: list[BondedStep] = []
    backward: Backward | None = None
    forward: Forward | None = None
    query: TraceQuery | None = None


class CaptureJobModel(BaseModel):
    captureID: str  # noqa: N815 - GS1 REST bindings field name
    running: bool
    success: bool
    captureErrorBehaviour: str  # noqa: N815
    errors: list[dict[str, Any]]
    events: int
    firstSeq: int | None  # noqa: N815
    lastSeq: int | None  # noqa: N815
    alreadyCaptured: list[dict[str, Any]] = Field(  # noqa: N815
        default_factory=list, description="events of the document the ledger held already: eventID, seq"
    )


class CheckpointModel(BaseModel):
    seq: int
    entry_hash: str
    signed_at: str
    public_key: str
    signature: str


class Alarm(BaseModel):
    model_config = {"extra": "allow"}
    alarm_id: int
    asset_id: str | None = None
    rule_id: str | None = None
    severity: str | None = None
    state: str | None = None


class AlarmAction(BaseModel):
    note: str = Field("", max_length=2000)

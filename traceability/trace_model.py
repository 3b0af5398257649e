"""Stage 3, trace: the typed ``Trace`` of a lot, and its JSON: what the API, the CLI, the web page and the
reports all render (the shape ``traceability/README.md`` documents)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from rules.verdicts import Verdict

# The field docstrings below are the API's field descriptions (pydantic reads them; no import needed).
FIELD_DOCS = {"use_attribute_docstrings": True}


# -- the Trace ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lot:
    lot_id: str
    gtin: str | None
    batch: str | None
    product_class: str
    description: str | None
    origin_country: str | None
    hs_code: str | None
    bonded_status: str | None


@dataclass(frozen=True, slots=True)
class Limits:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    product_class: str
    pack_id: str
    pack_version: str
    low_c: float | None
    high_c: float | None
    source: str
    storage_max_gap_s: float | None
    """allowed recording interval in storage, as the class's pack states it"""
    transport_max_gap_s: float | None
    """allowed recording interval in transport, as the class's pack states it"""
    road_max_gap_s: float | None = None
    """allowed recording interval on the road (the transport one where the pack gives none)"""
    rail_max_gap_s: float | None = None
    """allowed recording interval by rail (the transport one where the pack gives none)"""
    sea_max_gap_s: float | None = None
    """allowed recording interval at sea (the transport one where the pack gives none)"""
    mkt_limit_c: float | None = None
    """the class's mean kinetic temperature limit (null: the class sets no MKT rule)"""
    mkt_window_s: float | None = None
    """the rolling window the MKT limit is judged over"""
    mkt_dh_r_k: float | None = None
    """ΔH/R of the class's MKT rule, in kelvin"""


@dataclass(frozen=True, slots=True)
class Unit:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    child_id: str
    """what is enclosed (the lot, or a unit enclosing it)"""
    unit_id: str
    """the enclosing unit (SSCC, asset tag ...)"""
    t0: datetime
    t1: datetime | None
    depth: int
    """1 = directly encloses the lot"""
    asset_id: str | None
    """set when the unit is an asset (truck, container ...)"""


@dataclass(frozen=True, slots=True)
class Placement:
    child_id: str
    location_id: str
    location_name: str
    t0: datetime
    t1: datetime | None
    start_seq: int
    end_seq: int | None


@dataclass(frozen=True, slots=True)
class Party:
    party_id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Location:
    location_id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Asset:
    asset_id: str
    name: str | None
    kind: str | None


@dataclass(frozen=True, slots=True)
class TemperatureSummary:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    readings: int
    dropouts: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    series: int
    """temperature series (probes) contributing"""
    out_of_range_s: float | None
    """longest time any one probe was outside the class limits; null without limits"""
    mkt_c: float | None
    """mean kinetic temperature, ΔH/R = 10 000 K, time-weighted: each reading holds until the next one,
    at most the allowed recording interval"""
    max_gap_s: float | None
    """longest interval between two readings of a probe"""
    gaps: int
    """intervals longer than the allowed recording interval (0 when the class states none)"""
    allowed_gap_s: float | None
    """allowed recording interval of the leg's mode, from the class's pack; null without a class"""
    first_reading: datetime | None
    last_reading: datetime | None


@dataclass(frozen=True, slots=True)
class Excursion:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

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
    mkt_c: float | None = None
    """MKT of the excursion's series over the class's MKT window ending at the excursion's end
    (time-weighted as a leg's); null when the class sets no MKT rule"""


@dataclass(frozen=True, slots=True)
class ChainBreak:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    chain_break_id: int | None
    """null for a break the trace itself finds (handoff)"""
    kind: str
    series_id: int | None
    rule_id: str
    pack_version: str
    start_time: datetime
    end_time: datetime
    allowed_s: float
    detail: dict[str, Any] | None
    """the rule's own account of the break (free-form JSON)"""


@dataclass(frozen=True, slots=True)
class CustodyLeg:
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


@dataclass(frozen=True, slots=True)
class LedgerRef:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    seq: int
    event_id: str
    type: str
    biz_step: str | None
    event_time: datetime
    action: str | None
    error_declaration: bool
    """this entry is an errorDeclaration"""
    declared_wrong: bool
    """an errorDeclaration names this event"""


@dataclass(frozen=True, slots=True)
class Correction:
    """An errorDeclaration the ledger holds on one of the trace's events: what was believed, what replaced
    it, when and why."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    declared_event_id: str
    """the eventID declared wrong (its original entry stays in the ledger)"""
    declaration_seq: int
    """the ledger seq of the errorDeclaration"""
    declared_at: datetime
    """the declaration's declarationTime"""
    reason: str
    """the CBV error reason (incorrect_data: late data showed the event's statement wrong)"""
    corrective_event_ids: list[str]
    """the events that state what is now known instead"""
    why: str | None
    """the corrective event's account of the change (what arrived late and what it changed)"""
    was: str | None
    """what the declared event stated: a lot verdict's result, else its verdict kind"""
    now: str | None
    """what the first corrective event states, in the same terms"""


@dataclass(frozen=True, slots=True)
class VerdictVersion:
    """One version of the lot's verdict history: what the rules stage believed from when, and why."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    version: int
    verdict: Verdict
    computed_at: datetime
    """when the rules stage reached it"""
    change_from: Verdict | None
    """the previous version's verdict (null for the first)"""
    reasons: list[str]
    arrived_from: datetime | None
    """device-time window of the readings whose arrival led to it (null: a custody change)"""
    arrived_to: datetime | None


@dataclass(frozen=True, slots=True)
class BondedStep:
    status: str
    line: str | None
    seq: int
    event_time: datetime


@dataclass(frozen=True, slots=True)
class FirstEvent:
    seq: int
    event_time: datetime
    biz_step: str | None
    read_point: str | None
    biz_location: str | None


@dataclass(frozen=True, slots=True)
class Origin:
    country: str | None
    first_event: FirstEvent | None


@dataclass(frozen=True, slots=True)
class LineageLink:
    id: str
    seq: int
    event_time: datetime
    depth: int
    output_id: str | None = None
    input_id: str | None = None


@dataclass(frozen=True, slots=True)
class Backward:
    origin: Origin
    inputs: list[LineageLink]


@dataclass(frozen=True, slots=True)
class Shipment:
    seq: int
    event_time: datetime
    biz_step: str | None
    biz_transactions: list[str]
    destinations: list[str]
    read_point: str | None
    transport_mode: str | None


@dataclass(frozen=True, slots=True)
class Recipient:
    party_id: str
    name: str | None
    role: str | None
    since: datetime | None


@dataclass(frozen=True, slots=True)
class Forward:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    outputs: list[LineageLink]
    shipments: list[Shipment]
    recipients: list[Recipient]
    """custodians of the lot and its outputs: whom a recall calls"""


@dataclass(frozen=True, slots=True)
class TraceQuery:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    id: str
    kind: str
    """lot, epc, epc_class, container, asset, document"""
    lots: list[str]


@dataclass(frozen=True, slots=True)
class ShelfLife:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    model: str
    """the class's shelf-life model: arrhenius or sqrt (square-root, Ratkowsky)"""
    ref_c: float
    """the model's reference temperature (°C)"""
    ref_life_h: float
    """shelf life at the reference temperature (hours), from the class's pack"""
    used: float
    """fraction of the reference life the lot's temperature history consumed (over 1: past its life)"""
    remaining_h: float
    """hours of life left if kept at the reference temperature from as_of (0 once used up)"""
    evidence_s: float
    """time some reading of an asset holding the lot covered"""
    unevidenced_s: float
    """time in the lot's custody that no reading covers: it consumes nothing, the verdict says why"""
    first_time: datetime | None
    """start of the lot's first custody leg"""
    as_of: datetime | None
    """the figures hold as of this time: the end of the last reading that covers the lot"""
    pack_version: str
    verdict_version: int | None
    """the lot verdict version the figures were stored with"""
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class ShipmentLegRef:
    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    leg_no: int
    mode: str
    """sea, rail, road or cold_store"""
    carrier_party_id: str | None
    carrier_name: str | None
    asset_id: str | None
    container_number: str | None
    """ISO 6346, the same on every leg (一箱到底)"""
    vessel: str | None
    voyage: str | None
    train: str | None
    truck_plate: str | None
    from_location_id: str | None
    to_location_id: str | None
    planned_start: datetime | None
    planned_end: datetime | None


@dataclass(frozen=True, slots=True)
class ShipmentRef:
    """A shipment the lot travelled in, under its through document (一单制)."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    shipment_id: str
    through_document: str | None
    bill_of_lading: str | None
    rail_waybill: str | None
    road_waybill: str | None
    origin_location_id: str | None
    destination_location_id: str | None
    planned_start: datetime | None
    planned_end: datetime | None
    state: str
    """planned, in_transit, arrived, delivered or closed: from the shipment's ledger events"""
    quantity: float | None
    """the lot's quantity in this shipment"""
    uom: str | None
    legs: list[ShipmentLegRef]


@dataclass(frozen=True, slots=True)
class ImportStep:
    """A step of the lot's import flow as the ledger recorded it (``import_step``)."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    step: str
    """discharge, inspection, disinfection, trace_code, entry (first line), release (second line) or onward"""
    seq: int
    event_time: datetime
    quantity: float | None
    uom: str | None
    conformant: bool | None
    """an inspection's result (null for the other steps)"""
    site: str | None
    certificates: list[str]
    trace_code: str | None


@dataclass(frozen=True, slots=True)
class ImportRelease:
    """A (partial) second-line release: one inspection may cover several."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    seq: int
    event_time: datetime
    quantity: float | None
    uom: str | None
    released_total: float
    """the lot's releases so far, this one included"""
    inspected: float | None
    """the quantity the covering conformant inspection inspected (null: none, or in another unit)"""
    remaining: float | None
    """what remains of it after this release"""


@dataclass(frozen=True, slots=True)
class ImportFlow:
    """The lot's imported cold-chain food flow: its steps, releases, clearance time and trace code. Its
    violations are the lot's chain breaks of kind ``flow`` (``lot_chain_breaks``), as the rules stage raised
    them."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    steps: list[ImportStep]
    releases: list[ImportRelease]
    discharged_at: datetime | None
    first_release_at: datetime | None
    clearance_s: float | None
    """discharge → first release, in seconds (null until both are recorded)"""
    trace_code: str | None
    """the trace code the first receiving site issued (null: none yet)"""
    trace_code_site: str | None
    scan_path: str | None
    """the public scan page of the trace code (``/scan/{code}``)"""


@dataclass(frozen=True, slots=True)
class ProfileExcursion:
    """A run of readings outside a shipper's per-shipment profile (``range``) or a recording interval beyond
    it (``gap``), on an asset that carried the lot for one of its shipments. Beside the class's verdicts,
    never part of them: it cites the shipper's specification and the profile version, not a rule pack."""

    __pydantic_config__: ClassVar[dict[str, bool]] = FIELD_DOCS

    kind: str
    asset_id: str
    series_id: int
    shipment_id: str
    profile_version: int
    rule_id: str
    source: str
    """the shipper's specification the profile version cites"""
    start_time: datetime
    end_time: datetime
    open: bool
    peak_c: float | None
    limit_low_c: float | None
    limit_high_c: float | None
    allowed_s: float | None
    """gap: the profile's recording interval"""


@dataclass(frozen=True, slots=True)
class Trace:
    lot_id: str
    lot: Lot | None
    limits: Limits | None
    units: list[Unit]
    placements: list[Placement]
    custody: list[CustodyLeg]
    lot_chain_breaks: list[ChainBreak]
    events: list[LedgerRef]
    verdict: Verdict
    """the lot's verdict as the rules stage judged it (latest version of its verdict history)"""
    verdict_version: int | None
    """the verdict history version read; null when the rules stage has not judged the lot"""
    verdict_reasons: list[str]
    """why: the reasons the rules stage recorded with that version"""
    bonded: list[BondedStep]
    backward: Backward | None
    forward: Forward | None
    query: TraceQuery | None = None
    shelf_life: ShelfLife | None = None
    """the lot's remaining shelf life as the rules stage stored it beside the verdict (null: its class has no
    shelf-life model, or the rules stage has not judged the lot)"""
    corrections: list[Correction] = field(default_factory=list)
    """the errorDeclarations on the trace's events, in ledger order"""
    verdict_history: list[VerdictVersion] = field(default_factory=list)
    """every version of the lot's verdict, oldest first"""
    shipments: list[ShipmentRef] = field(default_factory=list)
    """the shipments the lot travelled in (registered, or named by its captured documents), with their legs"""
    import_flow: ImportFlow | None = None
    """the lot's import flow (null: the ledger records no import step of it)"""
    profile_excursions: list[ProfileExcursion] = field(default_factory=list)
    """the runs outside (and gaps beyond) the alarm profiles of the lot's shipments, on the assets of its
    custody legs, oldest first"""


def to_json(found: Trace) -> dict[str, Any]:
    """The trace as JSON values (times RFC 3339 in UTC with ``Z``): what the API serves."""
    out: dict[str, Any] = msgspec.to_builtins(found)
    return out


def from_json(data: Any) -> Trace:
    """A trace read back from its JSON (e.g. the API's answer)."""
    return msgspec.convert(data, Trace)

"""Stage 3, EPCIS: the sea–rail–road chain of the port documents as EPCIS events (container, conveyance,
through document, bonded status, inspection/quarantine/disinfection, gates).

Conventions (all values are EPCIS 2.0 fields or ``cc:`` extensions, so every event validates and hashes):

* a reefer container is its ISO 6346 number, check digit validated, as the EPC ``urn:epc:id:bic:<number>``;
  it stays the same identifier on the vessel, the train and the truck (一箱到底);
* the conveyance rides in extensions: ``cc:transportMode`` (sea|rail|road), ``cc:vessel`` +
  ``cc:voyage``, ``cc:train``, ``cc:truckPlate``;
* the ocean bill of lading is a ``bol`` bizTransaction, the rail waybill a ``cc`` rail-waybill one, and
  the through document (一单制) a third; an event naming them together links them;
* bonded status is per lot: an ObjectEvent over the lot (quantityList) with ``cc:bondedStatus``
  (bonded|released|domestic) and ``cc:customsLine`` (first = entry admission, second = release);
* inspection: bizStep ``inspecting`` with disposition conformant/non_conformant and ``cc:inspection``
  (inspection|disinfection); quarantine: bizStep ``holding``, disposition ``non_sellable_other``;
* gates: bizStep ``arriving`` (in) / ``departing`` (out) at the gate's SGLN with ``cc:gate``
  (port_terminal|rail_station|bonded_zone);
* geofences: an asset's position entering (``arriving``) or leaving (``departing``) a location's
  geofence, with ``cc:geofence`` (enter|exit), ``cc:asset`` and ``cc:shipment``, and all of the shipment's
  documents as bizTransactions.

The imported cold-chain food flow, one batch (lot) per event, its quantity in the quantityList (what the
ledger derives into ``import_step`` and the rules stage's flow checker follows):

* discharge: bizStep ``arriving`` at the port with ``cc:discharge`` (the vessel and voyage, or ``port``);
* inspection and quarantine result: bizStep ``inspecting``, disposition conformant/non_conformant,
  ``cc:inspection`` ``inspection``, ``cc:result`` (conformant|non_conformant), ``cc:certificates`` (the
  certificate numbers), ``cc:site`` (the designated supervision site) and, when the result asks for it,
  ``cc:disinfectionRequired`` true;
* disinfection: bizStep ``inspecting``, ``cc:inspection`` ``disinfection``, ``cc:site`` (done once);
* trace code issue at the first receiving site (首站赋码): bizStep ``commissioning`` with
  ``cc:traceCode`` and ``cc:site``;
* first-line entry (``cc:bondedStatus`` bonded, ``cc:customsLine`` first) and second-line release
  (released, second), each with the quantity entering or leaving;
* onward: bizStep ``departing`` of the batch (quantityList) with its conveyance.
SGTIN-96 / SSCC-96 tag hex is the gateway's to decode; here identifiers are EPC URIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stdnum import iso6346
from stdnum.exceptions import ValidationError

from traceability.epcis import builders
from traceability.epcis.steps import LEAVING_STEPS

BTT_BOL = "bol"
BTT_RAIL_WAYBILL = builders.CC_NAMESPACE + "btt/rail_waybill"
BTT_ROAD_WAYBILL = builders.CC_NAMESPACE + "btt/road_waybill"
BTT_THROUGH_DOCUMENT = builders.CC_NAMESPACE + "btt/through_document"
GATES = frozenset({"port_terminal", "rail_station", "bonded_zone"})
MODES = frozenset({"sea", "rail", "road"})


def container_number(text: str) -> str:
    """The ISO 6346 container number, compact and upper case; ``ValueError`` when its check digit is wrong."""
    try:
        return str(iso6346.validate(text))
    except ValidationError as exc:
        raise ValueError(f"{text!r} is not a valid ISO 6346 container number: {exc}") from exc


def container_epc(number: str) -> str:
    """``urn:epc:id:bic:<number>`` of a validated ISO 6346 number."""
    return "urn:epc:id:bic:" + container_number(number)


def document_uri(kind: str, number: str) -> str:
    """A URI for a B/L, waybill or through document number (numbers have no GS1 key)."""
    return f"{builders.CC_NAMESPACE}doc/{kind}/{number}"


# The kinds of document number a bizTransaction URI carries (document_uri): the through document (一单制),
# the ocean bill of lading and the rail waybill.
DOCUMENT_KINDS = ("through", "bl", "waybill", "road_waybill")


def document_number(uri: str) -> tuple[str, str] | None:
    """(kind, number) of a document URI ``document_uri`` made; None for any other bizTransaction."""
    prefix = f"{builders.CC_NAMESPACE}doc/"
    if not uri.startswith(prefix):
        return None
    kind, _, number = uri.removeprefix(prefix).partition("/")
    return (kind, number) if kind in DOCUMENT_KINDS and number else None


def biz_transactions(
    *,
    bill_of_lading: str | None = None,
    rail_waybill: str | None = None,
    through_document: str | None = None,
    road_waybill: str | None = None,
) -> list[dict[str, str]]:
    out = []
    if bill_of_lading:
        out.append({"type": BTT_BOL, "bizTransaction": document_uri("bl", bill_of_lading)})
    if rail_waybill:
        out.append({"type": BTT_RAIL_WAYBILL, "bizTransaction": document_uri("waybill", rail_waybill)})
    if through_document:
        out.append(
            {"type": BTT_THROUGH_DOCUMENT, "bizTransaction": document_uri("through", through_document)}
        )
    if road_waybill:
        out.append({"type": BTT_ROAD_WAYBILL, "bizTransaction": document_uri("road_waybill", road_waybill)})
    return out


def conveyance(
    mode: str,
    *,
    vessel: str | None = None,
    voyage: str | None = None,
    train: str | None = None,
    truck_plate: str | None = None,
) -> dict[str, Any]:
    """The ``cc:`` extension fields of a conveyance."""
    if mode not in MODES:
        raise ValueError(f"transport mode {mode!r} not one of {sorted(MODES)}")
    ext: dict[str, Any] = {"cc:transportMode": mode}
    for key, value in (
        ("cc:vessel", vessel),
        ("cc:voyage", voyage),
        ("cc:train", train),
        ("cc:truckPlate", truck_plate),
    ):
        if value:
            ext[key] = value
    return ext


def _with(event: builders.Event, transactions: Sequence[Mapping[str, str]]) -> builders.Event:
    if transactions:
        event["bizTransactionList"] = [dict(t) for t in transactions]
    return event


def _custodian(event: builders.Event, party: str | None) -> builders.Event:
    if party:
        event["destinationList"] = [{"type": "possessing_party", "destination": party_uri(party)}]
    return event


def party_uri(party_id: str) -> str:
    """A party's GLN as ``urn:epc:id:pgln:`` when it is a 13-digit GLN (company prefix 7), else a cc URI."""
    if len(party_id) == 13 and party_id.isdigit():
        return f"urn:epc:id:pgln:{party_id[:7]}.{party_id[7:12]}"
    return f"{builders.CC_NAMESPACE}party/{party_id}"


def stuffing(
    *,
    t: datetime,
    container: str,
    units: Sequence[str],
    location: str,
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """Units (SSCCs) packed into the container (AggregationEvent ADD, bizStep loading)."""
    ev = _container_units(t, container, units, "ADD", "loading", read_point=location)
    return builders.with_event_id(_with(ev, transactions))


def unstuffing(*, t: datetime, container: str, units: Sequence[str], location: str) -> builders.Event:
    """Units (SSCCs) taken out of the container (AggregationEvent DELETE, bizStep unloading)."""
    ev = _container_units(
        t, container, units, "DELETE", "unloading", read_point=location, biz_location=location
    )
    return builders.with_event_id(ev)


def _container_units(
    t: datetime,
    container: str,
    units: Sequence[str],
    action: str,
    biz_step: str,
    *,
    read_point: str,
    biz_location: str | None = None,
) -> builders.Event:
    """An AggregationEvent of units (SSCCs) and their container, in progress at `read_point`."""
    return builders.aggregation_event(
        event_time=t,
        action=action,
        parent_id=container_epc(container),
        child_epcs=list(units),
        biz_step=biz_step,
        disposition="in_progress",
        read_point=read_point,
        biz_location=biz_location,
    )


def movement(
    *,
    t: datetime,
    step: str,
    epcs: Sequence[str],
    location: str,
    conveyance_ext: Mapping[str, Any],
    custodian: str | None = None,
    transactions: Sequence[Mapping[str, str]] = (),
    gate: str | None = None,
) -> builders.Event:
    """A departing/arriving/shipping/receiving step of units or a container on a conveyance."""
    ext = dict(conveyance_ext)
    if gate is not None:
        if gate not in GATES:
            raise ValueError(f"gate {gate!r} not one of {sorted(GATES)}")
        ext["cc:gate"] = gate
    ev = builders.object_event(
        event_time=t,
        epcs=list(epcs),
        biz_step=step,
        disposition="in_transit" if step in LEAVING_STEPS else "in_progress",
        read_point=location,
        biz_location=None if step in LEAVING_STEPS else location,
        extensions=ext,
    )
    return builders.with_event_id(_with(_custodian(ev, custodian), transactions))


def gate_event(
    *,
    t: datetime,
    gate: str,
    direction: str,
    epcs: Sequence[str],
    location: str,
    custodian: str | None = None,
) -> builders.Event:
    """Gate in (arriving) or out (departing) at a port terminal, rail station or bonded-zone gate."""
    if gate not in GATES:
        raise ValueError(f"gate {gate!r} not one of {sorted(GATES)}")
    step = {"in": "arriving", "out": "departing"}[direction]
    ev = builders.object_event(
        event_time=t,
        epcs=list(epcs),
        biz_step=step,
        disposition="in_progress" if direction == "in" else "in_transit",
        read_point=location,
        biz_location=location if direction == "in" else None,
        extensions={"cc:gate": gate},
    )
    return builders.with_event_id(_custodian(ev, custodian))


# A geofence crossing's CBV business step and disposition, by direction (one mapping, read everywhere).
GEOFENCE_STEPS = {"enter": "arriving", "exit": "departing"}
GEOFENCE_DISPOSITIONS = {"enter": "in_progress", "exit": "in_transit"}
SUPERSEDES_KEY = "cc:supersedes"


def geofence_event(
    *,
    t: datetime,
    direction: str,
    location: str,
    asset_id: str,
    asset_epc: str | None = None,
    shipment_id: str | None = None,
    transactions: Sequence[Mapping[str, str]] = (),
    lots: Sequence[Mapping[str, Any]] = (),
    supersedes: str | None = None,
) -> builders.Event:
    """An asset entering (bizStep arriving, bizLocation the fence's location) or leaving (departing) a
    location's geofence at device time ``t``: over the asset's EPC, else the shipment's lots
    (quantityList elements), with the shipment's documents as bizTransactions (``biz_transactions``) and
    ``cc:geofence`` (enter|exit), ``cc:asset`` and ``cc:shipment`` (when the asset carries one).
    ``supersedes``: the eventID of the same crossing's event that was declared wrong before (a late position
    moved the crossing away and a later one brought it back), as ``cc:supersedes``, so that the crossing's
    new event is not that one again. ``ValueError`` for another direction, or when there is neither an
    asset EPC nor a lot to report on."""
    if direction not in GEOFENCE_STEPS:
        raise ValueError(f"geofence direction {direction!r} not one of {sorted(GEOFENCE_STEPS)}")
    if asset_epc is None and not lots:
        raise ValueError(f"asset {asset_id} has no EPC and carries no shipment's lots: nothing to report on")
    ext: dict[str, Any] = {"cc:geofence": direction, "cc:asset": asset_id}
    if shipment_id is not None:
        ext["cc:shipment"] = shipment_id
    if supersedes is not None:
        ext[SUPERSEDES_KEY] = supersedes
    ev = builders.object_event(
        event_time=t,
        epcs=None if asset_epc is None else [asset_epc],
        quantities=() if asset_epc is not None else lots,
        biz_step=GEOFENCE_STEPS[direction],
        disposition=GEOFENCE_DISPOSITIONS[direction],
        read_point=location,
        biz_location=location if direction == "enter" else None,
        extensions=ext,
    )
    return builders.with_event_id(_with(ev, transactions))


def bonded(*, t: datetime, lots: Sequence[str], status: str, line: str, location: str) -> builders.Event:
    """First-line entry admission (status bonded, line first) or second-line release (released, second)."""
    if status not in ("bonded", "released", "domestic") or line not in ("first", "second"):
        raise ValueError(f"bad bonded status/line {status!r}/{line!r}")
    ev = builders.object_event(
        event_time=t,
        epcs=[],
        quantities=[builders.quantity(lot) for lot in lots],
        biz_step="entering_exiting",
        disposition="in_progress",
        read_point=location,
        extensions={"cc:bondedStatus": status, "cc:customsLine": line},
    )
    ev.pop("epcList", None)
    return builders.with_event_id(ev)


def inspection(
    *,
    t: datetime,
    epcs: Sequence[str] = (),
    lots: Sequence[str] = (),
    location: str,
    kind: str = "inspection",
    conformant: bool = True,
    quarantine: bool = False,
    result: str | None = None,
) -> builders.Event:
    """An inspection or disinfection record, or a quarantine hold (``quarantine=True``)."""
    if kind not in ("inspection", "disinfection"):
        raise ValueError(f"inspection kind {kind!r}")
    ext: dict[str, Any] = {"cc:inspection": kind}
    if result:
        ext["cc:result"] = result
    ev = builders.object_event(
        event_time=t,
        epcs=list(epcs) if epcs else None,
        quantities=[builders.quantity(lot) for lot in lots],
        biz_step="holding" if quarantine else "inspecting",
        disposition="non_sellable_other"
        if quarantine
        else ("conformant" if conformant else "non_conformant"),
        read_point=location,
        biz_location=location,
        extensions=ext,
    )
    return builders.with_event_id(ev)


# -- the imported cold-chain food flow, per batch ---------------------------------------------------------
DISCHARGE_KEY = "cc:discharge"
INSPECTION_KEY = "cc:inspection"
RESULT_KEY = "cc:result"
CERTIFICATES_KEY = "cc:certificates"
SITE_KEY = "cc:site"
DISINFECTION_REQUIRED_KEY = "cc:disinfectionRequired"
TRACE_CODE_KEY = "cc:traceCode"
GEOFENCE_KEY = "cc:geofence"  # a geofence event's direction (geofence_event)


def _batch(lot: str, quantity: float | None, uom: str | None) -> list[dict[str, Any]]:
    if quantity is not None and quantity <= 0:
        raise ValueError(f"quantity of {lot} must be positive, not {quantity}")
    return [builders.quantity(lot, quantity, uom)]


def _batch_event(
    *,
    t: datetime,
    quantities: list[dict[str, Any]],
    step: str,
    disposition: str,
    location: str,
    extensions: Mapping[str, Any],
    transactions: Sequence[Mapping[str, str]],
    epcs: list[str] | None = None,
    at_location: bool = True,
    no_epc_list: bool = False,
) -> builders.Event:
    """An import-flow ObjectEvent over a batch (quantityList) at `location` (its bizLocation too where
    `at_location`), with its transactions and eventID; `no_epc_list` leaves out an empty epcList."""
    ev = builders.object_event(
        event_time=t,
        epcs=epcs,
        quantities=quantities,
        biz_step=step,
        disposition=disposition,
        read_point=location,
        biz_location=location if at_location else None,
        extensions=dict(extensions),
    )
    if no_epc_list:
        ev.pop("epcList", None)
    return builders.with_event_id(_with(ev, transactions))


def discharge(
    *,
    t: datetime,
    lot: str,
    quantity: float | None = None,
    uom: str | None = None,
    location: str,
    container: str | None = None,
    vessel: str | None = None,
    voyage: str | None = None,
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """The batch discharged at the port (its arrival): bizStep arriving, ``cc:discharge``."""
    ext: dict[str, Any] = {DISCHARGE_KEY: " ".join(v for v in (vessel, voyage) if v) or "port"}
    return _batch_event(
        t=t,
        epcs=[container_epc(container)] if container else [],
        quantities=_batch(lot, quantity, uom),
        step="arriving",
        disposition="in_progress",
        location=location,
        extensions=ext,
        transactions=transactions,
        no_epc_list=not container,
    )


def inspection_result(
    *,
    t: datetime,
    lot: str,
    quantity: float,
    uom: str | None = None,
    conformant: bool,
    certificates: Sequence[str],
    site: str,
    location: str,
    disinfection_required: bool = False,
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """The inspection and quarantine result of a batch: the quantity inspected, its certificates, its site."""
    result = "conformant" if conformant else "non_conformant"
    ext: dict[str, Any] = {
        INSPECTION_KEY: "inspection",
        RESULT_KEY: result,
        CERTIFICATES_KEY: [str(c) for c in certificates],
        SITE_KEY: site,
    }
    if disinfection_required:
        ext[DISINFECTION_REQUIRED_KEY] = True
    return _batch_event(
        t=t,
        quantities=_batch(lot, quantity, uom),
        step="inspecting",
        disposition=result,
        location=location,
        extensions=ext,
        transactions=transactions,
    )


def disinfection(
    *,
    t: datetime,
    lot: str,
    quantity: float | None = None,
    uom: str | None = None,
    site: str,
    location: str,
    certificates: Sequence[str] = (),
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """The disinfection record of a batch (done once, at `site`)."""
    ext: dict[str, Any] = {INSPECTION_KEY: "disinfection", SITE_KEY: site}
    if certificates:
        ext[CERTIFICATES_KEY] = [str(c) for c in certificates]
    return _batch_event(
        t=t,
        quantities=_batch(lot, quantity, uom),
        step="inspecting",
        disposition="conformant",
        location=location,
        extensions=ext,
        transactions=transactions,
    )


def trace_code_issue(
    *,
    t: datetime,
    lot: str,
    code: str,
    site: str,
    location: str,
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """The first receiving site (首站) issuing the batch's trace code, which the public scan page resolves."""
    if not code or not code.isascii() or not all(c.isalnum() or c in "-_." for c in code):
        raise ValueError(f"trace code {code!r}: letters, digits, '-', '_' and '.' only")
    return _batch_event(
        t=t,
        quantities=[builders.quantity(lot)],
        step="commissioning",
        disposition="active",
        location=location,
        extensions={TRACE_CODE_KEY: code, SITE_KEY: site},
        transactions=transactions,
    )


def _customs_line(
    t: datetime,
    lot: str,
    quantity: float,
    uom: str | None,
    status: str,
    line: str,
    location: str,
    transactions: Sequence[Mapping[str, str]],
) -> builders.Event:
    return _batch_event(
        t=t,
        quantities=_batch(lot, quantity, uom),
        step="entering_exiting",
        disposition="in_progress",
        location=location,
        extensions={"cc:bondedStatus": status, "cc:customsLine": line},
        transactions=transactions,
        at_location=False,
    )


def first_line_entry(
    *,
    t: datetime,
    lot: str,
    quantity: float,
    uom: str | None = None,
    location: str,
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """First-line entry of a batch into the bonded zone (status bonded), with the quantity entering."""
    return _customs_line(t, lot, quantity, uom, "bonded", "first", location, transactions)


def second_line_release(
    *,
    t: datetime,
    lot: str,
    quantity: float,
    uom: str | None = None,
    location: str,
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """Second-line release of (part of) a batch to the domestic market (status released), with the quantity
    released: one inspection may cover several partial releases."""
    return _customs_line(t, lot, quantity, uom, "released", "second", location, transactions)


def onward(
    *,
    t: datetime,
    lot: str,
    quantity: float | None = None,
    uom: str | None = None,
    location: str,
    conveyance_ext: Mapping[str, Any],
    transactions: Sequence[Mapping[str, str]] = (),
) -> builders.Event:
    """The batch leaving onward (departing by sea-rail train or truck) after its release."""
    return _batch_event(
        t=t,
        quantities=_batch(lot, quantity, uom),
        step="departing",
        disposition="in_transit",
        location=location,
        extensions=conveyance_ext,
        transactions=transactions,
        at_location=False,
        no_epc_list=True,
    )

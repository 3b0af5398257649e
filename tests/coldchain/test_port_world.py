"""Tests: the port scenario's world and timeline: identifiers, references, geofence crossings, determinism.

Also: wire payloads and the human steps' EPCIS documents validate; seeding registers the shipments.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from stdnum import ean

from coldchain import port_calls
from coldchain.port_demo import (
    handling_document,
    handling_events,
    port_start_ms,
    registry_shipment,
    seed_port,
    step_document,
    step_events,
    unevidenced_leg,
)
from firmware_sim.devices import MINUTE_MS
from firmware_sim.port_scenario import plan_port
from firmware_sim.port_timeline import (
    PORT_SCENARIO_MS,
    RAIL_RUN_MS,
    SILENT_CONTAINER,
    SILENT_CONTAINER_LOT,
    STRANDED_SHIPMENT,
    STRANDED_TRUCK,
    port_timeline,
)
from firmware_sim.port_world import (
    COLD_STORE_OP,
    CQ_COLD_STORE,
    CQ_IMPORTER,
    DURIAN_CONTAINER,
    DURIAN_CONTAINER_RC,
    DURIAN_LOT,
    DURIAN_RAIL_UNIT,
    DURIAN_TRUCK_RC,
    NN_MARKET,
    QZ_COLD_STORE,
    QZ_RAIL,
    RAIL_CARRIER,
    SEAFOOD_TRUCK_RC,
    SHRIMP_LOT,
    SQUID_LOT,
    TH_SHIPMENT,
    Geofence,
    port_world,
)
from registry.shipments import check_shipment
from rules.engine import flow
from traceability.epcis import multimodal
from traceability.epcis.builders import parse_time
from traceability.epcis.validation import validate
from traceability.ledger import import_steps

S_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "gateway" / "schema"
WORLD = port_world()
TIMELINE = port_timeline()


# ---- an oracle of the geometry, independent of the rules stage's ---------------------------------


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(h))


def _inside(fence: Geofence, lat: float, lon: float) -> bool:
    if fence.shape == "circle":
        assert fence.center_lat is not None
        assert fence.center_lon is not None
        assert fence.radius_m is not None
        return _metres(fence.center_lat, fence.center_lon, lat, lon) <= fence.radius_m
    assert fence.polygon is not None
    ring, inside = fence.polygon, False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _positions(start_ms: int) -> dict[str, list[tuple[int, float, float]]]:
    """(t, lat, lon) per device, from the planned telemetry payloads."""
    fixes: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for pub in plan_port(start_ms):
        if pub.kind != "telemetry":
            continue
        doc = json.loads(pub.payload)
        for r in doc["readings"]:
            if r["ch"] in ("lat", "lon"):
                fixes[doc["device"]][r["t"]][r["ch"]] = r["v"]
    return {d: [(t, p["lat"], p["lon"]) for t, p in sorted(by_t.items())] for d, by_t in fixes.items()}


# ---- identifiers and references ------------------------------------------------------------------


def test_containers_have_valid_iso6346_numbers_kept_on_every_leg() -> None:
    containers = [a for a in WORLD.base.assets if a.kind == "reefer_container"]
    assert len(containers) == 2
    for asset in containers:
        assert multimodal.container_number(asset.asset_id) == asset.asset_id
        assert asset.epc == multimodal.container_epc(asset.asset_id)
    numbers = {leg.container_number for s in WORLD.shipments for leg in s.legs if leg.container_number}
    assert numbers == {a.asset_id for a in containers}
    # One container from origin to the train (一箱到底): the durian's sea and rail legs name the same box.
    th = next(s for s in WORLD.shipments if s.shipment_id == TH_SHIPMENT)
    assert {leg.mode: leg.container_number for leg in th.legs if leg.container_number} == {
        "sea": DURIAN_CONTAINER,
        "rail": DURIAN_CONTAINER,
    }
    with pytest.raises(ValueError, match="ISO 6346"):
        multimodal.container_number(DURIAN_CONTAINER[:-1] + "9")


def test_lots_are_lgtins_of_their_gtin_and_batch() -> None:
    for lot in WORLD.base.lots:
        assert ean.is_valid(lot.gtin), lot.gtin
        prefix, ref, batch = lot.lot_id.removeprefix("urn:epc:class:lgtin:").split(".")
        assert lot.gtin == ref[0] + prefix + ref[1:] + lot.gtin[-1]
        assert batch == lot.batch
        assert lot.origin_country in ("TH", "VN")
        assert lot.bonded_status == "bonded"


def test_parties_are_glns_with_their_check_digit() -> None:
    # A party named as a possessing party (urn:epc:id:pgln) maps back to its GLN only with a valid check
    # digit: the ledger's custody legs name the custodian so.
    for party in WORLD.base.parties:
        assert ean.is_valid(party.party_id), party.party_id


def test_every_reference_resolves() -> None:
    parties = {p.party_id: p.role for p in WORLD.base.parties}
    locations = {x.location_id for x in WORLD.base.locations}
    assets = {a.asset_id for a in WORLD.base.assets}
    lots = {lot.lot_id for lot in WORLD.base.lots}
    assert {x.party_id for x in WORLD.base.locations} - {None} <= set(parties)
    assert {a.operator_party_id for a in WORLD.base.assets} <= set(parties)
    assert {lot.owner_party_id for lot in WORLD.base.lots} <= set(parties)
    assert {g.location_id for g in WORLD.geofences} == locations, "every location has a geofence"
    roles = {"shipper", "receiver", "carrier", "cold_store", "port", "customs"}
    assert set(parties.values()) == roles
    for s in WORLD.shipments:
        assert {s.shipper_party_id, s.consignee_party_id} <= set(parties)
        assert {s.origin_location_id, s.destination_location_id, *s.stops} <= locations
        assert {lot.lot_id for lot in s.lots} <= lots
        for leg in s.legs:
            assert parties[leg.carrier_party_id] in ("carrier", "cold_store")
            assert {leg.from_location_id, leg.to_location_id} <= locations
            assert leg.asset_id is None or leg.asset_id in assets
        check_shipment(registry_shipment(s, S_MS))  # the registry's own check of legs, lots, windows
    for step in TIMELINE.steps:
        assert step.location_id in locations
        assert step.asset_id is None or step.asset_id in assets
        assert {lot.lot_id for lot in step.lots} <= lots
    for h in TIMELINE.handlings:
        assert h.location_id in locations
        assert h.container in assets
        assert h.lot.lot_id in lots
        assert h.custodian is None or h.custodian in parties
    assert {t.asset_id for t in TIMELINE.tracks} <= assets
    assert {t.device_id for t in TIMELINE.tracks} == {d.device_id for d in WORLD.base.devices}
    # Both modes of the onward journey, and the three documents a through document links.
    modes = {leg.mode for s in WORLD.shipments for leg in s.legs}
    assert modes == {"sea", "cold_store", "rail", "road"}
    th = next(s for s in WORLD.shipments if s.shipment_id == TH_SHIPMENT)
    assert th.bill_of_lading
    assert th.rail_waybill
    assert th.road_waybill


# ---- the tracks and the geofences ----------------------------------------------------------------


def test_tracks_cross_exactly_the_declared_geofences_in_order() -> None:
    asset_of = {t.device_id: t.asset_id for t in TIMELINE.tracks}
    crossed: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for device, fixes in _positions(S_MS).items():
        for fence in WORLD.geofences:
            states = [_inside(fence, lat, lon) for _, lat, lon in fixes]
            assert not states[0], f"{device} starts inside {fence.location_id}: no crossing to see"
            crossed[asset_of[device]] += [
                (t, fence.location_id, "enter" if now else "exit")
                for (t, _, _), was, now in zip(fixes[1:], states[:-1], states[1:], strict=True)
                if was != now
            ]
    declared: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for c in TIMELINE.crossings:
        declared[c.asset_id].append((c.location_id, c.direction))
    assert {a: [(loc, d) for _, loc, d in sorted(seen)] for a, seen in crossed.items()} == declared
    assert len(TIMELINE.crossings) == 31


def test_the_faults_are_where_the_scenario_says() -> None:
    fixes = _positions(S_MS)
    fences = {g.location_id: g for g in WORLD.geofences}
    silent = next(t for t in TIMELINE.tracks if t.silent_from_offset_ms is not None)
    assert silent.device_id == DURIAN_CONTAINER_RC
    assert silent.silent_from_offset_ms is not None
    t_last, lat, lon = fixes[DURIAN_CONTAINER_RC][-1]
    assert t_last == S_MS + silent.silent_from_offset_ms - MINUTE_MS, "telemetry stops, nothing after"
    assert _inside(fences[QZ_RAIL], lat, lon), "the container falls silent in the rail yard"
    rail_departure = next(s for s in TIMELINE.steps if s.kind == "departure" and s.mode == "rail")
    assert rail_departure.t_offset_ms > silent.silent_from_offset_ms, "the train leaves after it fell silent"
    _, lat, lon = fixes[SEAFOOD_TRUCK_RC][-1]
    assert not _inside(fences[NN_MARKET], lat, lon), "one truck's track ends outside the market's fence"
    _, lat, lon = fixes[DURIAN_TRUCK_RC][-1]
    assert _inside(fences[NN_MARKET], lat, lon), "the other reaches it"


def test_the_plan_is_one_run_shifted_in_time() -> None:
    def relative(start: int) -> list[tuple[int, str, Any]]:
        out = []
        for p in plan_port(start):
            doc = json.loads(p.payload)
            for r in doc.get("readings", []):
                r["t"] -= start
            if "t" in doc:
                doc["t"] -= start
            out.append((p.t_ms - start, p.topic, doc))
        return out

    first = relative(S_MS)
    assert first == relative(S_MS + 7 * 86_400_000 + 13 * MINUTE_MS)
    assert plan_port(S_MS) == plan_port(S_MS), "pure"
    assert [t for t, _, _ in first] == sorted(t for t, _, _ in first)
    assert max(t for t, _, _ in first) == PORT_SCENARIO_MS


def test_every_payload_validates_against_the_wire_schema() -> None:
    validators = {
        kind: jsonschema.Draft202012Validator(
            json.loads((SCHEMA_DIR / f"{kind}.v1.json").read_text()),
            format_checker=jsonschema.FormatChecker(),
        )
        for kind in ("telemetry", "status")
    }
    pubs = plan_port(S_MS)
    for p in pubs:
        doc = json.loads(p.payload)
        validators[p.topic.rsplit("/", 1)[1]].validate(doc)
        assert doc["device"] == p.topic.split("/")[3] == p.client_id
    channels = {r["ch"] for p in pubs if p.kind == "telemetry" for r in json.loads(p.payload)["readings"]}
    assert {"temp:1", "temp:2", "lat", "lon"} <= channels
    # seq runs on without a gap per device: what the gateway counts as received is everything sent.
    seqs: dict[str, int] = {}
    for p in pubs:
        if p.kind == "telemetry":
            doc = json.loads(p.payload)
            assert doc["seq"] == seqs.get(doc["device"], 0)
            seqs[doc["device"]] = doc["seq"] + len(doc["readings"])


# ---- the human steps as EPCIS --------------------------------------------------------------------


def test_every_step_is_a_valid_epcis_document_one_event_per_batch() -> None:
    through = {s.shipment_id: multimodal.document_uri("through", s.through_document) for s in WORLD.shipments}
    kinds = []
    for step in TIMELINE.steps:
        doc = step_document(WORLD, step, S_MS)
        validate(doc)
        events = doc["epcisBody"]["eventList"]
        assert len(events) == len(step.lots), "one event per batch"
        for event, lot in zip(events, step.lots, strict=True):
            validate({**event, "@context": doc["@context"]})
            assert event["eventTime"].startswith("2026-01-01T")
            assert event["eventID"].startswith("ni:///sha-256;")
            (q,) = event["quantityList"]
            assert q["epcClass"] == lot.lot_id
            if step.kind != "trace_code":  # the code names the batch, not an amount of it
                assert (q["quantity"], q["uom"]) == (lot.quantity, "KGM")
            # The steps on a conveyance name the shipment's through document (and the B/L or waybill).
            txns = {(x["type"], x["bizTransaction"]) for x in event.get("bizTransactionList", ())}
            named = (multimodal.BTT_THROUGH_DOCUMENT, through[step.shipment_id]) in txns
            assert named is (step.kind in ("discharge", "departure"))
        kinds.append(step.kind)
    assert kinds.count("inspection") == 2
    assert kinds.count("disinfection") == 1
    assert kinds.count("trace_code") == 1
    assert [s.mode for s in TIMELINE.steps if s.kind == "departure"] == ["road", "road", "rail"]
    assert [s.t_offset_ms for s in TIMELINE.steps] == sorted(s.t_offset_ms for s in TIMELINE.steps)
    # The one disinfection is the one an inspection result asked for.
    asked = [s.lots[0].lot_id for s in TIMELINE.steps if s.kind == "inspection" and s.disinfection_required]
    assert asked == [s.lots[0].lot_id for s in TIMELINE.steps if s.kind == "disinfection"] == [SHRIMP_LOT]


def test_the_durian_unit_goes_on_in_its_silent_container_to_the_destination() -> None:
    """The durian's first release, one unit (SSCC) in its container: stuffed and shipped at the cold store,
    on the train after the container fell silent, arriving at and received by the Chongqing cold store, the
    shipment's destination, after the port's window: each a valid EPCIS document naming the through
    document (and the rail waybill on the train)."""
    silent = next(t for t in TIMELINE.tracks if t.silent_from_offset_ms is not None)
    assert silent.silent_from_offset_ms is not None
    th = next(s for s in WORLD.shipments if s.shipment_id == TH_SHIPMENT)
    through = multimodal.document_uri("through", th.through_document)
    rail = multimodal.document_uri("waybill", th.rail_waybill or "")
    seen = []
    for h in TIMELINE.handlings:
        doc = handling_document(WORLD, h, S_MS)
        validate(doc)
        events = doc["epcisBody"]["eventList"]
        for event in events:
            validate({**event, "@context": doc["@context"]})
        last = events[-1]
        txns = {x["bizTransaction"] for x in last.get("bizTransactionList", ())}
        assert through in txns
        assert (rail in txns) is (h.mode == "rail")
        seen.append((h.kind, h.location_id, h.custodian, h.t_offset_ms > PORT_SCENARIO_MS))
    assert seen == [
        ("stuffing", QZ_COLD_STORE, None, False),
        ("shipping", QZ_COLD_STORE, COLD_STORE_OP, False),
        ("departing", QZ_RAIL, RAIL_CARRIER, False),
        ("arriving", CQ_COLD_STORE, RAIL_CARRIER, True),
        ("receiving", CQ_COLD_STORE, CQ_IMPORTER, True),
    ]
    offsets = [h.t_offset_ms for h in TIMELINE.handlings]
    assert offsets == sorted(offsets)
    departing, arriving = TIMELINE.handlings[2], TIMELINE.handlings[3]
    assert departing.t_offset_ms > silent.silent_from_offset_ms, "the unit leaves after the silence"
    assert arriving.t_offset_ms - departing.t_offset_ms == RAIL_RUN_MS
    assert th.destination_location_id == CQ_COLD_STORE
    # The stuffing packs the batch into the unit, then the unit into the container.
    packed, stuffed = handling_events(WORLD, TIMELINE.handlings[0], S_MS)
    assert (packed["parentID"], packed["childQuantityList"]) == (
        DURIAN_RAIL_UNIT,
        [{"epcClass": DURIAN_LOT, "quantity": 12_000.0, "uom": "KGM"}],
    )
    assert (stuffed["parentID"], stuffed["childEPCs"]) == (
        multimodal.container_epc(DURIAN_CONTAINER),
        [DURIAN_RAIL_UNIT],
    )
    # The custodian rides as the possessing party, a GLN the ledger maps back.
    (received,) = handling_events(WORLD, TIMELINE.handlings[-1], S_MS)
    assert received["destinationList"] == [
        {"type": "possessing_party", "destination": multimodal.party_uri(CQ_IMPORTER)}
    ]


def test_the_faults_the_summary_names_are_the_tracks_that_play_them() -> None:
    (silent,) = (t for t in TIMELINE.tracks if t.silent_from_offset_ms is not None)
    assert (silent.asset_id, SILENT_CONTAINER_LOT) == (SILENT_CONTAINER, DURIAN_LOT)
    assert {h.container for h in TIMELINE.handlings} == {SILENT_CONTAINER}
    (stranded,) = (t for t in TIMELINE.tracks if t.asset_id == STRANDED_TRUCK)
    shipment = next(s for s in WORLD.shipments if s.shipment_id == STRANDED_SHIPMENT)
    assert STRANDED_TRUCK in {leg.asset_id for leg in shipment.legs}
    fence = next(g for g in WORLD.geofences if g.location_id == shipment.destination_location_id)
    end = stranded.fixes[-1].at
    assert not _inside(fence, end.lat, end.lon), "the truck's track ends outside its destination's fence"


def test_the_scenario_starts_early_enough_that_all_it_records_is_past() -> None:
    now = S_MS + 123_456
    start = port_start_ms(now)
    assert start % MINUTE_MS == 0
    last = max(h.t_offset_ms for h in TIMELINE.handlings)
    assert now - 20 * MINUTE_MS <= start + last <= now - 10 * MINUTE_MS


def test_unevidenced_leg_is_the_first_broken_leg_of_the_asset_after_its_last_reading() -> None:
    def leg(asset: str | None, start: str, kinds: list[str], where: str = QZ_RAIL) -> dict[str, Any]:
        return {
            "asset": None if asset is None else {"asset_id": asset},
            "location": {"location_id": where},
            "t_start": start,
            "t_end": None,
            "chain_breaks": [{"kind": k} for k in kinds],
        }

    trace = {
        "custody": [
            leg(DURIAN_CONTAINER, "2026-01-01T05:00:00Z", ["gap"], QZ_COLD_STORE),  # before the silence
            leg(None, "2026-01-01T07:00:00Z", ["handoff"]),  # another asset's
            leg(DURIAN_CONTAINER, "2026-01-01T07:00:00Z", []),  # no break
            leg(DURIAN_CONTAINER, "2026-01-01T08:00:00Z", ["handoff"]),
        ]
    }
    found = unevidenced_leg(trace, DURIAN_CONTAINER, "2026-01-01T06:00:00+00:00")
    assert found == {
        "leg_location": QZ_RAIL,
        "leg_start": "2026-01-01T08:00:00Z",
        "leg_end": None,
        "chain_break_kind": "handoff",
    }
    nothing = dict.fromkeys(("leg_location", "leg_start", "leg_end", "chain_break_kind"))
    assert unevidenced_leg(trace, DURIAN_CONTAINER, "2026-01-01T09:00:00+00:00") == nothing
    assert unevidenced_leg(None, DURIAN_CONTAINER, "2026-01-01T06:00:00+00:00") == nothing
    assert unevidenced_leg(trace, DURIAN_CONTAINER, None) == nothing


def _served(releases: list[flow.Release]) -> dict[str, Any]:
    """A trace as the API serves it, with these releases in its import flow."""
    return {
        "import_flow": {
            "releases": [
                {
                    "quantity": r.quantity,
                    "released_total": r.released_total,
                    "inspected": r.inspected,
                    "remaining": r.remaining,
                }
                for r in releases
            ]
        }
    }


def test_the_import_flow_as_scheduled_one_release_without_inspection_and_two_parts_that_add_up() -> None:
    rows = []
    for step in TIMELINE.steps:
        for event in step_events(WORLD, step, S_MS):
            rows += import_steps.import_steps(len(rows) + 1, parse_time(event["eventTime"]), event)
    steps: dict[str, list[flow.FlowStep]] = defaultdict(list)
    for lot, step, seq, t, quantity, uom, conformant, site, certs, code, required in rows:
        steps[lot].append(
            flow.FlowStep(
                step, seq, t, quantity, uom, conformant, site, tuple(certs or ()), code, bool(required)
            )
        )
    checked = {lot: flow.check(s) for lot, s in steps.items()}
    traces = {lot: _served(list(c.releases)) for lot, c in checked.items()}
    assert port_calls.partial_releases(traces) == {
        DURIAN_LOT: {"inspected": 18_000.0, "released": [12_000.0, 6_000.0], "remaining": 0.0}
    }
    flagged = {lot for lot, c in checked.items() for v in c.violations}
    assert {v.violation for v in checked[SQUID_LOT].violations} == {flow.RELEASE_WITHOUT_INSPECTION}
    assert flagged == {SQUID_LOT}, "the fault: one release with no inspection"


def test_partial_releases_are_the_flow_checks() -> None:
    t = parse_time("2026-01-01T00:00:00Z")
    later = parse_time("2026-01-01T01:00:00Z")
    inspected = [flow.FlowStep(flow.INSPECTION, 1, t, 100.0, "KGM", conformant=True)]
    rejected = [flow.FlowStep(flow.INSPECTION, 1, t, 10.0, "KGM", conformant=False)]
    twice = [
        flow.FlowStep(flow.RELEASE, 5, later, 30.0, "KGM"),
        flow.FlowStep(flow.RELEASE, 6, later, 50.0, "KGM"),
    ]
    once = [flow.FlowStep(flow.RELEASE, 2, later, 10.0, "KGM")]
    checks = {
        "L": flow.check(inspected + twice),
        "M": flow.check(once),
        "N": flow.check(rejected + twice),
        # The latest conformant inspection covers the releases after it, not the sum of all of them.
        "R": flow.check(
            [*inspected, flow.FlowStep(flow.INSPECTION, 4, t, 100.0, "KGM", conformant=True), *twice]
        ),
    }
    traces: dict[str, dict[str, Any] | None] = {lot: _served(list(c.releases)) for lot, c in checks.items()}
    traces["X"] = None  # a trace not served
    assert port_calls.partial_releases(traces) == {
        "L": {"inspected": 100.0, "released": [30.0, 50.0], "remaining": 20.0},
        "N": {"inspected": None, "released": [30.0, 50.0], "remaining": None},
        "R": {"inspected": 100.0, "released": [30.0, 50.0], "remaining": 20.0},
    }


# ---- seeding -------------------------------------------------------------------------------------


def test_seed_registers_the_world_its_geofences_and_both_shipments(db_url: str) -> None:
    start_ms = seed_port(db_url, WORLD, now_ms=S_MS + 9 * 3_600_000)
    with psycopg.connect(db_url) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM shipment), (SELECT count(*) FROM shipment_leg),"
            " (SELECT count(*) FROM shipment_lot), (SELECT count(*) FROM geofence),"
            " (SELECT count(*) FROM device_mount),"
            " (SELECT count(*) FROM lot WHERE owner_party_id IS NOT NULL)"
        ).fetchone()
        assert counts == (2, 7, 3, len(WORLD.geofences), len(TIMELINE.tracks), 3)
        # The registry's one mapping from an asset to its shipment: the box at sea, then on the train.
        of_asset = "SELECT shipment_of_asset(%s, to_timestamp(%s / 1000.0))"
        at_sea, on_train = (
            conn.execute(of_asset, (DURIAN_CONTAINER, t)).fetchone()
            for t in (start_ms + 30 * MINUTE_MS, start_ms + 7 * 3_600_000)
        )
        assert at_sea == on_train == (TH_SHIPMENT,)
        # Seeding twice keeps what is there (the registry's writes keep existing keys).
        seed_port(db_url, WORLD, now_ms=S_MS + 9 * 3_600_000)
        assert conn.execute("SELECT count(*) FROM shipment").fetchone() == (2,)

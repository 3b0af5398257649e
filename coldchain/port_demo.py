"""Composition root: the port scenario: seeded, its devices played over MQTT, its human steps captured."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from psycopg import sql

from coldchain import port_calls
from coldchain.runtime import Services, api_options, gateway_limits
from coldchain.seed import SCENARIO_LEAD_MS, register_world, scenario_start_ms
from coldchain.settings import BrokerAddress, Settings

if TYPE_CHECKING:
    from firmware_sim.port_timeline import Handling, Step
    from firmware_sim.port_world import PortWorld, Shipment

Progress = Callable[[str], None]

# Scenario seconds per wall-clock second: the port's 9 h in about 36 s.
PORT_SPEEDUP = 900.0
# Wall seconds the stages get to settle after the devices are done, and the capture jobs to finish.
SETTLE_TIMEOUT_S = 120.0
CAPTURE_POLL_S = 0.1  # between two looks at a capture job still running
MINUTE_MS = 60_000


def geofence_counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """The geofence events the ledger holds and has not declared wrong, and the crossings (asset, fence,
    direction, device time) they name: equal when each crossing is in the ledger once."""
    from traceability.geofence_ledger import live_events

    live = live_events(conn)
    named = {(e["cc:asset"], e["readPoint"]["id"], e["cc:geofence"], e["eventTime"]) for e in live}
    return len(live), len(named)


FLOW_VIOLATIONS = "SELECT count(*) FROM chain_break WHERE kind = 'flow'"
FLOW_LOTS = "SELECT DISTINCT lot_id FROM chain_break WHERE kind = 'flow' ORDER BY 1"
# What shows the faults: a device's last reading (whether an asset's track entered a location's geofence is
# read from the live geofence events, `entered`).
LAST_READING = "SELECT max(r.time) FROM reading r JOIN series s USING (series_id) WHERE s.device_id = %s"


def _ts(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def port_start_ms(now_ms: int | None = None) -> int:
    """The port scenario's start, epoch ms: early enough that the last thing it records (the destination's
    receiving, a day and more after the port's window) is past, as the default demo's end is."""
    from firmware_sim.port_timeline import port_timeline

    last = max(h.t_offset_ms for h in port_timeline().handlings)
    return scenario_start_ms(now_ms) - ((last - SCENARIO_LEAD_MS) // MINUTE_MS + 10) * MINUTE_MS


def seed_port(database_url: str, world: PortWorld, *, now_ms: int | None = None) -> int:
    """Register the port world, its geofences and its two shipments; return the scenario start, epoch ms."""
    from registry import models
    from registry.shipments import add_shipment, upsert_geofences

    start_ms = port_start_ms(now_ms)
    with psycopg.connect(database_url) as conn:
        register_world(conn, world.base, start_ms=start_ms)
        upsert_geofences(conn, (models.Geofence(**asdict(g)) for g in world.geofences))
        for shipment in world.shipments:
            add_shipment(conn, registry_shipment(shipment, start_ms))
        conn.commit()
    return start_ms


def registry_shipment(shipment: Shipment, start_ms: int) -> Any:
    """The registry's record of a scenario shipment, its planned times made absolute."""
    from registry import models

    legs = tuple(
        models.ShipmentLeg(
            leg_no=leg.leg_no,
            mode=leg.mode,
            carrier_party_id=leg.carrier_party_id,
            asset_id=leg.asset_id,
            container_number=leg.container_number,
            vessel=leg.vessel,
            voyage=leg.voyage,
            train=leg.train,
            truck_plate=leg.truck_plate,
            from_location_id=leg.from_location_id,
            to_location_id=leg.to_location_id,
            planned_start=_ts(start_ms + leg.planned_start_offset_ms),
            planned_end=_ts(start_ms + leg.planned_end_offset_ms),
        )
        for leg in shipment.legs
    )
    return models.Shipment(
        shipment_id=shipment.shipment_id,
        through_document=shipment.through_document,
        bill_of_lading=shipment.bill_of_lading,
        rail_waybill=shipment.rail_waybill,
        road_waybill=shipment.road_waybill,
        shipper_party_id=shipment.shipper_party_id,
        consignee_party_id=shipment.consignee_party_id,
        product_class=shipment.product_class,
        origin_location_id=shipment.origin_location_id,
        destination_location_id=shipment.destination_location_id,
        planned_start=_ts(start_ms + shipment.planned_start_offset_ms),
        planned_end=_ts(start_ms + shipment.planned_end_offset_ms),
        legs=legs,
        stops=shipment.stops,
        lots=tuple(models.ShipmentLot(lot.lot_id, lot.quantity, lot.uom) for lot in shipment.lots),
        source="seed",
    )


def step_events(world: PortWorld, step: Step, start_ms: int) -> list[dict[str, Any]]:
    """The EPCIS events a port, customs or cold-store system records for a human step: one per batch."""
    from traceability.epcis import multimodal

    shipment = next(s for s in world.shipments if s.shipment_id == step.shipment_id)
    site = next(x.name for x in world.base.locations if x.location_id == step.location_id)
    t = _ts(start_ms + step.t_offset_ms)
    where = step.location_id
    if step.kind == "departure":
        assert step.mode is not None
        rail = step.mode == "rail"
        conveyance = multimodal.conveyance(step.mode, train=step.train, truck_plate=step.truck_plate)
        txns = port_calls.transactions(
            shipment.through_document,
            rail_waybill=shipment.rail_waybill if rail else None,
            road_waybill=None if rail else shipment.road_waybill,
        )
        return [
            multimodal.onward(
                t=t, lot=lot.lot_id, quantity=lot.quantity, uom=lot.uom, location=where,
                conveyance_ext=conveyance, transactions=txns,
            )
            for lot in step.lots
        ]  # fmt: skip
    (lot,) = step.lots
    q, uom = lot.quantity, lot.uom
    if step.kind == "discharge":
        txns = port_calls.transactions(shipment.through_document, bill_of_lading=shipment.bill_of_lading)
        event = multimodal.discharge(
            t=t,
            lot=lot.lot_id,
            quantity=q,
            uom=uom,
            location=where,
            container=step.asset_id,
            vessel=step.vessel,
            voyage=step.voyage,
            transactions=txns,
        )
    elif step.kind == "inspection":
        event = multimodal.inspection_result(
            t=t,
            lot=lot.lot_id,
            quantity=q,
            uom=uom,
            location=where,
            conformant=step.conformant,
            certificates=step.certificates,
            site=site,
            disinfection_required=step.disinfection_required,
        )
    elif step.kind == "disinfection":
        event = multimodal.disinfection(
            t=t,
            lot=lot.lot_id,
            quantity=q,
            uom=uom,
            location=where,
            site=site,
            certificates=step.certificates,
        )
    elif step.kind == "bonded_entry":
        event = multimodal.first_line_entry(t=t, lot=lot.lot_id, quantity=q, uom=uom, location=where)
    elif step.kind == "release":
        event = multimodal.second_line_release(t=t, lot=lot.lot_id, quantity=q, uom=uom, location=where)
    else:
        assert step.kind == "trace_code"
        assert step.trace_code is not None
        event = multimodal.trace_code_issue(
            t=t, lot=lot.lot_id, code=step.trace_code, site=site, location=where
        )
    return [event]


def handling_events(world: PortWorld, handling: Handling, start_ms: int) -> list[dict[str, Any]]:
    """The EPCIS events a cold store's, railway's or destination's system records for a unit's handling."""
    from traceability.epcis import builders, multimodal

    shipment = next(s for s in world.shipments if s.shipment_id == handling.shipment_id)
    t = _ts(start_ms + handling.t_offset_ms)
    where = handling.location_id
    lot = handling.lot
    if handling.kind == "stuffing":
        packed = builders.aggregation_event(
            event_time=t,
            action="ADD",
            parent_id=handling.unit,
            child_quantities=[{"epcClass": lot.lot_id, "quantity": lot.quantity, "uom": lot.uom}],
            biz_step="packing",
            disposition="in_progress",
            read_point=where,
        )
        txns = port_calls.transactions(shipment.through_document)
        stuffed = multimodal.stuffing(
            t=t, container=handling.container, units=[handling.unit], location=where, transactions=txns
        )
        return [builders.with_event_id(packed), stuffed]
    rail = handling.mode == "rail"
    txns = port_calls.transactions(
        shipment.through_document, rail_waybill=shipment.rail_waybill if rail else None
    )
    conveyance = (
        multimodal.conveyance(handling.mode, train=handling.train) if handling.mode is not None else {}
    )
    return [
        multimodal.movement(
            t=t,
            step=handling.kind,
            epcs=[handling.unit],
            location=where,
            conveyance_ext=conveyance,
            custodian=handling.custodian,
            transactions=txns,
        )
    ]


def handling_document(world: PortWorld, handling: Handling, start_ms: int) -> dict[str, Any]:
    """The EPCISDocument a system posts to the capture endpoint for one handling of a unit."""
    from traceability.epcis import builders

    events = handling_events(world, handling, start_ms)
    return builders.document(events, creation_date=_ts(start_ms + handling.t_offset_ms))


def step_document(world: PortWorld, step: Step, start_ms: int) -> dict[str, Any]:
    """The EPCISDocument a system posts to the capture endpoint for one human step."""
    from traceability.epcis import builders

    events = step_events(world, step, start_ms)
    return builders.document(events, creation_date=_ts(start_ms + step.t_offset_ms))


class CaptureError(RuntimeError):
    """The capture endpoint refused a document of the port scenario, or its job failed."""


class Capturer:
    """Posts documents to the API's capture endpoint as a port system would, and waits for the jobs."""

    def __init__(self, api_url: str, key: str) -> None:
        self._client = httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=30)
        self._jobs: list[tuple[str, str]] = []  # (what, job location)
        self._lock = threading.Lock()

    def capture(self, what: str, document: Mapping[str, Any]) -> None:
        response = self._client.post(
            "/epcis/capture", json=document, headers={"Content-Type": "application/ld+json"}
        )
        if response.status_code != 202:
            raise CaptureError(f"{what}: capture refused, HTTP {response.status_code}: {response.text[:300]}")
        with self._lock:
            self._jobs.append((what, response.headers["Location"]))

    def wait(self, timeout_s: float) -> int:
        """Wait until every job is done; the number of events captured. ``CaptureError`` on a failed job."""
        deadline = time.monotonic() + timeout_s
        events = 0
        for what, location in self._jobs:
            while True:
                job = self._client.get(location).json()
                if not job.get("running", True):
                    break
                if time.monotonic() > deadline:
                    raise CaptureError(f"{what}: capture job {location} still running after {timeout_s:g} s")
                time.sleep(CAPTURE_POLL_S)
            if not job.get("success"):
                raise CaptureError(f"{what}: capture job failed: {job.get('errors')}")
            events += int(job.get("events") or 0)
        return events

    def close(self) -> None:
        self._client.close()


def run_port_scenario(
    database_url: str,
    broker: BrokerAddress,
    *,
    speedup: float = PORT_SPEEDUP,
    progress: Progress | None = None,
    api_host: str = "127.0.0.1",
    api_port: int = 0,
    checkpoint_key: Path | None = None,
    stage_brokers: Mapping[str, BrokerAddress] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Seed the port world, run every stage, play the devices while capturing the human steps through the
    API, wait until the stages settle, summarise (as ``coldchain.demo.run_scenario`` for the default)."""
    from firmware_sim.port_scenario import run_port
    from firmware_sim.port_timeline import PORT_SCENARIO_MS, port_timeline
    from firmware_sim.port_world import port_world
    from traceability.api.auth import create_key

    say = progress or (lambda _msg: None)
    logins = dict(stage_brokers or {})
    world = port_world()
    timeline = port_timeline()
    steps = timeline.steps
    handlings = timeline.handlings
    start_ms = seed_port(database_url, world)
    with psycopg.connect(database_url) as conn:
        capture_key = create_key(conn, "capture", "Qinzhou port community system")
        conn.commit()
    services = Services(
        database_url,
        broker,
        api_host=api_host,
        api_port=api_port,
        checkpoint_key=checkpoint_key,
        stage_brokers=logins,
        gateway_limits=gateway_limits(settings) if settings else None,
        api_options=api_options(settings) if settings else None,
    )
    services.start()
    capturer = Capturer(services.api_url, capture_key)
    try:
        say(f"stages running; API on {services.api_url}; broker {broker.url()}")

        def on_step(index: int) -> None:
            step = steps[index]
            capturer.capture(f"{step.kind} {step.shipment_id}", step_document(world, step, start_ms))
            say(f"port system: {step.kind} of {', '.join(lot.lot_id for lot in step.lots)} captured")

        def on_handling(index: int) -> None:
            h = handlings[index]
            capturer.capture(f"{h.kind} {h.unit}", handling_document(world, h, start_ms))
            say(f"logistics system: {h.kind} of {h.unit} at {h.location_id} captured")

        simulator = logins.get("simulator", broker)
        report = run_port(
            simulator.host,
            simulator.port,
            start_ms=start_ms,
            speedup=speedup,
            on_step=on_step,
            on_handling=on_handling,
            on_progress=say,
            username=simulator.username,
            password=simulator.password.get_secret_value() if simulator.password else None,
            mqtt5=simulator.mqtt5,
        )
        # The destination's system records what happened after the port's window: the train's arrival.
        for h in handlings:
            if h.t_offset_ms > PORT_SCENARIO_MS:
                capturer.capture(f"{h.kind} {h.unit}", handling_document(world, h, start_ms))
                say(f"destination system: {h.kind} of {h.unit} at {h.location_id} captured")
        captured = capturer.wait(SETTLE_TIMEOUT_S)
        say(f"devices done, {captured} events captured; waiting for the stages to settle")
        if not services.wait_settled(timeout_s=SETTLE_TIMEOUT_S):
            raise RuntimeError(f"the stages did not settle within {SETTLE_TIMEOUT_S:g} s")
        if checkpoint_key is not None:
            from traceability.ledger.checkpoint import CheckpointWorker

            CheckpointWorker(database_url, checkpoint_key).run_once()
        summary = summarize_port(database_url, services.api_url, world, checkpoint_key=checkpoint_key)
        summary["captured_events"] = captured
        summary["sent"] = asdict(report)
        return summary
    finally:
        capturer.close()
        services.stop()


def summarize_port(
    database_url: str, api_url: str, world: PortWorld, *, checkpoint_key: Path | None = None
) -> dict[str, Any]:
    """What the port scenario left: shipments (as the API serves them), geofence events, flow violations,
    partial releases, the trace code and its scan page, the ledger's verification, each lot's trace, and
    what shows each of the three faults."""
    from firmware_sim.port_timeline import (
        SILENT_CONTAINER,
        SILENT_CONTAINER_LOT,
        STRANDED_SHIPMENT,
        STRANDED_TRUCK,
        port_timeline,
    )
    from traceability.api.auth import create_key
    from traceability.geofence_ledger import live_events
    from traceability.ledger.checkpoint import latest, own_log, pinned_key
    from traceability.ledger.verify import verify

    timeline = port_timeline()

    with psycopg.connect(database_url) as conn:
        counts: dict[str, int] = {}
        for key, table in (
            ("readings", "reading"),
            ("dead_letters", "dead_letter"),
            ("excursions", "excursion"),
            ("chain_breaks", "chain_break"),
            ("ledger_events", "ledger_event"),
            ("lots", "lot"),
        ):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[key] = int(row[0]) if row else 0
        counts["geofence_events"], counts["geofence_crossings"] = geofence_counts(conn)
        row = conn.execute(FLOW_VIOLATIONS).fetchone()
        counts["flow_violations"] = int(row[0]) if row else 0
        flow_lots = [str(r[0]) for r in conn.execute(FLOW_LOTS)]
        silent_device = next(t.device_id for t in timeline.tracks if t.silent_from_offset_ms is not None)
        last_row = conn.execute(LAST_READING, (silent_device,)).fetchone()
        last_reading = None if last_row is None or last_row[0] is None else last_row[0].isoformat()
        destination = next(
            s.destination_location_id for s in world.shipments if s.shipment_id == STRANDED_SHIPMENT
        )
        entered = any(
            e.get("cc:asset") == STRANDED_TRUCK
            and e.get("cc:geofence") == "enter"
            and e.get("readPoint", {}).get("id") == destination
            for e in live_events(conn)
        )
        result = verify(
            conn,
            public_key=pinned_key(str(checkpoint_key)) if checkpoint_key else None,
            kept=own_log(checkpoint_key) if checkpoint_key else [],
        )
        checkpoint = latest(conn)
        key = create_key(conn, "inspector", "port demo inspector")
        conn.commit()
    with httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=30) as api:
        shipments = []
        for shipment in world.shipments:
            answer = api.get(f"/shipments/{shipment.shipment_id}")
            body = answer.json() if answer.status_code == 200 else {}
            shipments.append(
                {
                    "shipment_id": shipment.shipment_id,
                    "through_document": shipment.through_document,
                    "status": answer.status_code,
                    "state": body.get("state"),
                    "legs": len(body.get("legs") or ()),
                }
            )
        traces: dict[str, dict[str, Any]] = {}
        for lot in world.base.lots:
            answer = api.get(f"/trace/{lot.lot_id}")
            traces[lot.lot_id] = {
                "status": answer.status_code,
                "trace": answer.json() if answer.is_success else None,
            }
        scan = httpx.get(f"{api_url}/scan/{world.trace_code}", timeout=30)
    releases = port_calls.partial_releases({lot: t["trace"] for lot, t in traces.items()})
    state_of = {s["shipment_id"]: s["state"] for s in shipments}
    faults = {
        "silent_container": {
            "asset": SILENT_CONTAINER,
            "device": silent_device,
            "last_reading": last_reading,
            "lot": SILENT_CONTAINER_LOT,
            **unevidenced_leg(traces[SILENT_CONTAINER_LOT]["trace"], SILENT_CONTAINER, last_reading),
        },
        "track_outside_destination": {
            "asset": STRANDED_TRUCK,
            "shipment": STRANDED_SHIPMENT,
            "destination": destination,
            "entered_destination": entered,
            "state": state_of.get(STRANDED_SHIPMENT),
        },
        "release_without_inspection": {
            "lots": flow_lots,
            "chain_break_kind": "flow" if flow_lots else None,
        },
    }
    return {
        **counts,
        "shipments": shipments,
        "partial_releases": releases,
        "trace_code": world.trace_code,
        "trace_code_lot": world.trace_code_lot,
        "trace_code_scan_status": scan.status_code,
        "ledger_verified": result.ok,
        "checkpoint_seq": checkpoint.seq if checkpoint else None,
        "faults": faults,
        "traces": traces,
    }


def unevidenced_leg(trace: Mapping[str, Any] | None, asset: str, last_reading: str | None) -> dict[str, Any]:
    """The first custody leg of a lot's trace on ``asset`` that begins after the asset's last reading and
    carries a chain break: where it began, when, and the break's kind (None when there is no such leg)."""
    none: dict[str, Any] = dict.fromkeys(("leg_location", "leg_start", "leg_end", "chain_break_kind"))
    if trace is None or last_reading is None:
        return none
    silent_from = datetime.fromisoformat(last_reading)
    for leg in trace.get("custody") or ():
        if (leg.get("asset") or {}).get("asset_id") != asset or not leg.get("chain_breaks"):
            continue
        if datetime.fromisoformat(leg["t_start"]) <= silent_from:
            continue
        return {
            "leg_location": (leg.get("location") or {}).get("location_id"),
            "leg_start": leg["t_start"],
            "leg_end": leg.get("t_end"),
            "chain_break_kind": leg["chain_breaks"][0]["kind"],
        }
    return none


def format_port_summary(summary: Mapping[str, Any]) -> str:
    """The port scenario's summary as a person reads it."""
    lines = ["", "== port demo summary =="]
    for s in summary["shipments"]:
        lines.append(
            f"shipment {s['shipment_id']} ({s['through_document']}):"
            f" {s['state'] or 'HTTP ' + str(s['status'])}, {s['legs']} legs"
        )
    lines += [
        f"readings stored      {summary['readings']}",
        f"geofence events      {summary['geofence_events']} ({summary['geofence_crossings']} distinct)",
        f"flow violations      {summary['flow_violations']}",
        f"chain breaks         {summary['chain_breaks']} stored by the rules stage"
        " (a lot's trace adds each handoff no reading covers)",
    ]
    for lot_id, r in summary["partial_releases"].items():
        parts = " + ".join("?" if q is None else f"{q:g}" for q in r["released"])
        covered = (
            " (no conformant inspection covers them)"
            if r["inspected"] is None
            else f" of {r['inspected']:g} inspected, {r['remaining']:g} remaining"
        )
        lines.append(f"releases of {lot_id}: {parts}{covered}")
    silent = summary["faults"]["silent_container"]
    lines.append(
        f"fault: container {silent['asset']} silent after {silent['last_reading']}; lot {silent['lot']}:"
        f" {silent['chain_break_kind'] or 'NO'} chain break on its leg from {silent['leg_location']}"
        f" ({silent['leg_start']} to {silent['leg_end']})"
    )
    stranded = summary["faults"]["track_outside_destination"]
    lines.append(
        f"fault: truck {stranded['asset']} ends outside {stranded['destination']}"
        f" (entered: {'yes' if stranded['entered_destination'] else 'no'});"
        f" shipment {stranded['shipment']} {stranded['state']}"
    )
    unchecked = summary["faults"]["release_without_inspection"]
    lines.append(f"fault: released without inspection: {', '.join(unchecked['lots']) or 'none flagged'}")
    lines += [
        f"trace code           {summary['trace_code']} (scan page HTTP {summary['trace_code_scan_status']})",
        f"ledger events        {summary['ledger_events']} "
        f"({'hash chain verified' if summary['ledger_verified'] else 'HASH CHAIN BROKEN'}; "
        f"signed checkpoint at seq {summary.get('checkpoint_seq')})",
    ]
    return "\n".join(lines)


def port_ok(summary: Mapping[str, Any]) -> bool:
    """The port demo's exit verdict: the ledger verifies and every lot's trace is served."""
    return bool(summary["ledger_verified"]) and all(t["status"] == 200 for t in summary["traces"].values())

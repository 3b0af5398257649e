"""Stage 3, ledger: geofence crossings (the rules stage's geofence_outbox) into arriving/departing events.

Rows are taken in order under the ledger's lock and deleted in the transaction that appends their events,
so each crossing reaches the ledger once, whatever the number of workers. A new crossing appends the event
`multimodal.geofence_event` builds, over the asset's EPC (else its shipment's lots), with the shipment the
asset carried goods for at that time (`registry.shipments.shipment_of_asset`) and all of its documents. A
moved crossing appends the event at its new time and declares the one the ledger holds at the old time
wrong (errorDeclaration, reason incorrect_data, the new event as corrective event); a withdrawn one
declares its event wrong with no corrective event. Events are identified by their hash, so the same
event built again is not appended twice; a crossing that comes back after its event was declared wrong (a
late position moved it away, a later one brought it back) gets an event naming the declared one
(``cc:supersedes``), which is a new event and so reaches the ledger again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from registry.shipments import shipment_of_asset
from rules.models import CrossingPayload
from traceability import geofence_queries as q
from traceability import queries
from traceability.epcis import builders, multimodal, validation
from traceability.ledger import chain

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

# Rows taken per transaction: bounds the transaction's size and lock time.
BATCH_ROWS = 100


def drain(conn: Conn) -> tuple[int, int]:
    """Append the events of every geofence_outbox row; return (rows consumed, events appended)."""
    rows_done = appended = 0
    while True:
        with conn.transaction():  # a look without the ledger's lock: most passes find nothing
            row = conn.execute(q.ANY_CROSSING).fetchone()
        if row is None or not row[0]:
            return rows_done, appended
        with conn.transaction():
            # The ledger's lock before the rows: a worker taking later rows (a crossing moved) waits until
            # the events of earlier ones (the crossing it moves) are committed, and then sees them.
            conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
            rows = conn.execute(q.TAKE_CROSSINGS, (BATCH_ROWS,)).fetchall()
            if not rows:
                return rows_done, appended
            events: list[builders.Event] = []
            for outbox_id, payload in rows:
                built = crossing_events(conn, outbox_id, payload, events)
                try:
                    chain.validate_all(built)
                except validation.InvalidEventError as exc:
                    log.error("geofence_outbox %s dropped: its event is not valid EPCIS: %s", outbox_id, exc)
                    continue
                events.extend(built)
            if events:
                head = chain.head_seq(conn) or 0
                chain.append_many(conn, events, validated=True)
                appended += (chain.head_seq(conn) or 0) - head
            conn.execute(q.DELETE_CROSSINGS, ([r[0] for r in rows],))
        rows_done += len(rows)


def decode(outbox_id: int, payload: object) -> CrossingPayload | None:
    """The row's payload as the rules stage's type; None (logged) when it does not match it."""
    try:
        return msgspec.convert(payload, CrossingPayload)
    except msgspec.ValidationError as exc:
        log.error(
            "geofence_outbox %s payload does not match the rules contract (%s): %r", outbox_id, exc, payload
        )
        return None


def crossing_events(
    conn: Conn, outbox_id: int, payload: object, pending: Sequence[builders.Event]
) -> list[builders.Event]:
    """The ledger events of one geofence_outbox row (`pending`: the events earlier rows of this append
    built, which a later row may declare wrong)."""
    c = decode(outbox_id, payload)
    if c is None:
        return []
    at = builders.parse_time(c.at)
    if c.withdrawn:
        held = held_events(conn, c, at, pending)
        if not held:
            log.warning(
                "geofence crossing withdrawn: the ledger holds no event of %s %s at %s",
                c.asset_id,
                c.crossing,
                c.at,
            )
        return [_declared(old, c, None) for old in held]
    event = geofence_event(conn, c, at, pending)
    if event is None:
        return []
    if c.corrects is None:
        return [event]
    held = held_events(conn, c, builders.parse_time(c.corrects), pending)
    return [
        event,
        *(_declared(old, c, event["eventID"]) for old in held if old["eventID"] != event["eventID"]),
    ]


def _declared(old: builders.Event, c: CrossingPayload, corrective: str | None) -> builders.Event:
    return builders.error_declaration(
        old,
        declared_at=builders.parse_time(c.computed_at),
        corrective_event_ids=() if corrective is None else (corrective,),
    )


def geofence_event(
    conn: Conn, c: CrossingPayload, at: datetime, pending: Sequence[builders.Event] = ()
) -> builders.Event | None:
    """The arriving/departing event of a crossing; None (logged) when there is nothing to report on: the
    asset has no EPC and carries no shipment's lots. When the ledger (or `pending`) declared that event
    wrong before, the event superseding the last one declared."""
    asset = conn.execute(queries.ASSET_BY_ID, (c.asset_id,)).fetchone()
    if asset is None:
        log.warning("geofence crossing of an unknown asset: %s", c.asset_id)
        return None
    asset_epc = asset[1]
    shipment_id = shipment_of_asset(conn, c.asset_id, at)
    transactions: list[dict[str, str]] = []
    lots: list[dict[str, Any]] = []
    if shipment_id is not None:
        row = conn.execute(q.SHIPMENT_DOCUMENTS, (shipment_id,)).fetchone()
        if row is not None:
            bill_of_lading, rail_waybill, through_document, road_waybill = row
            transactions = multimodal.biz_transactions(
                bill_of_lading=bill_of_lading,
                rail_waybill=rail_waybill,
                through_document=through_document,
                road_waybill=road_waybill,
            )
        if asset_epc is None:
            lots = [
                builders.quantity(lot_id, quantity, uom)
                for lot_id, quantity, uom in conn.execute(q.SHIPMENT_LOTS, (shipment_id,)).fetchall()
            ]
    if asset_epc is None and not lots:
        log.warning(
            "geofence crossing of %s at %s not in the ledger: the asset has no EPC and carries no lots",
            c.asset_id,
            c.at,
        )
        return None
    supersedes: str | None = None
    while True:
        event = multimodal.geofence_event(
            t=at,
            direction=c.crossing,
            location=c.location_id,
            asset_id=c.asset_id,
            asset_epc=asset_epc,
            shipment_id=shipment_id,
            transactions=transactions,
            lots=lots,
            supersedes=supersedes,
        )
        if not declared(conn, str(event["eventID"]), pending):
            return event
        supersedes = str(event["eventID"])


def declared(conn: Conn, event_id: str, pending: Sequence[builders.Event]) -> bool:
    """Whether the ledger holds, or an earlier row of this append built, the errorDeclaration of the event."""
    row = conn.execute(q.EVENT_DECLARED, (event_id,)).fetchone()
    return bool(row and row[0]) or any(
        "errorDeclaration" in e and e.get("eventID") == event_id for e in pending
    )


def held_events(
    conn: Conn, c: CrossingPayload, at: datetime, pending: Sequence[builders.Event]
) -> list[builders.Event]:
    """The events of the asset's crossing of the fence in that direction at `at` that the ledger holds
    undeclared, or that an earlier row of this append built."""
    event_time = builders.iso_ms(at)
    held: list[builders.Event] = [
        r[0]
        for r in conn.execute(
            q.LIVE_CROSSING_EVENTS,
            {
                "biz_step": multimodal.GEOFENCE_STEPS[c.crossing],
                "event_time": builders.parse_time(event_time),
                "asset_id": c.asset_id,
                "direction": c.crossing,
                "location_id": c.location_id,
            },
        ).fetchall()
    ]
    held += [
        e
        for e in pending
        if "errorDeclaration" not in e
        and e.get("cc:asset") == c.asset_id
        and e.get("cc:geofence") == c.crossing
        and e.get("readPoint", {}).get("id") == c.location_id
        and e.get("eventTime") == event_time
    ]
    return held


def live_events(conn: Conn) -> list[builders.Event]:
    """The geofence (arriving/departing) events the ledger holds and has not declared wrong, in device-time
    order: one per crossing the rules stage holds."""
    return [r[0] for r in conn.execute(q.LIVE_GEOFENCE_EVENTS).fetchall()]

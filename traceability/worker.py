"""Stage 3, ledger: worker turning RFID ingest batches and rules verdicts into ledger events.

Two transactional outboxes feed it, both taken with ``FOR UPDATE SKIP LOCKED`` and deleted in the
transaction that appends their events, so any number of workers can run and nothing is done twice:

* ``ingest_batch`` rows of kind 'rfid': the reads of those readers over the batch's time range (plus
  ``READ_GAP`` either side) are grouped per reader into read events (reads less than ``READ_GAP``
  apart). Each group becomes an ObjectEvent of the reader's read point (bizStep, disposition,
  readPoint, bizLocation) over the goods EPCs; when an asset's own tag was read with them, an
  AggregationEvent too: ADD into the asset ("loading") for outbound steps, DELETE from it
  ("unloading") for inbound ones. The aggregation is appended first so that the custody leg opened by
  the ObjectEvent already sees what encloses the goods. Groups are deterministic (first read time,
  sorted EPCs), so reprocessing or overlapping batches yield the same events and append ignores them.
  The reads of a reader with no read point are kept in ``rfid_unmapped`` (its time range), and go back
  to the outbox on the first pass after a read point is configured for it: the goods a door saw before
  it was registered get their events then.
* ``verdict_outbox`` rows: an ObjectEvent with bizStep ``sensor_reporting`` and a temperature
  sensorElement (min/max/mean, ALARM_CONDITION; ERROR_CONDITION for a gap in the evidence) over the
  goods inside the asset during the interval, with the rule pack and the verdict id as ``cc:`` extension
  fields. A 'verdict_correction' (late data changed or removed verdicts the ledger holds) appends the
  replacing verdict's event, or one reporting the withdrawal, then an errorDeclaration (reason
  ``incorrect_data``, that event as ``correctiveEventIDs``) of each event of the declared verdict ids;
  a lot verdict that corrects an earlier version declares that version's event the same way. A
  'flow_violation' (the lot's import flow broke its order) appends an ObjectEvent over the lot
  (quantityList) at the offending step's time, ``cc:verdict`` chain_break, ``cc:breakKind`` flow, the
  violation, its reason and the offending event's id; its withdrawal one with ``cc:verdict``
  verdict_withdrawn naming the violation's verdict id.
* ``geofence_outbox`` rows: the arriving/departing event of an asset's geofence crossing
  (``traceability.geofence_ledger``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import psycopg

from rules.models import (
    CorrectionPayload,
    FlowViolationPayload,
    LotVerdictPayload,
    VerdictPayload,
    WithdrawnVerdict,
)
from traceability import geofence_ledger, queries
from traceability.epcis import builders, validation
from traceability.epcis.steps import INBOUND_STEPS, OUTBOUND_STEPS
from traceability.ledger import chain
from traceability.metrics import LedgerMetrics

log = logging.getLogger(__name__)

# Reads of one reader less than this apart belong to one pass through the door (a pallet and the
# truck tag are read within seconds; two dock operations are minutes apart).
READ_GAP = timedelta(seconds=60)
# Rows taken per transaction from each outbox: bounds the transaction's size and lock time.
BATCH_ROWS = 100


@dataclass(frozen=True, slots=True)
class ReadPoint:
    device_id: str
    read_point_id: str
    biz_location: str
    biz_step: str
    disposition: str
    custodian: str | None


@dataclass(frozen=True, slots=True)
class ReadGroup:
    device_id: str
    t_first: datetime
    goods: tuple[str, ...]
    assets: tuple[str, ...]  # EPCs of asset tags read with the goods


class LedgerWorker:
    """Consumes the rfid ingest outbox, the verdict outbox and the geofence outbox into the ledger."""

    def __init__(self, conninfo: str, *, metrics: LedgerMetrics | None = None) -> None:
        """``metrics``: where its runs are counted (the composition root serves its registry); without,
        metrics of its own that nobody serves."""
        self._conninfo = conninfo
        self.metrics = metrics if metrics is not None else LedgerMetrics(conninfo)
        self._appended = 0  # events appended by the committed transactions of the current run

    def run_once(self) -> int:
        """One pass over the outboxes; returns the number of outbox rows consumed."""
        t0 = time.perf_counter()
        self._appended = 0
        with psycopg.connect(self._conninfo) as conn:
            with conn.transaction():
                requeued = conn.execute(queries.REQUEUE_UNMAPPED).rowcount
            if requeued > 0:
                log.info(
                    "rfid reads kept unmapped queued again in %d batch(es): read point configured", requeued
                )
            done = self._rfid(conn)
            done += self._verdicts(conn)
            crossings, appended = geofence_ledger.drain(conn)
            done += crossings
            self._appended += appended
        if done:
            self.metrics.ran(time.perf_counter() - t0, self._appended)
        return done

    def _verdict_events(
        self, conn: psycopg.Connection[Any], kind: str, payload: object, pending: list[builders.Event]
    ) -> list[builders.Event]:
        """The ledger events of one verdict_outbox row (`pending`: the events of earlier rows of this
        append, which a correction may declare wrong)."""
        decoded = decode_verdict(kind, payload)
        if decoded is None:
            return []
        if isinstance(decoded, FlowViolationPayload):
            return [flow_violation_event(decoded)]
        if isinstance(decoded, LotVerdictPayload):
            event = lot_verdict_event(decoded)
            if decoded.corrects is None:
                return [event]
            declared_at = builders.parse_time(decoded.computed_at)
            return [event, *declarations(conn, [decoded.corrects], event, declared_at, pending)]
        if isinstance(decoded, CorrectionPayload):
            if decoded.replacement is not None:
                fixed = verdict_event(
                    conn,
                    decoded.replacement,
                    correction_reason=decoded.reason,
                    computed_at=decoded.computed_at,
                )
            elif decoded.withdrawn is not None:
                fixed = withdrawal_event(conn, decoded.withdrawn, decoded.reason, decoded.computed_at)
            else:
                fixed = None
            if fixed is None:
                log.warning("verdict correction of %s: no corrective event", ", ".join(decoded.declared))
                return []
            declared_at = builders.parse_time(decoded.computed_at)
            return [fixed, *declarations(conn, decoded.declared, fixed, declared_at, pending)]
        event_ = verdict_event(conn, decoded)
        return [] if event_ is None else [event_]

    def _head(self, conn: psycopg.Connection[Any]) -> int:
        """The ledger's head seq (0: empty); under the ledger lock, what the transaction's appends move."""
        return chain.head_seq(conn) or 0

    def run_forever(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Drain the outboxes until ``stop`` is set; sleep ``poll_s`` when both are empty."""
        while not stop.is_set():
            if self.run_once() == 0:
                stop.wait(poll_s)

    # -- rfid ----------------------------------------------------------------------------------------

    def _rfid(self, conn: psycopg.Connection[Any]) -> int:
        total = 0
        while True:
            with conn.transaction():
                batches = conn.execute(queries.TAKE_RFID_BATCHES, (BATCH_ROWS,)).fetchall()
                if not batches:
                    return total
                # The ledger lock before any row lock of rfid_unmapped (taken last, in device order): two
                # workers cannot then hold one each and wait for the other's.
                conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
                head = self._head(conn)
                unmapped: dict[str, tuple[datetime, datetime]] = {}
                for _, device_ids, t_min, t_max in batches:
                    for device in self._rfid_batch(conn, list(device_ids), t_min, t_max):
                        t0, t1 = unmapped.get(device, (t_min, t_max))
                        unmapped[device] = (min(t0, t_min), max(t1, t_max))
                if unmapped:
                    devices = sorted(unmapped)
                    log.warning(
                        "rfid reads of %s kept unmapped: no read_point configured", ", ".join(devices)
                    )
                    conn.execute(
                        queries.NOTE_UNMAPPED,
                        (devices, [unmapped[d][0] for d in devices], [unmapped[d][1] for d in devices]),
                    )
                conn.execute(queries.DELETE_BATCHES, ([b[0] for b in batches],))
                appended = self._head(conn) - head
            total += len(batches)
            self._appended += appended

    def _rfid_batch(
        self, conn: psycopg.Connection[Any], device_ids: list[str], t_min: datetime, t_max: datetime
    ) -> list[str]:
        """Append the events of one outbox row's reads; return the readers it names that have no read point.

        An event of a group that is not valid EPCIS drops the whole group (its aggregation and observation
        belong together), with an error in the log; the other groups are appended."""
        points = {
            row[0]: ReadPoint(*row) for row in conn.execute(queries.READ_POINTS, (device_ids,)).fetchall()
        }
        missing = sorted(set(device_ids) - points.keys())
        if not points:
            return missing
        rows = conn.execute(
            queries.RFID_READS,
            {"devices": sorted(points), "t_min": t_min - READ_GAP, "t_max": t_max + READ_GAP},
        ).fetchall()
        events: list[builders.Event] = []
        for group in group_reads(rows):
            group_events = events_for_group(group, points[group.device_id])
            try:
                chain.validate_all(group_events)
            except validation.InvalidEventError as exc:
                log.error("rfid read group of %s dropped: not valid EPCIS: %s", group.device_id, exc)
                continue
            events.extend(group_events)
        if events:  # one append for the batch's groups, in their order (as appending them one by one)
            chain.append_many(conn, events, validated=True)
        return missing

    # -- verdicts ------------------------------------------------------------------------------------

    def _verdicts(self, conn: psycopg.Connection[Any]) -> int:
        total = 0
        while True:
            with conn.transaction():
                rows = conn.execute(queries.TAKE_VERDICTS, (BATCH_ROWS,)).fetchall()
                if not rows:
                    return total
                events: list[builders.Event] = []
                for outbox_id, kind, payload in rows:
                    built = self._verdict_events(conn, kind, payload, events)
                    if not built:
                        continue
                    try:
                        chain.validate_all(built)
                    except validation.InvalidEventError as exc:
                        log.error(
                            "verdict_outbox %s dropped: its event is not valid EPCIS: %s", outbox_id, exc
                        )
                        continue
                    events.extend(built)
                # One append for the rows' events: a sensor_reporting event moves nothing and starts no
                # custody leg, so building each from the derived rows before appending any is the same.
                appended = 0
                if events:
                    # The ledger's lock first (append_many takes it again): the head read is then the one
                    # these events follow.
                    conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
                    head = self._head(conn)
                    chain.append_many(conn, events, validated=True)
                    appended = self._head(conn) - head
                conn.execute(queries.DELETE_VERDICTS, ([r[0] for r in rows],))
            total += len(rows)
            self._appended += appended


def group_reads(rows: Sequence[tuple[Any, ...]]) -> Iterator[ReadGroup]:
    """Split (device_id, time, epc, is_asset, asset_id) rows, sorted by device and time, into read groups."""
    current: list[tuple[Any, ...]] = []
    for row in rows:
        if current and (row[0] != current[-1][0] or row[1] - current[-1][1] >= READ_GAP):
            yield _group(current)
            current = []
        current.append(row)
    if current:
        yield _group(current)


def _group(rows: list[tuple[Any, ...]]) -> ReadGroup:
    goods = sorted({r[2] for r in rows if not r[3]})
    assets = sorted({r[2] for r in rows if r[3]})
    return ReadGroup(device_id=rows[0][0], t_first=rows[0][1], goods=tuple(goods), assets=tuple(assets))


def events_for_group(group: ReadGroup, rp: ReadPoint) -> list[builders.Event]:
    """The ledger events one pass through a read point means, in append order."""
    if not group.goods:
        return []  # only asset tags: an asset passing a door moves no goods
    placing = rp.biz_step not in OUTBOUND_STEPS
    observe = builders.object_event(
        event_time=group.t_first,
        epcs=list(group.goods),
        biz_step=rp.biz_step,
        disposition=rp.disposition,
        read_point=rp.read_point_id,
        biz_location=rp.biz_location if placing else None,
    )
    events: list[builders.Event] = []
    for asset_epc in group.assets:
        if rp.biz_step in OUTBOUND_STEPS:
            action, step = "ADD", "loading"
        elif rp.biz_step in INBOUND_STEPS:
            action, step = "DELETE", "unloading"
        else:
            continue
        events.append(
            builders.aggregation_event(
                event_time=group.t_first,
                action=action,
                parent_id=asset_epc,
                child_epcs=list(group.goods),
                biz_step=step,
                disposition=rp.disposition,
                read_point=rp.read_point_id,
                biz_location=rp.biz_location if placing else None,
            )
        )
    events.append(observe)
    return [builders.with_event_id(e) for e in events]


# -- verdicts ----------------------------------------------------------------------------------------


def decode_verdict(
    kind: str, payload: object
) -> VerdictPayload | LotVerdictPayload | CorrectionPayload | FlowViolationPayload | None:
    """The outbox payload as the rules stage's own type; None (logged) when it does not match it."""
    try:
        if kind == "flow_violation":
            return msgspec.convert(payload, FlowViolationPayload)
        if kind == "lot_verdict":
            return msgspec.convert(payload, LotVerdictPayload)
        if kind == "verdict_correction":
            return msgspec.convert(payload, CorrectionPayload)
        return msgspec.convert(payload, VerdictPayload)
    except msgspec.ValidationError as exc:
        log.error("verdict_outbox %s payload does not match the rules contract (%s): %r", kind, exc, payload)
        return None


def lot_verdict_event(v: LotVerdictPayload) -> builders.Event:
    """The ledger event of a lot verdict: an `inspecting` ObjectEvent on the lot (quantityList), with the
    result, its reasons and the rule pack as `cc:` extensions."""
    extensions: dict[str, Any] = {
        "cc:verdict": "lot_verdict",
        "cc:lotVerdict": v.result,
        "cc:verdictId": v.verdict_id,
        "cc:productClass": v.product_class,
        "cc:rulePackId": v.pack_id,
        "cc:rulePackVersion": v.pack_version,
    }
    if v.reasons:
        extensions["cc:reasons"] = "; ".join(v.reasons)
    if v.corrects is not None:
        extensions["cc:corrects"] = v.corrects
        if v.correction_reason is not None:
            extensions["cc:correctionReason"] = v.correction_reason
    event = builders.object_event(
        event_time=builders.parse_time(v.computed_at),
        quantities=[builders.quantity(v.lot_id)],
        biz_step="inspecting",
        extensions=extensions,
    )
    return builders.with_event_id(event)


def flow_violation_event(v: FlowViolationPayload) -> builders.Event:
    """The ledger event of an import-flow violation of a lot (or of its withdrawal)."""
    if v.withdrawn:
        extensions: dict[str, Any] = {
            "cc:verdict": "verdict_withdrawn",
            "cc:withdrawnVerdictId": v.verdict_id,
            "cc:ruleId": v.rule_id,
            "cc:correctionReason": v.reason,
        }
        at = v.computed_at
    else:
        extensions = {
            "cc:verdict": "chain_break",
            "cc:breakKind": "flow",
            "cc:verdictId": v.verdict_id,
            "cc:ruleId": v.rule_id,
            "cc:flowViolation": v.violation,
            "cc:reasons": v.reason,
            # When the rules stage found it: a violation withdrawn and found again is a new event, not the
            # first one's eventID again (which the ledger would take as already captured).
            "cc:computedAt": v.computed_at,
        }
        if v.missing is not None:
            extensions["cc:missingStep"] = v.missing
        if v.event_id is not None:
            extensions["cc:violatingEvent"] = v.event_id
        if v.asset_id is not None:
            extensions["cc:assetId"] = v.asset_id
        at = v.event_time
    event = builders.object_event(
        event_time=builders.parse_time(at),
        quantities=[builders.quantity(v.lot_id)],
        biz_step="inspecting",
        extensions=extensions,
    )
    return builders.with_event_id(event)


def verdict_event(
    conn: psycopg.Connection[Any],
    v: VerdictPayload,
    *,
    correction_reason: str | None = None,
    computed_at: str | None = None,
) -> builders.Event | None:
    """The sensor_reporting ObjectEvent of an excursion or chain break, or None if its asset is unknown.

    What is reported on: the goods unit EPCs inside the asset during the interval; when none, the asset's
    own EPC; when it has none, no epcList at all but a readPoint (the asset's location, else a
    ``cc:`` asset URI) — the third form the EPCIS schema allows for sensor events. ``cc:computedAt``: when
    the rules stage handed it over (``computed_at``, a correction's; else the payload's, when it has one),
    so that a verdict withdrawn and found again as it was is a new event, not the one declared wrong."""
    start, end = builders.parse_time(v.start), builders.parse_time(v.end)
    subjects = _subjects(conn, v.verdict, v.asset_id, start, end)
    if subjects is None:
        return None
    epcs, read_point = subjects

    chain_break = v.verdict == "chain_break"
    gap = chain_break and v.kind == "gap"
    element = builders.temperature_element(
        start_time=start,
        end_time=end,
        device_id=v.device_id,
        min_c=v.min_c,
        # An excursion's maximum is at least its peak; a gap has no peak.
        max_c=v.max_c if gap or v.max_c is not None else v.peak_c,
        mean_c=v.mean_c,
        exception="ERROR_CONDITION" if gap else "ALARM_CONDITION",
    )
    extensions: dict[str, Any] = {
        "cc:verdict": v.verdict,
        "cc:verdictId": v.verdict_id,
        "cc:assetId": v.asset_id,
        "cc:rulePackId": v.pack_id,
        "cc:rulePackVersion": v.pack_version,
        "cc:ruleId": v.rule_id,
        "cc:productClass": v.product_class,
        "cc:channel": v.channel,
    }
    if chain_break:
        extensions["cc:breakKind"] = v.kind
    for key, number in (
        ("cc:peakC", v.peak_c),
        ("cc:limitLowC", v.limit_low_c),
        ("cc:limitHighC", v.limit_high_c),
        ("cc:allowedSeconds", v.allowed_s),
    ):
        if number is not None:
            extensions[key] = round(number, 3)
    if correction_reason is not None:
        extensions["cc:correctionReason"] = correction_reason
    stamped = computed_at or v.computed_at
    if stamped is not None:
        extensions["cc:computedAt"] = stamped
    return _sensor_report(end, epcs, read_point, element, extensions)


def _sensor_report(
    end: datetime,
    epcs: list[str] | None,
    read_point: str | None,
    element: dict[str, Any],
    extensions: dict[str, Any],
) -> builders.Event:
    """A verdict's sensor_reporting ObjectEvent (a verdict, or the withdrawal of one), with its eventID."""
    event = builders.object_event(
        event_time=end,
        epcs=epcs,
        biz_step="sensor_reporting",
        read_point=read_point,
        sensor_elements=[element],
        extensions=extensions,
    )
    return builders.with_event_id(event)


def _subjects(
    conn: psycopg.Connection[Any], what: str, asset_id: str, start: datetime, end: datetime
) -> tuple[list[str] | None, str | None] | None:
    """What a sensor event over [start, end] on the asset reports on: (epcList, readPoint); None (logged)
    when the asset is unknown."""
    asset = conn.execute(queries.ASSET_BY_ID, (asset_id,)).fetchone()
    if asset is None:
        log.warning("verdict_outbox %s names no known asset: %s", what, asset_id)
        return None
    _, asset_epc, asset_location, _ = asset
    goods = [
        r[0]
        for r in conn.execute(
            queries.GOODS_IN_ASSET, {"epc": asset_epc, "location": asset_location, "start": start, "end": end}
        ).fetchall()
    ]
    epcs: list[str] | None = goods or ([asset_epc] if asset_epc else None)
    return epcs, asset_location or (None if epcs else builders.asset_uri(asset_id))


def withdrawal_event(
    conn: psycopg.Connection[Any], w: WithdrawnVerdict, reason: str, computed_at: str
) -> builders.Event | None:
    """The corrective event of a verdict late data removed: a sensor_reporting ObjectEvent over the same
    goods and span, with no exception, saying which verdict is withdrawn, why and when (``computed_at``:
    a second withdrawal of the verdict found again is an event of its own)."""
    start, end = builders.parse_time(w.start), builders.parse_time(w.end)
    subjects = _subjects(conn, "verdict_correction", w.asset_id, start, end)
    if subjects is None:
        return None
    epcs, read_point = subjects
    element = builders.temperature_element(start_time=start, end_time=end, device_id=w.device_id)
    extensions: dict[str, Any] = {
        "cc:verdict": "verdict_withdrawn",
        "cc:withdrawnVerdictId": w.verdict_id,
        "cc:assetId": w.asset_id,
        "cc:rulePackId": w.pack_id,
        "cc:rulePackVersion": w.pack_version,
        "cc:ruleId": w.rule_id,
        "cc:productClass": w.product_class,
        "cc:channel": w.channel,
        "cc:correctionReason": reason,
        "cc:computedAt": computed_at,
    }
    return _sensor_report(end, epcs, read_point, element, extensions)


def declarations(
    conn: psycopg.Connection[Any],
    verdict_ids: Sequence[str],
    corrective: builders.Event,
    declared_at: datetime,
    pending: Sequence[builders.Event],
) -> list[builders.Event]:
    """The errorDeclarations (reason incorrect_data, ``corrective`` as the corrective event) of every
    event of these verdict ids the ledger holds undeclared, or that an earlier row of this append built."""
    fixed_id = corrective["eventID"]
    out: list[builders.Event] = []
    seen: set[str] = {fixed_id}
    for verdict_id in verdict_ids:
        held = [r[0] for r in conn.execute(queries.LIVE_EVENTS_OF_VERDICT, (verdict_id,)).fetchall()]
        held += [e for e in pending if e.get("cc:verdictId") == verdict_id and "errorDeclaration" not in e]
        for old in held:
            if old["eventID"] in seen:
                continue
            seen.add(old["eventID"])
            out.append(
                builders.error_declaration(old, declared_at=declared_at, corrective_event_ids=[fixed_id])
            )
        if not held:
            log.warning("verdict correction: the ledger holds no event of %s to declare wrong", verdict_id)
    return out

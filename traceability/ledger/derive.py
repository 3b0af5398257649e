"""Stage 3, ledger: derive containment, custody legs and import steps from appended EPCIS events.

Rules (applied in ledger order, inside the append's transaction, so both tables are a function of the
ledger and the registry):

* AggregationEvent ADD: each child EPC leaves whatever held it and is inside ``parentID`` from
  eventTime; a child class (childQuantityList, e.g. a lot) is inside the parent too, without leaving
  other parents (a lot may be split over several pallets). If the parent is an asset's tag, the child's
  open custody leg gets that asset when it had none yet (reads arriving in another order).
* AggregationEvent DELETE: the listed children (all children when none are listed) leave the parent.
* ObjectEvent with a bizLocation known to the registry, other than while moving (shipping, departing,
  transporting, loading) or reporting: each EPC leaves what held it and is at that location.
* ObjectEvent naming lots in its quantityList with an import-flow extension (discharge, inspection,
  disinfection, trace code, first-line entry, second-line release) or leaving: a row of ``import_step``
  per lot (``traceability.ledger.import_steps``).
* ObjectEvent with a custody step (storing, shipping, receiving, ...): each EPC's open custody leg
  ends and a new one starts, with the custodian of the read point, the location (bizLocation, else
  the read point's), and the asset enclosing the EPC at that moment (the asset whose tag is its
  parent, else the fixed asset at its location). A step that changes none of the three is no handoff.
* An event naming a through document that no registered shipment carries creates that shipment in the
  registry (``traceability.ledger.shipments``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import psycopg
from psycopg import adapt, sql
from psycopg._copy_base import BinaryFormatter  # rows formatted before their COPY starts

from traceability import limits, queries
from traceability.epcis.builders import biz_step_name, parse_time
from traceability.epcis.digital_link import check_digit
from traceability.epcis.steps import CUSTODY_STEPS, NOT_PLACING_STEPS
from traceability.ledger import import_steps, shipments

POSSESSING = "https://ref.gs1.org/cbv/SDT-possessing_party"
FUTURE_TOLERANCE = timedelta(seconds=limits.FUTURE_TOLERANCE_S)
# How many events ``Derivation.run`` takes between two calls of its ``pause``: some 1 ms of work.
PAUSE_EVERY = 32

Conn = psycopg.Connection[Any]

# Project extension fields of an ObjectEvent recording customs status per lot (see epcis/multimodal.py).
BONDED_STATUS_KEY = "cc:bondedStatus"
CUSTOMS_LINE_KEY = "cc:customsLine"


_SUBJECT_LISTS = (
    ("epcList", "epc"),
    ("childEPCs", "child"),
    ("inputEPCList", "input"),
    ("outputEPCList", "output"),
)
_QUANTITY_LISTS = (
    ("quantityList", "class"),
    ("childQuantityList", "child"),
    ("inputQuantityList", "input"),
    ("outputQuantityList", "output"),
)


def subjects_of(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(identifier, role) pairs an event names, without duplicates."""
    out: dict[tuple[str, str], None] = {}
    for key, role in _SUBJECT_LISTS:
        for epc in event.get(key, ()):
            out[(str(epc), role)] = None
    for key, role in _QUANTITY_LISTS:
        for q in event.get(key, ()):
            if isinstance(q, Mapping) and q.get("epcClass"):
                out[(str(q["epcClass"]), role)] = None
    if event.get("parentID"):
        out[(str(event["parentID"]), "parent")] = None
    return list(out)


def _subjects(event: Mapping[str, Any]) -> list[str]:
    """EPCs and classes an ObjectEvent is about."""
    out = [str(e) for e in event.get("epcList", ())]
    out += [str(q["epcClass"]) for q in event.get("quantityList", ()) if q.get("epcClass")]
    return out


@lru_cache(maxsize=4096)
def party_id_of(uri: str) -> str | None:
    """The GLN of ``urn:epc:id:pgln:<prefix>.<ref>`` (check digit added), or the id of a cc party URI."""
    if uri.startswith("urn:epc:id:pgln:"):
        digits = uri.removeprefix("urn:epc:id:pgln:").replace(".", "")
        return digits + check_digit(digits) if digits.isdigit() and len(digits) == 12 else None
    prefix = "https://ns.coldchain.example/epcis/party/"
    return uri.removeprefix(prefix) if uri.startswith(prefix) else None


@dataclass(slots=True, eq=False)
class _Contained:
    """A containment row (``row_id`` None: created by this batch)."""

    row_id: int | None
    child: str
    parent: str | None
    location: str | None
    t0: datetime
    t1: datetime | None
    start_seq: int
    end_seq: int | None
    dirty: bool = False

    def close(self, t: datetime, seq: int) -> None:
        self.t1, self.end_seq, self.dirty = t, seq, True


@dataclass(slots=True, eq=False)
class _Leg:
    """A custody leg (``leg_id`` None: created by this batch)."""

    leg_id: int | None
    epc: str
    custodian: str | None
    location: str | None
    asset: str | None
    t_start: datetime
    t_end: datetime | None
    start_seq: int
    end_seq: int | None
    dirty: bool = False


def _epcs(event: Mapping[str, Any], key: str) -> list[str]:
    return [str(e) for e in event.get(key, ())]


def _classes(event: Mapping[str, Any], key: str) -> list[str]:
    return [str(q["epcClass"]) for q in event.get(key, ()) if isinstance(q, Mapping) and q.get("epcClass")]


class StateKeys(NamedTuple):
    """What of the ledger's derived state and the registry a run of events can touch (``state_keys``): the
    keys ``Derivation`` reads by."""

    children: frozenset[str]  # containment: as a child
    parents: frozenset[str]  # containment: as a parent
    leg_epcs: frozenset[str]  # open custody legs
    places: frozenset[str]  # locations (bizLocation, readPoint)
    read_points: frozenset[str]  # read points' devices and custodians
    party_ids: frozenset[str]  # parties named as destinations


def state_keys(events: Iterable[Mapping[str, Any]]) -> StateKeys:
    """The ``StateKeys`` of events (an errorDeclaration changes no derived row: none of its keys). Needs
    no database: computed before the ledger's lock (capture does it as it checks a document)."""
    children: set[str] = set()
    parents: set[str] = set()
    leg_epcs: set[str] = set()
    places: set[str] = set()
    read_points: set[str] = set()
    party_ids: set[str] = set()
    for event in events:
        if "errorDeclaration" in event:
            continue
        kind = event.get("type")
        if kind == "AggregationEvent" and event.get("parentID"):
            parents.add(str(event["parentID"]))
            kids = _epcs(event, "childEPCs")
            children.update(kids, _classes(event, "childQuantityList"))
            leg_epcs.update(kids)
        elif kind == "ObjectEvent" and event.get("action") != "DELETE":
            epcs = _epcs(event, "epcList")
            children.update(epcs)
            leg_epcs.update(epcs)
            for key in ("bizLocation", "readPoint"):
                place = (event.get(key) or {}).get("id")
                if place:
                    places.add(str(place))
            if event.get("readPoint", {}).get("id"):
                read_points.add(str(event["readPoint"]["id"]))
            for dest in event.get("destinationList", ()):
                if isinstance(dest, Mapping):
                    party = party_id_of(str(dest.get("destination", "")))
                    if party:
                        party_ids.add(party)
    return StateKeys(*(frozenset(k) for k in (children, parents, leg_epcs, places, read_points, party_ids)))


class Derivation:
    """The derivation of a run of appended events in two steps of reading, then ``run`` and ``write``.

    Construction only asks for the state the events can touch (their containment, open custody legs, read
    points, locations and parties): inside a pipeline the server answers while the caller goes on (the
    append hashes its events meanwhile). ``load`` takes the answers and the events that were appended,
    with their seqs (any subset of those asked about), and reads the assets. ``run`` applies the rules in
    memory (no database use: it may overlap a COPY on the connection) in ledger order, ``write`` writes
    the rows with one statement per table. The outcome is the one of applying the events one by one. An
    errorDeclaration changes no derived row (the trace marks the declared event instead).

    A late event, appended after one that happened later for the same unit (a partner's capture arriving
    late, RFID reads made into events once their reader got a read point), does not rewrite what is known
    since: an entry older than an interval of the same kind (places; or parents and places) that begins or
    ends after it, and a handoff older than the open custody leg, change no containment or custody
    (closing an interval before its own start would corrupt it), and a removal closes only intervals that
    began by then. The event itself is in the ledger, in the trace's events and under its subjects.

    An event dated more than ``limits.FUTURE_TOLERANCE_S`` after it was recorded is not a fact yet: it
    changes no containment or custody either, so that no single far-future event (stored before capture
    refused them, or written by a device with a wrong clock) holds every later event of its units as
    "late" and freezes their custody. When it was recorded is a time the ledger keeps, never the clock of
    the derivation: the event's ``recordTime``, else its row's ``record_time`` (the appending
    transaction's time), so a rederivation at any later time judges it as its append did."""

    def __init__(
        self, conn: Conn, events: Iterable[Mapping[str, Any]], keys: StateKeys | None = None
    ) -> None:
        self.conn = conn
        self.recorded: dict[int, datetime] = {}  # seq -> its row's record_time, for events without one
        self.events: list[tuple[int, datetime, Mapping[str, Any]]] = []
        self.subjects: list[tuple[str, int, str]] = []
        self.bts: list[tuple[str, Any, int]] = []
        self.bonded: list[tuple[str, str, str | None, int, datetime]] = []
        self.lineage: list[tuple[str, str, int, datetime]] = []
        self.claims: list[shipments.Claim] = []
        self.import_steps: list[import_steps.ImportRow] = []
        self.rows: list[_Contained] = []  # every containment row in play, loaded then created
        self.by_child: dict[str, list[_Contained]] = {}
        self.by_parent: dict[str, list[_Contained]] = {}
        self.legs: list[_Leg] = []
        self.legs_of: dict[str, list[_Leg]] = {}
        self.read_points: dict[str, list[tuple[str, str, str | None, str]]] = {}
        self.locations: set[str] = set()
        self.parties: set[str] = set()
        self.asset_by_epc: dict[str, str] = {}
        self.assets_at: dict[str, list[str]] = {}
        self._parents: set[str] = set()
        self._asked: dict[str, psycopg.Cursor[Any]] = {}
        self._encoded: _Encoded | None = None
        self._ask(state_keys(events) if keys is None else keys)

    # -- reading -----------------------------------------------------------------------------------------
    def _ask(self, keys: StateKeys) -> None:
        children, parents, leg_epcs, places, read_points, party_ids = keys
        self._parents = set(parents)
        ask, asked = self.conn.execute, self._asked
        if children or parents:
            asked["containment"] = ask(
                queries.BATCH_CONTAINMENT, queries.named_text_arrays(children=children, parents=parents)
            )
        if leg_epcs:
            asked["legs"] = ask(queries.BATCH_OPEN_LEGS, queries.text_arrays(leg_epcs))
        if read_points:
            asked["read_points"] = ask(queries.BATCH_READ_POINTS, queries.text_arrays(read_points))
        if places or read_points:
            asked["locations"] = ask(
                queries.BATCH_LOCATIONS, queries.named_text_arrays(places=places, read_points=read_points)
            )
        if party_ids:
            asked["parties"] = ask(queries.BATCH_PARTIES, queries.text_arrays(party_ids))

    def load(self, items: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Take the answers (the connection must be out of its pipeline) and the appended events, then read
        the assets that enclose them: those whose tag is a parent, those at a location in play."""
        self.events = [
            (seq, parse_time(e["eventTime"]), e) for seq, e in items if "errorDeclaration" not in e
        ]
        unstamped = [seq for seq, _, e in self.events if _record_time(e) is None]
        if unstamped:
            self.recorded = dict(self.conn.execute(queries.RECORD_TIMES, (unstamped,)).fetchall())
        asked = self._asked
        if "containment" in asked:
            for r in asked["containment"]:
                self._add_row(_Contained(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
        if "legs" in asked:
            for r in asked["legs"]:
                self._add_leg(_Leg(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]))
        if "read_points" in asked:
            for rp, step, device, custodian, location in asked["read_points"]:
                self.read_points.setdefault(rp, []).append((step, device, custodian, location))
        if "locations" in asked:
            self.locations = {r[0] for r in asked["locations"]}
        if "parties" in asked:
            self.parties = {r[0] for r in asked["parties"]}
        asked.clear()
        asset_parents = self._parents | {r.parent for r in self.rows if r.parent}
        asset_places = self.locations | {r.location for r in self.rows if r.location}
        if self.events and (asset_parents or asset_places):
            for asset_id, epc, location in self.conn.execute(
                queries.BATCH_ASSETS, queries.named_text_arrays(epcs=asset_parents, places=asset_places)
            ):
                if epc in asset_parents:
                    self.asset_by_epc[epc] = asset_id
                if location is not None:
                    self.assets_at.setdefault(location, []).append(asset_id)

    def _add_row(self, row: _Contained) -> None:
        self.rows.append(row)
        self.by_child.setdefault(row.child, []).append(row)
        if row.parent is not None:
            self.by_parent.setdefault(row.parent, []).append(row)

    def _add_leg(self, leg: _Leg) -> None:
        self.legs.append(leg)
        self.legs_of.setdefault(leg.epc, []).append(leg)

    # -- the rules -----------------------------------------------------------------------------------------
    def run(self, pause: Callable[[], object] | None = None) -> None:
        """Apply the rules to the loaded events, in ledger order; ``pause`` is called once every
        ``PAUSE_EVERY`` events (the append sends its COPY's rows on meanwhile)."""
        for n, (seq, t, event) in enumerate(self.events, 1):
            if pause is not None and n % PAUSE_EVERY == 0:
                pause()
            self.subjects.extend((i, seq, r) for i, r in subjects_of(event))
            for bt in event.get("bizTransactionList", ()):
                if isinstance(bt, Mapping) and bt.get("bizTransaction"):
                    self.bts.append((str(bt["bizTransaction"]), bt.get("type"), seq))
            if event.get("bizTransactionList"):
                claim = shipments.claim_of(event, self._event_custodian(event))
                if claim is not None:
                    self.claims.append(claim)
            status = event.get(BONDED_STATUS_KEY)
            if status in ("bonded", "released", "domestic"):
                line = event.get(CUSTOMS_LINE_KEY)
                for lot in _subjects(event):
                    self.bonded.append(
                        (lot, str(status), line if line in ("first", "second") else None, seq, t)
                    )
            self.import_steps += import_steps.import_steps(seq, t, event)
            kind = event.get("type")
            placing = kind in ("AggregationEvent", "ObjectEvent") and not self._future(seq, t, event)
            if kind == "AggregationEvent" and placing:
                self._aggregation(seq, t, event)
            elif kind == "ObjectEvent" and placing:
                self._object(seq, t, event)
            elif kind == "TransformationEvent":
                inputs = _epcs(event, "inputEPCList") + _classes(event, "inputQuantityList")
                outputs = _epcs(event, "outputEPCList") + _classes(event, "outputQuantityList")
                for i in dict.fromkeys(inputs):
                    self.lineage.extend((i, o, seq, t) for o in dict.fromkeys(outputs))

    def _future(self, seq: int, t: datetime, event: Mapping[str, Any]) -> bool:
        """Dated beyond the tolerance after it was recorded (its recordTime, else its row's)."""
        recorded = _record_time(event) or self.recorded[seq]
        return t > recorded + FUTURE_TOLERANCE

    def _aggregation(self, seq: int, t: datetime, event: Mapping[str, Any]) -> None:
        parent = event.get("parentID")
        if not parent:
            return
        parent = str(parent)
        children = _epcs(event, "childEPCs")
        classes = _classes(event, "childQuantityList")
        if event.get("action") == "ADD":
            for child in children:
                self._enter(seq, t, child, parent=parent, location=None, exclusive=True)
            for cls in classes:
                self._enter(seq, t, cls, parent=parent, location=None, exclusive=False)
            asset = self.asset_by_epc.get(parent)
            if asset is not None:
                for child in children:
                    for leg in self.legs_of.get(child, ()):
                        if leg.t_end is None and leg.asset is None and leg.t_start <= t:
                            leg.asset, leg.dirty = asset, True
        elif event.get("action") == "DELETE":
            if not children and not classes:
                for row in self.by_parent.get(parent, ()):
                    if row.t1 is None and row.t0 <= t:
                        row.close(t, seq)
            for child in children + classes:
                for row in self.by_child.get(child, ()):
                    if row.parent == parent and row.t1 is None and row.t0 <= t:
                        row.close(t, seq)

    def _object(self, seq: int, t: datetime, event: Mapping[str, Any]) -> None:
        if event.get("action") == "DELETE":
            return
        epcs = _epcs(event, "epcList")
        step = biz_step_name(event.get("bizStep"))
        location = self._known((event.get("bizLocation") or {}).get("id"))
        if location is not None and step not in NOT_PLACING_STEPS:
            for epc in epcs:
                self._enter(seq, t, epc, parent=None, location=location, exclusive=True)
        if step in CUSTODY_STEPS:
            read_point = (event.get("readPoint") or {}).get("id")
            custodian, rp_location = self._read_point(read_point, str(step))
            custodian = self._event_custodian(event) or custodian
            rp_location = rp_location or self._known(read_point)
            for epc in epcs:
                self._custody(seq, t, epc, custodian, location or rp_location)

    def _known(self, location_id: Any) -> str | None:
        return str(location_id) if location_id and str(location_id) in self.locations else None

    def _read_point(self, read_point: Any, step: str) -> tuple[str | None, str | None]:
        """The custodian and place of a read point: its row for this step first, then by device id."""
        rows = self.read_points.get(str(read_point)) if read_point else None
        if not rows:
            return None, None
        _, _, custodian, location = min(rows, key=lambda r: (r[0] != step, r[1]))
        return custodian, location

    def _event_custodian(self, event: Mapping[str, Any]) -> str | None:
        """The possessing party the event names as its destination, when it is a registered party."""
        for dest in event.get("destinationList", ()):
            if not isinstance(dest, Mapping) or dest.get("type") not in ("possessing_party", POSSESSING):
                continue
            party = party_id_of(str(dest.get("destination", "")))
            if party and party in self.parties:
                return party
        return None

    def _enter(
        self, seq: int, t: datetime, child: str, *, parent: str | None, location: str | None, exclusive: bool
    ) -> None:
        rows = self.by_child.get(child, [])
        if exclusive and parent is None:
            # Seen at a place: it leaves the previous place, not the container it may still be inside
            # (a pallet arriving at the port in its reefer container stays in the container).
            history = [r for r in rows if r.location is not None]
            leaving = [r for r in history if r.t1 is None and r.location != location]
        elif exclusive:
            history = rows
            leaving = [
                r for r in rows if r.t1 is None and not (r.parent == parent and r.location == location)
            ]
        else:
            history = [r for r in rows if r.parent == parent and r.location == location]
            leaving = []
        if any(r.t0 > t or (r.t1 is not None and r.t1 > t) for r in history):
            return  # late: where it was after t is known already (see the class docstring)
        for row in leaving:
            row.close(t, seq)
        if not any(r.t1 is None and r.parent == parent and r.location == location for r in rows):
            self._add_row(_Contained(None, child, parent, location, t, None, seq, None))

    def _enclosing_asset(self, epc: str, t: datetime) -> str | None:
        """The asset enclosing a unit at t: that whose tag is its parent, else a fixed asset where it is."""
        by_tag: list[str] = []
        at_place: list[str] = []
        for row in self.by_child.get(epc, ()):
            if row.t0 <= t and (row.t1 is None or row.t1 > t):
                if row.parent is not None and row.parent in self.asset_by_epc:
                    by_tag.append(self.asset_by_epc[row.parent])
                if row.location is not None:
                    at_place.extend(self.assets_at.get(row.location, ()))
        if by_tag:
            return min(by_tag)
        return min(at_place) if at_place else None

    def _custody(self, seq: int, t: datetime, epc: str, custodian: str | None, location: str | None) -> None:
        asset = self._enclosing_asset(epc, t)
        open_legs = [leg for leg in self.legs_of.get(epc, ()) if leg.t_end is None]
        if open_legs:
            leg = max(reversed(open_legs), key=lambda g: g.t_start)
            if leg.t_start > t:
                return  # late: a later handoff is already known (see the class docstring)
            if (leg.custodian, leg.location, leg.asset) == (custodian, location, asset):
                return
            leg.t_end, leg.end_seq, leg.dirty = t, seq, True
        self._add_leg(_Leg(None, epc, custodian, location, asset, t, None, seq, None))

    # -- writing -------------------------------------------------------------------------------------------
    def encode(self) -> None:
        """Format what ``run`` derived for ``write``: each table's rows as its binary COPY data, the closed
        and changed pre-existing rows as the UPDATEs' arrays. No database use: the append does it inside
        its COPY of the ledger's entries, while the server still inserts them."""
        # The seqs are new, so rows keyed by them cannot exist yet: COPY (deduplicated on each primary key).
        bts = {(bt, seq): (bt, kind, seq) for bt, kind, seq in self.bts}
        bonded = {(r[0], r[3]): r for r in self.bonded}
        steps = {(r[0], r[2], r[1]): r for r in self.import_steps}
        lineage = {r[:3]: r for r in self.lineage}
        tables: list[tuple[str, Iterable[Sequence[Any]]]] = [
            ("event_subject", dict.fromkeys(self.subjects)),
            ("biz_transaction", bts.values()),
            ("bonded_status", bonded.values()),
            ("import_step", steps.values()),
            ("lineage", lineage.values()),
            (
                "containment",
                [
                    (r.child, r.parent, r.location, r.t0, r.t1, r.start_seq, r.end_seq)
                    for r in self.rows
                    if r.row_id is None
                ],
            ),
            (
                "custody_leg",
                [
                    (g.epc, g.custodian, g.location, g.asset, g.t_start, g.t_end, g.start_seq, g.end_seq)
                    for g in self.legs
                    if g.leg_id is None
                ],
            ),
        ]
        copies: dict[str, bytes] = {}
        registry = self.conn.adapters.types
        for table, rows in tables:
            transformer = adapt.Transformer.from_context(self.conn)
            oids = [registry.get_oid(kind) for kind in _COPY_TYPES[table]]
            transformer.set_dumper_types(oids, psycopg.pq.Format.BINARY)
            formatter = BinaryFormatter(transformer)
            data, written = bytearray(), False
            for row in rows:
                data += formatter.write_row(row)
                written = True
            if written:  # the formatter holds the last rows still; end() gives them and the trailer
                copies[table] = bytes(data + formatter.end())
        closed = [(r.row_id, r.t1, r.end_seq) for r in self.rows if r.row_id is not None and r.dirty]
        changed = [
            (g.leg_id, g.asset, g.t_end, g.end_seq) for g in self.legs if g.leg_id is not None and g.dirty
        ]
        self._encoded = _Encoded(copies, _columns(closed, 3), _columns(changed, 4))

    def write(self) -> None:
        """Write what ``run`` derived (``encode``, unless done): one COPY per table, one UPDATE for the
        closed pre-existing rows of each table."""
        if self._encoded is None:
            self.encode()
        assert self._encoded is not None
        copies, closed, changed = self._encoded
        self._encoded = None
        for table, statement in _COPY_STATEMENTS.items():
            if table in copies:
                _copy(self.conn, statement, copies[table])
            if table == "containment" and closed[0]:
                self.conn.execute(queries.BATCH_CLOSE_CONTAINMENT, closed)
            if table == "custody_leg" and changed[0]:
                self.conn.execute(queries.BATCH_UPDATE_LEGS, changed)
        if self.claims:
            shipments.apply(self.conn, self.claims)


# The derived tables' columns as ``write`` copies them, in the order it writes them, with their types: the
# rows go as binary COPY data (no text for the server to parse: timestamps are most of it).
COPY_COLUMNS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("event_subject", (("subject_id", "text"), ("seq", "int8"), ("role", "text"))),
    ("biz_transaction", (("biz_transaction", "text"), ("type", "text"), ("seq", "int8"))),
    (
        "bonded_status",
        (
            ("lot_id", "text"),
            ("status", "text"),
            ("line", "text"),
            ("seq", "int8"),
            ("event_time", "timestamptz"),
        ),
    ),
    (
        "import_step",
        tuple(
            zip(
                import_steps.COLUMNS,
                (
                    "text",
                    "text",
                    "int8",
                    "timestamptz",
                    "float8",
                    "text",
                    "bool",
                    "text",
                    "text[]",
                    "text",
                    "bool",
                ),
                strict=True,
            )
        ),
    ),
    (
        "lineage",
        (("input_id", "text"), ("output_id", "text"), ("seq", "int8"), ("event_time", "timestamptz")),
    ),
    (
        "containment",
        (
            ("child_id", "text"),
            ("parent_id", "text"),
            ("location_id", "text"),
            ("t0", "timestamptz"),
            ("t1", "timestamptz"),
            ("start_seq", "int8"),
            ("end_seq", "int8"),
        ),
    ),
    (
        "custody_leg",
        (
            ("epc", "text"),
            ("custodian", "text"),
            ("location_id", "text"),
            ("asset_id", "text"),
            ("t_start", "timestamptz"),
            ("t_end", "timestamptz"),
            ("start_seq", "int8"),
            ("end_seq", "int8"),
        ),
    ),
)
# The derived tables and the columns that are their content (generated ids left out), in write order:
# what ``rederive`` rebuilds and compares, and what the capture bench's ceiling stores again.
DERIVED_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (table, tuple(name for name, _ in columns)) for table, columns in COPY_COLUMNS
)
_COPY_STATEMENTS = {
    table: sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    )
    for table, columns in COPY_COLUMNS
}
_COPY_TYPES = {table: [kind for _, kind in columns] for table, columns in COPY_COLUMNS}


class _Encoded(NamedTuple):
    """``Derivation.encode``: COPY data by table, the arrays of the two UPDATEs."""

    copies: dict[str, bytes]
    closed: tuple[list[Any], ...]
    changed: tuple[list[Any], ...]


def _record_time(event: Mapping[str, Any]) -> datetime | None:
    """The event's own recordTime, None when it has none that parses."""
    text = event.get("recordTime")
    return _parsed_record_time(text) if isinstance(text, str) else None


@lru_cache(maxsize=1024)
def _parsed_record_time(text: str) -> datetime | None:
    """``parse_time`` of a recordTime, None when it does not parse (memoised: the events of a captured
    document share theirs, read twice each by a derivation)."""
    with contextlib.suppress(ValueError, OverflowError):
        return parse_time(text)
    return None


def _copy(conn: Conn, statement: sql.Composed, data: bytes) -> None:
    """COPY rows already formatted (binary COPY data, ``encode``) into a table."""
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(data)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    """Row tuples as one list per column (the arrays an ``unnest`` statement takes)."""
    return tuple([row[i] for row in rows] for i in range(width))

"""Stage 3, ledger: derive containment intervals and custody legs from one appended EPCIS event.

Rules (applied in ledger order, inside the append's transaction, so both tables are a function of the
ledger and the registry):

* AggregationEvent ADD: each child EPC leaves whatever held it and is inside ``parentID`` from
  eventTime; a child class (childQuantityList, e.g. a lot) is inside the parent too, without leaving
  other parents (a lot may be split over several pallets). If the parent is an asset's tag, the child's
  open custody leg gets that asset when it had none yet (reads arriving in another order).
* AggregationEvent DELETE: the listed children (all children when none are listed) leave the parent.
* ObjectEvent with a bizLocation known to the registry, other than while moving (shipping, departing,
  transporting, loading) or reporting: each EPC leaves what held it and is at that location.
* ObjectEvent with a custody step (storing, shipping, receiving, ...): each EPC's open custody leg
  ends and a new one starts, with the custodian of the read point, the location (bizLocation, else
  the read point's), and the asset enclosing the EPC at that moment (the asset whose tag is its
  parent, else the fixed asset at its location). A step that changes none of the three is no handoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg

from traceability import queries
from traceability.epcis import parse_time

Conn = psycopg.Connection[Any]

NOT_PLACING_STEPS = frozenset({"shipping", "departing", "transporting", "loading", "sensor_reporting"})
CUSTODY_STEPS = frozenset(
    {"storing", "shipping", "receiving", "accepting", "arriving", "departing", "stocking"}
)


def apply(conn: Conn, seq: int, event: Mapping[str, Any]) -> None:
    """Update containment and custody_leg for the event just appended as ``seq``."""
    t = parse_time(event["eventTime"])
    if event.get("type") == "AggregationEvent":
        _aggregation(conn, seq, t, event)
    elif event.get("type") == "ObjectEvent":
        _object(conn, seq, t, event)


def _aggregation(conn: Conn, seq: int, t: datetime, event: Mapping[str, Any]) -> None:
    parent = event.get("parentID")
    if not parent:
        return
    children = [str(c) for c in event.get("childEPCs", ())]
    classes = [str(q["epcClass"]) for q in event.get("childQuantityList", ()) if q.get("epcClass")]
    if event.get("action") == "ADD":
        for child in children:
            _enter(conn, seq, t, child, parent=parent, location=None, exclusive=True)
        for cls in classes:
            _enter(conn, seq, t, cls, parent=parent, location=None, exclusive=False)
        asset = conn.execute(queries.ASSET_BY_EPC, (parent,)).fetchone()
        if asset is not None:
            for child in children:
                conn.execute(queries.SET_LEG_ASSET_IF_UNKNOWN, {"asset": asset[0], "epc": child, "t": t})
    elif event.get("action") == "DELETE":
        if not children and not classes:
            conn.execute(queries.CLOSE_ALL_IN_PARENT, {"t": t, "seq": seq, "parent": parent})
        for child in children + classes:
            conn.execute(
                queries.CLOSE_CHILD_IN_PARENT, {"t": t, "seq": seq, "parent": parent, "child": child}
            )


def _object(conn: Conn, seq: int, t: datetime, event: Mapping[str, Any]) -> None:
    if event.get("action") == "DELETE":
        return
    epcs = [str(e) for e in event.get("epcList", ())]
    step = event.get("bizStep")
    location = _known_location(conn, (event.get("bizLocation") or {}).get("id"))
    if location is not None and step not in NOT_PLACING_STEPS:
        for epc in epcs:
            _enter(conn, seq, t, epc, parent=None, location=location, exclusive=True)
    if step in CUSTODY_STEPS:
        read_point = (event.get("readPoint") or {}).get("id")
        row = conn.execute(queries.READ_POINT_BY_ID, {"read_point": read_point, "biz_step": step}).fetchone()
        custodian, rp_location = (None, None) if row is None else (row[0], row[1])
        for epc in epcs:
            _custody(conn, seq, t, epc, custodian, location or rp_location)


def _known_location(conn: Conn, location_id: str | None) -> str | None:
    if not location_id:
        return None
    return location_id if conn.execute(queries.LOCATION_EXISTS, (location_id,)).fetchone() else None


def _enter(
    conn: Conn,
    seq: int,
    t: datetime,
    child: str,
    *,
    parent: str | None,
    location: str | None,
    exclusive: bool,
) -> None:
    params = {"child": child, "parent": parent, "location": location, "t": t, "seq": seq}
    if exclusive:
        conn.execute(queries.CLOSE_OPEN_CONTAINMENT, params)
    if conn.execute(queries.OPEN_CONTAINMENT_EXISTS, params).fetchone() is None:
        conn.execute(queries.INSERT_CONTAINMENT, params)


def _custody(
    conn: Conn, seq: int, t: datetime, epc: str, custodian: str | None, location: str | None
) -> None:
    row = conn.execute(queries.ENCLOSING_ASSET, {"epc": epc, "t": t}).fetchone()
    asset = None if row is None else row[0]
    leg = conn.execute(queries.OPEN_LEG, (epc,)).fetchone()
    if leg is not None:
        if (leg[1], leg[2], leg[3]) == (custodian, location, asset):
            return
        conn.execute(queries.CLOSE_LEG, {"t": t, "seq": seq, "leg": leg[0]})
    conn.execute(
        queries.INSERT_LEG,
        {"epc": epc, "custodian": custodian, "location": location, "asset": asset, "t": t, "seq": seq},
    )

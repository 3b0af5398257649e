"""Stage 3, ledger: the import-flow steps an EPCIS event records per batch (pure; rows of ``import_step``).

An ObjectEvent (not DELETE) is a step of each lot its quantityList names (the extensions are those of
``traceability.epcis.multimodal``):

* ``cc:discharge``: discharge (the batch's arrival at the port);
* ``cc:inspection`` inspection: the inspection result (the disposition when it is conformant or
  non_conformant, else ``cc:result``; neither: not known), its certificates, site and whether it asks for
  disinfection; disinfection likewise;
* ``cc:traceCode``: the trace code the first receiving site issued;
* ``cc:bondedStatus`` bonded on the first line: entry; released on the second line: release;
* otherwise a leaving step (shipping, departing): onward.

A geofence event (``cc:geofence``: an asset crossing a fence, over its shipment's lots) is no step: the
flow follows what the port, customs and the sites record, not where a truck drove.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rules.engine import flow
from traceability.epcis import multimodal
from traceability.epcis.builders import biz_step_name, disposition_name
from traceability.epcis.steps import LEAVING_STEPS

# (lot_id, step, seq, event_time, quantity, uom, conformant, site, certificates, trace_code,
#  disinfection_required): the columns of import_step, in order.
ImportRow = tuple[
    str,
    str,
    int,
    datetime,
    float | None,
    str | None,
    bool | None,
    str | None,
    list[str] | None,
    str | None,
    bool | None,
]
COLUMNS = (
    "lot_id",
    "step",
    "seq",
    "event_time",
    "quantity",
    "uom",
    "conformant",
    "site",
    "certificates",
    "trace_code",
    "disinfection_required",
)


# An inspection result, as a disposition or cc:result names it: conformant or not (any other: not known).
RESULTS: dict[str, bool] = {"conformant": True, "non_conformant": False}


def import_steps(seq: int, t: datetime, event: Mapping[str, Any]) -> list[ImportRow]:
    """The import_step rows of one ledger event (none for most events)."""
    if event.get("type") != "ObjectEvent" or event.get("action") == "DELETE":
        return []
    if multimodal.GEOFENCE_KEY in event:
        return []
    batches = [q for q in event.get("quantityList", ()) if isinstance(q, Mapping) and q.get("epcClass")]
    if not batches:
        return []
    site = _text(event.get(multimodal.SITE_KEY))
    steps: list[tuple[str, bool | None, str | None, bool | None]] = []
    kind = event.get(multimodal.INSPECTION_KEY)
    status, line = event.get("cc:bondedStatus"), event.get("cc:customsLine")
    if event.get(multimodal.DISCHARGE_KEY) is not None:
        steps.append((flow.DISCHARGE, None, None, None))
    elif kind == "inspection":
        conformant = RESULTS.get(disposition_name(event.get("disposition")) or "")
        if conformant is None:  # a disposition that is no result (in_progress, ...) says nothing of it
            conformant = RESULTS.get(_text(event.get(multimodal.RESULT_KEY)) or "")
        asks = event.get(multimodal.DISINFECTION_REQUIRED_KEY) in (True, "true")  # JSON, or XML text
        steps.append((flow.INSPECTION, conformant, None, asks))
    elif kind == "disinfection":
        steps.append((flow.DISINFECTION, None, None, None))
    elif status == "bonded" and line == "first":
        steps.append((flow.ENTRY, None, None, None))
    elif status == "released" and line == "second":
        steps.append((flow.RELEASE, None, None, None))
    elif biz_step_name(event.get("bizStep")) in LEAVING_STEPS:
        steps.append((flow.ONWARD, None, None, None))
    code = _text(event.get(multimodal.TRACE_CODE_KEY))
    if code:
        steps.append((flow.TRACE_CODE, None, code, None))
    certificates = event.get(multimodal.CERTIFICATES_KEY)
    certs = [str(c) for c in certificates] if isinstance(certificates, list) else None
    rows: list[ImportRow] = []
    for q in batches:
        amount = q.get("quantity")
        quantity = float(amount) if isinstance(amount, int | float) and not isinstance(amount, bool) else None
        uom = _text(q.get("uom")) if quantity is not None else None
        lot = str(q["epcClass"])
        for step, conformant, code, required in steps:
            rows.append((lot, step, seq, t, quantity, uom, conformant, site, certs, code, required))
    return rows


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

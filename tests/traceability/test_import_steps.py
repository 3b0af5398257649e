"""Tests: the import steps an EPCIS event records per batch (pure), over arbitrary events (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rules.engine import flow
from traceability.epcis import multimodal
from traceability.ledger.import_steps import COLUMNS, import_steps

T = datetime(2026, 4, 1, tzinfo=UTC)
LOT = "urn:epc:class:lgtin:8850000.077001.DUR2604"
PLACE = "urn:epc:id:sgln:6901234.00110.0"

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8))
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=2)
)
quantity_elements = st.one_of(
    st.fixed_dictionaries(
        {"epcClass": st.sampled_from([LOT, "urn:epc:class:lgtin:1.2.X"])},
        optional={"quantity": values, "uom": values},
    ),
    values,
)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(["ObjectEvent", "AggregationEvent", "TransformationEvent"])},
    optional={
        "action": st.sampled_from(["ADD", "OBSERVE", "DELETE"]),
        "bizStep": st.one_of(st.sampled_from(["departing", "shipping", "inspecting", "arriving"]), values),
        "disposition": st.one_of(st.sampled_from(["conformant", "non_conformant"]), values),
        "quantityList": st.lists(quantity_elements, max_size=3),
        "cc:discharge": values,
        "cc:inspection": st.one_of(st.sampled_from(["inspection", "disinfection"]), values),
        "cc:result": values,
        "cc:certificates": values,
        "cc:site": values,
        "cc:disinfectionRequired": values,
        "cc:traceCode": values,
        "cc:bondedStatus": st.one_of(st.sampled_from(["bonded", "released"]), values),
        "cc:customsLine": st.one_of(st.sampled_from(["first", "second"]), values),
    },
)


@given(events)
def test_any_event_gives_well_typed_rows_of_the_lots_it_names(event: dict[str, Any]) -> None:
    rows = import_steps(7, T, event)
    named = {
        q["epcClass"] for q in event.get("quantityList", ()) if isinstance(q, dict) and q.get("epcClass")
    }
    for row in rows:
        assert len(row) == len(COLUMNS)
        lot, step, seq, t, quantity, uom, conformant, site, certificates, code, required = row
        assert lot in named
        assert step in flow.STEPS
        assert (seq, t) == (7, T)
        assert quantity is None or isinstance(quantity, float)
        assert uom is None or isinstance(uom, str)
        assert conformant in (None, True, False)
        assert site is None or isinstance(site, str)
        assert certificates is None or all(isinstance(c, str) for c in certificates)
        assert code is None or (isinstance(code, str) and step == flow.TRACE_CODE)
        assert required in (None, True, False)
    if event.get("type") != "ObjectEvent" or event.get("action") == "DELETE":
        assert rows == []


def test_each_builder_gives_its_step() -> None:
    def steps(event: dict[str, Any]) -> list[tuple[str, float | None, bool | None]]:
        return [(r[1], r[4], r[6]) for r in import_steps(1, T, event)]

    assert steps(multimodal.discharge(t=T, lot=LOT, quantity=10, uom="KGM", location=PLACE)) == [
        ("discharge", 10.0, None)
    ]
    failed = multimodal.inspection_result(
        t=T, lot=LOT, quantity=10, conformant=False, certificates=["C"], site="S", location=PLACE
    )
    assert steps(failed) == [("inspection", 10.0, False)]
    assert steps(multimodal.disinfection(t=T, lot=LOT, site="S", location=PLACE)) == [
        ("disinfection", None, None)
    ]
    assert steps(multimodal.trace_code_issue(t=T, lot=LOT, code="QZ-1", site="S", location=PLACE)) == [
        ("trace_code", None, None)
    ]
    assert steps(multimodal.first_line_entry(t=T, lot=LOT, quantity=10, location=PLACE)) == [
        ("entry", 10.0, None)
    ]
    assert steps(multimodal.second_line_release(t=T, lot=LOT, quantity=4, location=PLACE)) == [
        ("release", 4.0, None)
    ]
    onward = multimodal.onward(t=T, lot=LOT, location=PLACE, conveyance_ext=multimodal.conveyance("road"))
    assert steps(onward) == [("onward", None, None)]


def test_every_step_may_carry_the_shipments_through_document() -> None:
    docs = multimodal.biz_transactions(through_document="TD-2026-7")
    built = [
        multimodal.discharge(t=T, lot=LOT, location=PLACE, transactions=docs),
        multimodal.inspection_result(
            t=T,
            lot=LOT,
            quantity=1,
            conformant=True,
            certificates=[],
            site="S",
            location=PLACE,
            transactions=docs,
        ),
        multimodal.disinfection(t=T, lot=LOT, site="S", location=PLACE, transactions=docs),
        multimodal.trace_code_issue(t=T, lot=LOT, code="QZ-1", site="S", location=PLACE, transactions=docs),
        multimodal.first_line_entry(t=T, lot=LOT, quantity=1, location=PLACE, transactions=docs),
        multimodal.second_line_release(t=T, lot=LOT, quantity=1, location=PLACE, transactions=docs),
        multimodal.onward(
            t=T, lot=LOT, location=PLACE, conveyance_ext=multimodal.conveyance("rail"), transactions=docs
        ),
    ]
    for event in built:
        assert event["bizTransactionList"] == [
            {
                "type": multimodal.BTT_THROUGH_DOCUMENT,
                "bizTransaction": multimodal.document_uri("through", "TD-2026-7"),
            }
        ]


def test_geofence_events_are_no_steps() -> None:
    """A truck leaving the port's fence before the release is no onward step: only the flow's own events
    are steps, whatever their business step."""
    lots = [{"epcClass": LOT, "quantity": 10.0, "uom": "KGM"}]
    for direction in multimodal.GEOFENCE_STEPS:
        crossing = multimodal.geofence_event(
            t=T, direction=direction, location=PLACE, asset_id="TRUCK-1", shipment_id="S-1", lots=lots
        )
        assert import_steps(1, T, crossing) == []


def test_an_inspection_result_is_the_disposition_only_when_it_names_one() -> None:
    def result(disposition: str | None, stated: str | None) -> bool | None:
        event = multimodal.inspection_result(
            t=T, lot=LOT, quantity=10, conformant=True, certificates=[], site="S", location=PLACE
        )
        event.pop("disposition", None)
        event.pop(multimodal.RESULT_KEY, None)
        if disposition is not None:
            event["disposition"] = disposition
        if stated is not None:
            event[multimodal.RESULT_KEY] = stated
        [row] = import_steps(1, T, event)
        return row[6]

    assert result("in_progress", "conformant") is True
    assert result("https://ref.gs1.org/cbv/Disp-in_progress", "non_conformant") is False
    assert result("in_progress", None) is None
    assert result(None, "conformant") is True
    assert result("non_conformant", "conformant") is False  # a result the disposition names comes first
    assert result("conformant", None) is True
    assert result("unknown", "pending") is None

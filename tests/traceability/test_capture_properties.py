"""Tests: capture of any schema-valid document (optional members there or not, odd but valid values,
either kind of document) ends in a captured job or a refusal whose every reason is a JSON pointer and a
sentence, never an exception; the capture worker finishes every queued job, whatever the others do; an
EPCISQueryDocument is captured and imported. Real PostgreSQL throughout."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability import queries
from traceability.capture_worker import CHECK_PROCESSES, CaptureWorker
from traceability.epcis import capture, validation
from traceability.epcis.eventhash import HASH_PREFIX, event_hash

EXAMPLES = Path(__file__).resolve().parent / "data" / "gs1-epcis-examples"
CTX = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"ex": "http://ns.example.com/epcis/"},
]
# A reason a person reads: a few words, not an exception's repr (a bare "'type'" was one).
SENTENCE = re.compile(r"^[A-Za-z0-9].*\s\S+")

# -- a schema-valid document, from its optional parts -------------------------------------------------

times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31))
offsets = st.sampled_from(["+00:00", "-06:00", "+05:30", "+14:00", "-12:00"])
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
epcs = st.builds(lambda n: f"urn:epc:id:sgtin:4012345.011111.{n}", st.integers(0, 10**6))
classes = st.builds(lambda n: f"urn:epc:class:lgtin:4012345.011111.L{n}", st.integers(0, 999))
locations = st.sampled_from(["urn:epc:id:sgln:4012345.00001.0", "https://id.gs1.org/414/4012345000054"])
numbers = st.one_of(
    st.integers(-(2**53) + 1, 2**53 - 1), st.floats(allow_nan=False, allow_infinity=False, width=64)
)
extension_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["ex:a", "ex:b", "ex:c"]), inner, max_size=3),
    ),
    max_leaves=8,
)
quantities = st.fixed_dictionaries(
    {"epcClass": classes, "quantity": st.one_of(st.integers(0, 10**6), st.floats(0, 1e6))},
    optional={"uom": st.sampled_from(["KGM", "LTR", "EA"])},
)
biz_transactions = st.fixed_dictionaries(
    {
        "bizTransaction": st.sampled_from(
            ["urn:epcglobal:cbv:bt:4012345000009:PO1", "http://example.com/po/1"]
        )
    },
    optional={"type": st.sampled_from(["po", "inv", "desadv", "https://ref.gs1.org/cbv/BTT-bol"])},
)
sources = st.fixed_dictionaries(
    {"type": st.sampled_from(["owning_party", "possessing_party", "location"]), "source": locations}
)
reports = st.fixed_dictionaries(
    {"type": st.sampled_from(["Temperature", "AbsoluteHumidity", "ex:Odd"])},
    optional={
        "value": numbers,
        "uom": st.sampled_from(["CEL", "KEL", "A93"]),
        "minValue": numbers,
        "stringValue": texts,
        "booleanValue": st.booleans(),
        "deviceID": st.just("urn:epc:id:giai:4000001.111"),
        "time": st.just("2020-01-01T00:00:00Z"),
    },
)
sensor_elements = st.fixed_dictionaries(
    {"sensorReport": st.lists(reports, min_size=1, max_size=3)},
    optional={
        "sensorMetadata": st.fixed_dictionaries(
            {},
            optional={
                "deviceID": st.just("urn:epc:id:giai:4000001.222"),
                "startTime": st.just("2020-01-01T00:00:00Z"),
            },
        )
    },
)


EPC_LISTS = st.lists(epcs, min_size=1, max_size=3, unique=True)
QUANTITY_LISTS = st.lists(quantities, min_size=1, max_size=2)
ILMD = st.dictionaries(st.sampled_from(["ex:lot", "ex:best"]), extension_values, min_size=1, max_size=2)
# The members each event type has beyond the common ones (EPCIS 2.0, 7.4).
PER_TYPE: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "ObjectEvent": {"epcList": EPC_LISTS, "quantityList": QUANTITY_LISTS, "ilmd": ILMD},
    "AggregationEvent": {"childEPCs": EPC_LISTS, "childQuantityList": QUANTITY_LISTS},
    "TransactionEvent": {"epcList": EPC_LISTS, "quantityList": QUANTITY_LISTS},
    "TransformationEvent": {"inputEPCList": EPC_LISTS, "outputQuantityList": QUANTITY_LISTS, "ilmd": ILMD},
    "AssociationEvent": {"childEPCs": EPC_LISTS, "childQuantityList": QUANTITY_LISTS},
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"]
        )
    )
    t = draw(times)
    event: dict[str, Any] = {
        "type": kind,
        "eventTime": t.strftime("%Y-%m-%dT%H:%M:%S")
        + draw(st.sampled_from([".000Z", "Z", ".5+01:00", "-06:00"])),
        "eventTimeZoneOffset": draw(offsets),
    }
    if kind != "TransformationEvent":
        event["action"] = draw(
            st.sampled_from(["OBSERVE", "ADD", "DELETE"])
            if kind != "TransactionEvent"
            else st.sampled_from(["ADD", "DELETE", "OBSERVE"])
        )
    if kind in ("AggregationEvent", "AssociationEvent") or (
        kind == "TransactionEvent" and draw(st.booleans())
    ):
        event["parentID"] = "urn:epc:id:sscc:4012345.0000000001"
    members = {
        "bizStep": st.sampled_from(
            ["receiving", "shipping", "https://ref.gs1.org/cbv/BizStep-packing", "ex:odd"]
        ),
        "disposition": st.sampled_from(["in_progress", "in_transit"]),
        "readPoint": st.builds(lambda loc: {"id": loc}, locations),
        "bizLocation": st.builds(lambda loc: {"id": loc}, locations),
        "bizTransactionList": st.lists(biz_transactions, min_size=1, max_size=2),
        "sourceList": st.lists(sources, min_size=1, max_size=2),
        "sensorElementList": st.lists(sensor_elements, min_size=1, max_size=2),
        "certificationInfo": st.just("https://example.org/cert/1"),
        "eventID": st.sampled_from(
            ["urn:uuid:6d2b4c1e-0000-4000-8000-000000000001", "ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0"]
        ),
        "ex:extension": extension_values,
        "recordTime": st.just("2001-01-01T00:00:00Z"),
        **PER_TYPE[kind],
    }
    if kind == "TransactionEvent":
        event["bizTransactionList"] = draw(members.pop("bizTransactionList"))
    # Each type's identifying list is required (one of its lists, for most): the first of PER_TYPE.
    first = next(iter(PER_TYPE[kind]))
    event[first] = draw(members.pop(first))
    if kind == "TransformationEvent":
        event["outputQuantityList"] = draw(members.pop("outputQuantityList"))
    if not (kind == "ObjectEvent" and event.get("action") == "ADD"):
        members.pop("ilmd", None)  # ilmd belongs to an ObjectEvent that adds, or a TransformationEvent
    for name in draw(st.lists(st.sampled_from(sorted(members)), unique=True, max_size=8)):
        event[name] = draw(members[name])
    return event


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    listed = draw(st.lists(events(), min_size=1, max_size=3))
    doc: dict[str, Any] = {"@context": CTX, "schemaVersion": "2.0", "creationDate": "2024-01-01T00:00:00Z"}
    if draw(st.booleans()):
        doc.update(type="EPCISDocument", epcisBody={"eventList": listed})
    else:
        results = {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": listed}}
        doc.update(type="EPCISQueryDocument", epcisBody={"queryResults": results})
    return doc


def _valid(doc: dict[str, Any]) -> bool:
    try:
        validation.validate_document(doc)
    except validation.InvalidEventError:
        return False
    return True


def _assert_refusal_is_readable(job: capture.CaptureJob) -> None:
    assert job.errors, job
    for error in job.errors:
        assert set(error) == {"path", "message"}, error
        assert error["path"] == "" or error["path"].startswith("/"), error
        assert SENTENCE.match(error["message"]), error
        assert "Traceback" not in error["message"], error


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=documents())
def test_a_schema_valid_document_is_captured_or_refused_in_words(
    conn: psycopg.Connection[Any], doc: dict[str, Any]
) -> None:
    assume(_valid(doc))
    job = capture.capture(conn, doc, captured_by="property")
    if not job.success:
        _assert_refusal_is_readable(job)
    stored = capture.get_job(conn, job.capture_id)
    assert stored is not None
    assert (stored.success, stored.errors, stored.running) == (job.success, job.errors, False)


def test_the_generator_reaches_both_outcomes(conn: psycopg.Connection[Any]) -> None:
    """The property above is not vacuous: a plain generated document is captured, and one with a hash
    eventID that is not its hash is refused with a pointer to it."""
    event = {
        "type": "ObjectEvent",
        "eventTime": "2020-01-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "epcList": ["urn:epc:id:sgtin:4012345.011111.1"],
    }
    ok = capture.capture(
        conn,
        {
            "@context": CTX,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2024-01-01T00:00:00Z",
            "epcisBody": {"eventList": [event]},
        },
    )
    assert ok.success, ok.errors
    forged = {
        **event,
        "eventID": HASH_PREFIX + "ab" * 32 + "?ver=CBV2.0",
        "epcList": ["urn:epc:id:sgtin:4012345.011111.2"],
    }
    results = {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": [forged]}}
    refused = capture.capture(
        conn,
        {
            "@context": CTX,
            "type": "EPCISQueryDocument",
            "schemaVersion": "2.0",
            "creationDate": "2024-01-01T00:00:00Z",
            "epcisBody": {"queryResults": results},
        },
    )
    assert not refused.success
    _assert_refusal_is_readable(refused)
    assert refused.errors[0]["path"] == capture.QUERY_EVENT_LIST + "/0/eventID"


def test_a_biz_transaction_without_a_type_is_never_an_exception(conn: psycopg.Connection[Any]) -> None:
    """The schema allows a bizTransactionList entry without a type: captured, or refused with a sentence
    that points at the event (never the exception's text, once the bare message "'type'")."""
    event = {
        "type": "TransactionEvent",
        "eventTime": "2020-01-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "ADD",
        "epcList": ["urn:epc:id:sgtin:4012345.011111.3"],
        "bizTransactionList": [{"bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:PO7"}],
    }
    doc = {
        "@context": CTX,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-01-01T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    }
    assert _valid(doc)
    job = capture.capture(conn, doc)
    if not job.success:
        _assert_refusal_is_readable(job)
        assert job.errors[0]["path"] == "/epcisBody/eventList/0"
        assert "'type'" in job.errors[0]["message"]
        assert "cannot be hashed" in job.errors[0]["message"]


# -- the capture worker ---------------------------------------------------------------------------------


def _query_document() -> bytes:
    """GS1's EPCISQueryDocument example with each placeholder hash eventID made the event's hash."""
    doc = json.loads((EXAMPLES / "EPCISQueryDocument.jsonld").read_text())
    for event in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
        if event.get("eventID", "").startswith(HASH_PREFIX):
            event["eventID"] = event_hash({"@context": doc["@context"], **event})
    return json.dumps(doc).encode()


@pytest.mark.parametrize("check_process", [False, True], ids=["checked-in-thread", "checked-in-process"])
def test_the_worker_finishes_every_job_whatever_the_others_do(db_url: str, check_process: bool) -> None:
    """Queued jobs: one not JSON, one refused by the schema, one good; each is finished on its own (a
    refusal never stops the jobs after it), in the order queued, and keeps no body once finished; the
    same whether the documents are checked in the worker or in its checking process."""
    bodies = [b"{not json", json.dumps({"type": "EPCISDocument"}).encode(), _query_document()]
    with psycopg.connect(db_url, autocommit=True) as conn:
        queued = [capture.enqueue(conn, body, captured_by="worker-test") for body in bodies]
        assert all(job.running and job.success for job in queued)
        assert capture.get_job(conn, queued[0].capture_id).running  # type: ignore[union-attr]
    worker = CaptureWorker(db_url, check_process=check_process)
    try:
        assert worker.run_once() == 3
        assert (worker._pool is not None) is check_process
    finally:
        worker.close()
    with psycopg.connect(db_url, autocommit=True) as conn:
        jobs = [capture.get_job(conn, job.capture_id) for job in queued]
        assert [(j.running, j.success) for j in jobs if j is not None] == [
            (False, False),
            (False, False),
            (False, True),
        ]
        assert "not JSON" in jobs[0].errors[0]["message"]  # type: ignore[union-attr]
        assert jobs[2].events == 2  # type: ignore[union-attr]
        assert conn.execute("SELECT count(*) FROM capture_job WHERE body IS NOT NULL").fetchone() == (0,)
    assert CaptureWorker(db_url).run_once() == 0  # nothing pending: nothing done twice


def test_a_checking_process_that_dies_costs_no_job(db_url: str) -> None:
    """The checking process killed between two jobs: the next job is checked in the worker (not lost,
    not refused), and the job after it in a new checking process."""
    worker = CaptureWorker(db_url, check_process=True)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            first = capture.enqueue(conn, _query_document(), captured_by="first")
        assert worker.run_once() == 1
        assert worker._pool is not None
        dead = worker._pool
        for child in list(dead._processes.values()):  # the pool's own record of its process
            child.kill()
            child.join()
        with psycopg.connect(db_url, autocommit=True) as conn:
            second = capture.enqueue(conn, json.dumps({"type": "EPCISDocument"}).encode(), captured_by="2")
        assert worker.run_once() == 1
        assert worker._pool is None  # the dead one was let go; the next job starts another
        with psycopg.connect(db_url, autocommit=True) as conn:
            jobs = [capture.get_job(conn, job.capture_id) for job in (first, second)]
        assert [(j.running, j.success) for j in jobs if j is not None] == [(False, True), (False, False)]
        assert "schema" in jobs[1].errors[0]["message"].lower()  # type: ignore[union-attr]
        assert "internal error" not in jobs[1].errors[0]["message"]  # type: ignore[union-attr]
    finally:
        worker.close()


def test_the_document_the_writer_waits_for_is_checked_in_parts(db_url: str) -> None:
    """With the writer idle, a document is checked in parts, one in each checking process, and finished
    as if checked whole: captured, or refused with the reasons of its events wherever they are."""
    doc = json.loads(_query_document())
    events = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    late = json.loads(json.dumps(doc))
    late_events = late["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    late_events[-1]["eventTime"] = "2999-01-01T00:00:00Z"  # in the last part: refused there
    late_events[-1].pop("eventID", None)
    worker = CaptureWorker(db_url, check_process=True)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            refused = capture.enqueue(conn, json.dumps(late).encode(), captured_by="parts")
        assert worker.run_once() == 1
        assert worker._pool is not None
        assert len(worker._pool._processes) == CHECK_PROCESSES  # each part in a process of its own
        with psycopg.connect(db_url, autocommit=True) as conn:
            good = capture.enqueue(conn, json.dumps(doc).encode(), captured_by="parts")
        assert worker.run_once() == 1
        with psycopg.connect(db_url, autocommit=True) as conn:
            jobs = [capture.get_job(conn, job.capture_id) for job in (refused, good)]
    finally:
        worker.close()
    assert jobs[0] is not None
    assert not jobs[0].success
    assert [e["path"] for e in jobs[0].errors] == [
        f"/epcisBody/queryResults/resultsBody/eventList/{len(events) - 1}/eventTime"
    ]
    assert jobs[1] is not None
    assert jobs[1].success, jobs[1].errors
    assert jobs[1].events == len(events)


def test_a_job_another_worker_holds_is_left_to_it(db_url: str) -> None:
    """A pending job whose row another transaction holds (a worker finishing it) is skipped, not waited
    for and not finished twice; once that transaction ends without finishing it, it is taken."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        job = capture.enqueue(conn, _query_document(), captured_by="locked")
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM capture_job WHERE capture_id = %s FOR UPDATE", (job.capture_id,))
        assert CaptureWorker(db_url).run_once() == 0
        holder.rollback()  # the holder stopped before its commit: the job is pending still
    assert CaptureWorker(db_url).run_once() == 1
    with psycopg.connect(db_url) as conn:
        finished = capture.get_job(conn, job.capture_id)
    assert finished is not None
    assert (finished.running, finished.success, finished.events) == (False, True, 2)


def test_ledger_import_takes_a_query_document(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    path = server_tmp / "query.json"
    path.write_bytes(_query_document())
    result = CliRunner().invoke(cli_app, ["ledger", "import", str(path)])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert (job["success"], job["events"]) == (True, 2)


def test_the_ledger_stage_runs_the_capture_worker(db_url: str) -> None:
    """Services' ledger stage runs a capture worker beside the ledger worker: /health names it, and it
    finishes a job queued as POST /epcis/capture queues it."""
    from coldchain.runtime import Services

    services = Services(db_url, None, stages=("ledger",))
    services.start()
    try:
        assert services.liveness().get("capture") is True
        (component,) = [c for c in services._started if getattr(c, "name", None) == "capture"]
        worker: CaptureWorker = component.target  # type: ignore[attr-defined]
        with psycopg.connect(db_url, autocommit=True) as conn:
            job = capture.enqueue(conn, _query_document(), captured_by="runtime")
        worker.wake()
        assert worker.wait_finished(job.capture_id, 120)
    finally:
        services.stop()
    with psycopg.connect(db_url) as conn:
        finished = capture.get_job(conn, job.capture_id)
    assert finished is not None
    assert (finished.running, finished.success, finished.events) == (False, True, 2)


def test_a_queued_job_wakes_the_running_worker(db_url: str) -> None:
    """A running worker waits on the capture channel, not on its poll: a job queued from another process
    (no ``wake``) is finished although the poll is an hour away; a second one too, once it waits again."""
    worker = CaptureWorker(db_url)
    stop = threading.Event()
    running = threading.Thread(target=worker.run_forever, args=(stop, 3600.0), daemon=True)
    running.start()
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for n in range(2):
                job = capture.enqueue(conn, _query_document(), captured_by=f"announced {n}")
                assert worker.wait_finished(job.capture_id, 120)
    finally:
        stop.set()
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(queries.ANNOUNCE_CAPTURE_JOB)  # ends its wait
        running.join(timeout=60)
    assert not running.is_alive()


def test_a_finished_job_is_not_finished_again(db_url: str) -> None:
    """The writer takes a queued job's row before it writes: a job finished meanwhile (by another worker)
    is left as it is, its events not appended twice."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        job = capture.enqueue(conn, _query_document(), captured_by="twice")
        checked = capture.check_bytes(_query_document(), capture_id=job.capture_id)
        first = capture.write(conn, checked, captured_by="twice", queued=True)
        assert first is not None
        assert first.success
        again = capture.check_bytes(b"{not json", capture_id=job.capture_id)
        assert capture.write(conn, again, captured_by="twice", queued=True) is None
        stored = capture.get_job(conn, job.capture_id)
        assert stored is not None
        assert (stored.success, stored.events) == (True, 2)
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone() == (2,)

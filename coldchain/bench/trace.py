"""Composition root: `coldchain bench trace` — trace latency, capture and verification rates at scale.

Builds a private database with N lots moving sea → port → bonded zone → rail through reefer containers
(10 ledger events per lot), the containers' telemetry (generated server-side with generate_series), and
the ledger written with COPY (events, hashes and chain computed in Python, derived rows computed from
the same plan; the database is then vacuumed and checkpointed, as autovacuum and the checkpointer leave a
ledger at rest), then measures in one run:

* trace_p50_ms / trace_p95_ms: ``traceability.trace.trace`` of random lots;
* capture_eps: EPCIS documents (``--document-events`` each, 1000 by default; JSON-LD bytes) through the
  real capture path for new lots: queued as POST /epcis/capture queues them, finished by the capture
  worker running as the ledger stage runs it (woken by the queue's announcement; checking in its child
  processes: parse, schema validation, event hash, canonical bytes; then chain and derivation), each
  burst of ``--capture-events`` timed from the first queued job to the last finished (``capture_rate``),
  after one untimed warm-up document of up to 1000 events (checking processes started, schema compiled,
  validator memos filled, as in a running service); the median of ``--capture-bursts`` bursts, each
  burst's rate beside it (capture_eps_bursts); capture_eps_xml: as many bursts of other new lots' events
  as EPCIS 2.0 XML documents, the same way; capture_store_eps, the ceiling beside capture_eps: the rows
  that capture stored for the JSON bursts' events (entries and derived rows) written again by the
  database alone, one COPY a table in one transaction, into copies of their tables holding the ledger
  before them (``capture_store_rate``);
* verify_eps: ``verify.verify`` over the whole chain (full integrity: every event's canonical bytes
  digested, every link, no holes, served columns bound to the bytes, signed checkpoint), and
  verify_deep_eps: ``verify.verify(deep=True)``, which also re-derives every GS1 event hash and compares
  every row's served columns with its bytes (the slow path, the peer figure);
* api_trace_rps: ``GET /trace/{lot}`` of random lots per second through the real API (uvicorn, API key,
  audit row) at 32 requests in flight, beside api_ceiling_rps: ``GET /ledger/checkpoint`` the same way,
  the API's own path around one trivial SELECT (the ceiling a trace request can reach).
"""

from __future__ import annotations

import contextlib
import random
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import msgspec
import psycopg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql

from coldchain.bench.app import bench_app, database_probe, host_probe, scratch_database, steal_meter
from coldchain.cli.common import cli_settings, emit_json

if TYPE_CHECKING:
    from traceability.capture_worker import CaptureWorker

HOURS_PER_LOT_TRIP = 20
LOTS_PER_CONTAINER_TRIP = 10
LINE, RAILCO, STORE = "6901234100006", "6901234100013", "6901234100020"
PORT, RAIL, GATE, BONDED_STORE = (
    "urn:epc:id:sgln:6901234.00010.0",
    "urn:epc:id:sgln:6901234.00020.0",
    "urn:epc:id:sgln:6901234.00030.0",
    "urn:epc:id:sgln:6901234.00031.0",
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# How long the bench waits for one capture job (a stalled worker fails the run instead of hanging it).
CAPTURE_TIMEOUT_S = 300.0
# Capture bursts timed a run, JSON and XML each: one burst (five documents, under a second) follows the
# shared host's state in that second; their median is the figure.
CAPTURE_BURSTS = 5


def _container(i: int) -> str:
    from traceability.epcis.multimodal import container_number

    base = f"CSQU{i:06d}"
    from stdnum import iso6346

    return container_number(base + str(iso6346.calc_check_digit(base)))


def _lot_events(n: int, container: str, start: datetime, prefix: str = "B") -> list[dict[str, Any]]:
    """The 10 events of lot ``n`` riding in ``container`` from ``start``."""
    from traceability.epcis import builders, multimodal

    lot = f"urn:epc:class:lgtin:6901234.012345.{prefix}{n:07d}"
    sscc = f"urn:epc:id:sscc:6901234.{n:010d}"
    docs = multimodal.biz_transactions(bill_of_lading=f"BL{n // 10:07d}", through_document=f"TD{n // 10:07d}")
    rail_docs = multimodal.biz_transactions(
        rail_waybill=f"WB{n // 10:07d}", through_document=f"TD{n // 10:07d}"
    )
    sea = multimodal.conveyance("sea", vessel="IMO9876543", voyage=f"V{n // 1000:03d}")
    train = multimodal.conveyance("rail", train=f"X{n // 100:05d}")

    def h(x: float) -> datetime:
        return start + timedelta(hours=x)

    return [
        builders.with_event_id(
            builders.aggregation_event(
                event_time=h(-1),
                action="ADD",
                parent_id=sscc,
                child_quantities=[builders.quantity(lot, 800, "KGM")],
                biz_step="packing",
            )
        ),
        multimodal.stuffing(t=h(-0.5), container=container, units=[sscc], location=PORT, transactions=docs),
        multimodal.movement(
            t=h(0),
            step="departing",
            epcs=[sscc],
            location=PORT,
            conveyance_ext=sea,
            custodian=LINE,
            transactions=docs,
        ),
        multimodal.movement(
            t=h(6),
            step="arriving",
            epcs=[sscc],
            location=PORT,
            conveyance_ext=sea,
            custodian=LINE,
            gate="port_terminal",
        ),
        multimodal.inspection(t=h(7), epcs=[sscc], lots=[lot], location=PORT),
        multimodal.bonded(t=h(8), lots=[lot], status="bonded", line="first", location=GATE),
        multimodal.movement(
            t=h(9),
            step="departing",
            epcs=[sscc],
            location=RAIL,
            conveyance_ext=train,
            custodian=RAILCO,
            transactions=rail_docs,
            gate="rail_station",
        ),
        multimodal.unstuffing(t=h(16), container=container, units=[sscc], location=BONDED_STORE),
        multimodal.movement(
            t=h(16),
            step="receiving",
            epcs=[sscc],
            location=BONDED_STORE,
            conveyance_ext=train,
            custodian=STORE,
        ),
        multimodal.bonded(t=h(19), lots=[lot], status="released", line="second", location=GATE),
    ]


def _registry(conn: psycopg.Connection[Any], containers: int, readings_per_container: int) -> None:
    from registry.models import Asset, Device, Location, Mount, Party
    from registry.store import add_assets, add_devices, add_locations, add_mounts, add_parties, ensure_series

    add_parties(
        conn,
        [
            Party(LINE, "Ocean line", "carrier"),
            Party(RAILCO, "Sea-rail operator", "carrier"),
            Party(STORE, "Bonded cold store", "cold_store"),
        ],
    )
    add_locations(
        conn,
        [
            Location(PORT, "Port", "port"),
            Location(RAIL, "Rail station", "rail_station"),
            Location(GATE, "Bonded gate", "bonded_zone"),
            Location(BONDED_STORE, "Bonded store", "cold_store"),
        ],
    )
    conn.execute(
        "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,"
        " storage_max_gap_s, transport_max_gap_s)"
        " VALUES ('chilled', 'bench', '1', 'chilled', 0, 4, 'bench', 1800, 600) ON CONFLICT DO NOTHING"
    )
    numbers = [_container(i) for i in range(containers)]
    assets = [Asset(f"C-{n}", "reefer_container", n, epc=f"urn:epc:id:bic:{n}") for n in numbers]
    add_assets(conn, assets)
    add_devices(conn, [Device(f"rc-{a.asset_id}", "reefer_controller") for a in assets])
    add_mounts(conn, [Mount(f"rc-{a.asset_id}", a.asset_id, T0 - timedelta(days=1)) for a in assets])
    ensure_series(conn, [(f"rc-{a.asset_id}", "temp") for a in assets])
    # Every 5 min from T0; 2 °C ± 1 with a 40-minute 9 °C excursion in every 500 readings.
    conn.execute(
        """
        INSERT INTO reading (time, series_id, value, received_at)
        SELECT %(t0)s + g * interval '5 minutes', s.series_id,
               CASE WHEN g %% 500 BETWEEN 100 AND 107 THEN 9.0
                    ELSE 2.0 + ((g * 7 + s.series_id) %% 10) / 10.0 END,
               %(t0)s + g * interval '5 minutes'
        FROM series s, generate_series(0, %(n)s - 1) g
        """,
        {"t0": T0, "n": readings_per_container},
    )


def _plan(lots: int, containers: int, readings_per_container: int) -> Iterator[tuple[int, str, datetime]]:
    trips = max(1, (readings_per_container * 5) // 60 // HOURS_PER_LOT_TRIP)
    for n in range(lots):
        container_i = (n // LOTS_PER_CONTAINER_TRIP) % containers
        trip = (n // (LOTS_PER_CONTAINER_TRIP * containers)) % trips
        yield n, _container(container_i), T0 + timedelta(hours=1 + trip * HOURS_PER_LOT_TRIP)


def _bulk_ledger(conn: psycopg.Connection[Any], lots: int, containers: int, readings: int) -> int:
    """Write every lot's events with COPY: hashes and chain here, derived rows from the plan."""
    from traceability.epcis.builders import biz_step_name, parse_time
    from traceability.epcis.eventhash import event_hash
    from traceability.epcis.jcs import canonical
    from traceability.ledger.chain import GENESIS_HASH, content_digest, entry_hash
    from traceability.ledger.derive import subjects_of
    from traceability.ledger.import_steps import COLUMNS as IMPORT_STEP_COLUMNS
    from traceability.ledger.import_steps import import_steps

    prev, seq = GENESIS_HASH, 0
    ledger_rows: list[tuple[Any, ...]] = []
    subjects: list[tuple[Any, ...]] = []
    bts: list[tuple[Any, ...]] = []
    bonded: list[tuple[Any, ...]] = []
    steps: list[tuple[Any, ...]] = []
    containment: list[tuple[Any, ...]] = []
    legs: list[tuple[Any, ...]] = []
    for n, container, start in _plan(lots, containers, readings):
        events = _lot_events(n, container, start)
        seqs = []
        for event in events:
            seq += 1
            ev_hash = event_hash(event)
            jcs = canonical(event)
            link = entry_hash(prev, ev_hash, content_digest(jcs))
            ledger_rows.append(
                (
                    seq,
                    event["eventID"],
                    event["type"],
                    parse_time(event["eventTime"]),
                    biz_step_name(event.get("bizStep")),
                    ev_hash,
                    prev,
                    link,
                    jcs,
                )
            )
            prev = link
            seqs.append(seq)
            subjects.extend((i, seq, r) for i, r in subjects_of(event))
            bts.extend((b["bizTransaction"], b["type"], seq) for b in event.get("bizTransactionList", ()))
            steps.extend(import_steps(seq, parse_time(event["eventTime"]), event))
            if "cc:bondedStatus" in event:
                bonded.append(
                    (
                        event["quantityList"][0]["epcClass"],
                        event["cc:bondedStatus"],
                        event["cc:customsLine"],
                        seq,
                        parse_time(event["eventTime"]),
                    )
                )
        lot = events[0]["childQuantityList"][0]["epcClass"]
        sscc, cont = events[0]["parentID"], events[1]["parentID"]
        t = [parse_time(e["eventTime"]) for e in events]
        containment += [
            (lot, sscc, None, t[0], None, seqs[0], None),
            (sscc, cont, None, t[1], t[7], seqs[1], seqs[7]),
            (sscc, None, PORT, t[3], t[8], seqs[3], seqs[8]),
            (sscc, None, BONDED_STORE, t[8], None, seqs[8], None),
        ]
        asset = "C-" + cont.removeprefix("urn:epc:id:bic:")
        legs += [
            (sscc, LINE, PORT, asset, t[2], t[6], seqs[2], seqs[6]),
            (sscc, RAILCO, RAIL, asset, t[6], t[8], seqs[6], seqs[8]),
            (sscc, STORE, BONDED_STORE, None, t[8], None, seqs[8], None),
        ]
    with conn.cursor() as cur:
        with cur.copy(
            "COPY ledger_event (seq, event_id, event_type, event_time, biz_step, event_hash, prev_hash,"
            " entry_hash, event_jcs) FROM STDIN"
        ) as copy:
            for row in ledger_rows:
                copy.write_row(row)
        for table, cols, rows in (
            ("event_subject", ("subject_id", "seq", "role"), subjects),
            ("biz_transaction", ("biz_transaction", "type", "seq"), bts),
            ("bonded_status", ("lot_id", "status", "line", "seq", "event_time"), bonded),
            ("import_step", IMPORT_STEP_COLUMNS, steps),
            (
                "containment",
                ("child_id", "parent_id", "location_id", "t0", "t1", "start_seq", "end_seq"),
                containment,
            ),
            (
                "custody_leg",
                ("epc", "custodian", "location_id", "asset_id", "t_start", "t_end", "start_seq", "end_seq"),
                legs,
            ),
        ):
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, cols))
            )
            with cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
    return seq


# The API figure: requests in flight at once (four times the default pool, the load the API is tested
# at), and how many are timed per route.
API_CONCURRENCY = 32
API_REQUESTS = 2_000


def _api_rates(url: str, lot_ids: list[str], requests: int, rng: random.Random) -> dict[str, float]:
    """Requests per second through the real API (uvicorn on a free port in this process, an inspector
    key, ``API_CONCURRENCY`` requests in flight from a thread pool): ``GET /trace/{lot}`` of random lots,
    and its ceiling, ``GET /ledger/checkpoint``, which takes the same path through the API (key lookup,
    one connection, audit row) around one trivial SELECT. Client and server share this process, so both
    figures carry the client's cost alike."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import uvicorn

    from coldchain.embedded import free_port
    from traceability.api.app import create_app
    from traceability.api.auth import create_key

    with psycopg.connect(url) as conn:
        key = create_key(conn, "inspector", "bench api")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(url), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    limits = httpx.Limits(max_connections=API_CONCURRENCY, max_keepalive_connections=API_CONCURRENCY)
    rates: dict[str, float] = {}
    try:
        with (
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, limits=limits, timeout=60
            ) as client,
            ThreadPoolExecutor(API_CONCURRENCY) as pool,
        ):
            routes = {
                "api_trace_rps": [f"/trace/{rng.choice(lot_ids)}" for _ in range(requests)],
                "api_ceiling_rps": ["/ledger/checkpoint"] * requests,
            }
            for name, paths in routes.items():
                list(pool.map(lambda p: client.get(p).status_code, paths[:API_CONCURRENCY]))  # warm up
                t = time.perf_counter()
                statuses = list(pool.map(lambda p: client.get(p).status_code, paths))
                rates[name] = round(len(paths) / (time.perf_counter() - t), 1)
                if any(code != 200 for code in statuses):
                    raise RuntimeError(f"{name}: answers other than 200: {sorted(set(statuses))}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return rates


class Burst(NamedTuple):
    """Capture jobs finished (``capture_rate``): their events, the seconds it took, and the seqs of the
    entries they appended."""

    events: int
    seconds: float
    first_seq: int | None
    last_seq: int | None


def capture_rate(worker: CaptureWorker, url: str, bodies: Sequence[bytes]) -> Burst:
    """Events captured and the seconds it took: the bodies queued one after the other as POST
    /epcis/capture queues them (one pending job each, announced on the capture channel), finished by
    ``worker``, a capture worker running as the ledger stage runs it (``run_forever``, woken by the first
    announcement: it checks the first document while the next are queued; then its pipeline, the next
    document checked in the checking process while the database appends the one before). Timed from the
    first job queued to the last finished. Any body capture reads can be measured so (capture_eps is
    JSON-LD's)."""
    from traceability.epcis import capture

    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        jobs = [capture.enqueue(conn, body, captured_by="bench") for body in bodies]
        for queued in jobs:  # finished in the order queued
            if not worker.wait_finished(queued.capture_id, CAPTURE_TIMEOUT_S):
                raise RuntimeError(f"capture {queued.capture_id} not finished in {CAPTURE_TIMEOUT_S} s")
        elapsed = time.perf_counter() - t
        events, seqs = 0, []
        for queued in jobs:
            job = capture.get_job(conn, queued.capture_id)
            assert job is not None, queued.capture_id
            assert job.success, job.errors
            assert not job.running, job.capture_id
            events += job.events
            seqs += [s for s in (job.first_seq, job.last_seq) if s is not None]
    return Burst(events, elapsed, min(seqs, default=None), max(seqs, default=None))


class Stored(NamedTuple):
    """``capture_store_rate``: the entries written again, the seconds their rows took, and the rows by
    table."""

    events: int
    seconds: float
    rows: dict[str, int]


STORE_PREFIX = "bench_store_"


def capture_store_rate(url: str, first_seq: int, last_seq: int) -> Stored:
    """The ceiling of a capture measured in the same run: the ledger's entries ``first_seq``..``last_seq``
    (what a capture appended) and the derived rows they made, written again as capture writes them (the
    same columns: ``queries.COPY_EVENT_COLUMNS``, ``derive.DERIVED_TABLES``), one binary COPY a table, in one
    transaction, into copies of those tables (``STORE_PREFIX``; their columns, defaults, the generated
    jsonb, CHECK constraints, indexes and storage parameters, not their triggers) holding every row from
    before ``first_seq``, vacuumed and checkpointed as the ledger was before them. What the capture did
    beyond storing those rows (reading the job, checking, hashing, deriving, its round trips and commits,
    its job rows, the shipments its documents named) is not in it. The copies are dropped afterwards."""
    from traceability import queries
    from traceability.ledger import derive

    tables = [("ledger_event", queries.COPY_EVENT_COLUMNS), *derive.DERIVED_TABLES]
    exported: list[tuple[str, sql.Composed, bytes]] = []
    rows: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            for table, columns in tables:
                # The entry a row comes from: its seq, or the seq that started its interval.
                entry = "start_seq" if "start_seq" in columns else "seq"
                name, copy = sql.Identifier(table), sql.Identifier(STORE_PREFIX + table)
                listed = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(copy, name))
                _copy_storage_parameters(conn, table, STORE_PREFIX + table)
                conn.execute(
                    sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE {} < %s").format(
                        copy, listed, listed, name, sql.Identifier(entry)
                    ),
                    (first_seq,),
                )
                data = bytearray()
                rows_of = sql.SQL(
                    "COPY (SELECT {} FROM {} WHERE {} BETWEEN %s AND %s ORDER BY {})"
                    " TO STDOUT (FORMAT BINARY)"
                ).format(listed, name, sql.Identifier(entry), sql.Identifier(entry))
                with conn.cursor() as cur, cur.copy(rows_of, (first_seq, last_seq)) as out:
                    for block in out:
                        data += block
                statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(copy, listed)
                exported.append((table, statement, bytes(data)))
            copies = sql.SQL(", ").join(sql.Identifier(STORE_PREFIX + table) for table, _ in tables)
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(copies))
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                conn.execute("CHECKPOINT")
            t = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                for table, statement, payload in exported:
                    with cur.copy(statement) as into:
                        into.write(payload)
                    rows[table] = cur.rowcount
            seconds = time.perf_counter() - t
        finally:
            for table, _ in tables:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(STORE_PREFIX + table)))
    return Stored(rows["ledger_event"], seconds, rows)


def _copy_storage_parameters(conn: psycopg.Connection[Any], source: str, target: str) -> None:
    """Give table ``target`` the storage parameters of ``source`` (``LIKE`` copies none): the ledger's
    rows stay inline and uncompressed up to a page (``toast_tuple_target``), and so must its copy's."""
    row = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (source,)).fetchone()
    options = [option.split("=", 1) for option in (row[0] if row and row[0] else [])]
    if options:
        listed = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(key), sql.Literal(value)) for key, value in options
        )
        conn.execute(sql.SQL("ALTER TABLE {} SET ({})").format(sql.Identifier(target), listed))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@bench_app.command("trace")
def bench_trace(
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (smoke test).")] = False,
    lots: Annotated[int, typer.Option(help="Lots (10 ledger events each).")] = 10_000,
    containers: Annotated[int, typer.Option(help="Reefer containers (one temperature series each).")] = 1_000,
    readings_per_container: Annotated[
        int, typer.Option(help="Readings per container (5 min apart).")
    ] = 1_000,
    traces: Annotated[int, typer.Option(help="Trace queries timed.")] = 300,
    capture_events: Annotated[
        int, typer.Option(help="Events captured through POST-equivalent path.")
    ] = 5_000,
    document_events: Annotated[
        int, typer.Option(min=1, help="Events per captured document (a reader's few, a port system's many).")
    ] = 1_000,
    capture_bursts: Annotated[
        int,
        typer.Option(
            min=1, help="Bursts of --capture-events events, JSON then XML: each figure is their median."
        ),
    ] = CAPTURE_BURSTS,
    api_requests: Annotated[
        int, typer.Option(help=f"Requests timed per API route, {API_CONCURRENCY} in flight.")
    ] = API_REQUESTS,
) -> None:
    """Trace latency, capture rate, verification rate and API request rate over a multimodal ledger."""
    from coldchain.stack import open_stack
    from traceability.api.app import create_app
    from traceability.api.auth import create_key
    from traceability.capture_worker import CaptureWorker, settle_heap
    from traceability.epcis import xml as epcis_xml
    from traceability.epcis.builders import CONTEXT, document
    from traceability.ledger import checkpoint, verify
    from traceability.trace import trace

    from .readings import measure_leg_downsample
    from .reports import measure_pdf
    from .web import measure_trace_page

    if quick:
        lots, containers, readings_per_container, traces, capture_events = 200, 20, 300, 30, 200
        capture_bursts = min(capture_bursts, 2)
        api_requests = 200
    steal = steal_meter()
    probe = host_probe()
    settings = cli_settings()
    rng = random.Random(5)
    with (
        open_stack(settings, apply_migrations=False) as stack,
        scratch_database(stack.database_url, "bench_trace") as url,
    ):
        database = database_probe(url)
        t_build = time.perf_counter()
        with psycopg.connect(url) as conn:
            _registry(conn, containers, readings_per_container)
            conn.commit()
            events = _bulk_ledger(conn, lots, containers, readings_per_container)
            conn.commit()
            # A ledger at rest has been vacuumed (autovacuum): hint bits and the visibility map set,
            # so the first full read (verification) does not rewrite every freshly bulk-loaded page.
            # It has been checkpointed too: without that, the first full read also writes out the
            # bulk load's dirty buffers as it evicts them (measured: ≈ 3x the server time of that read).
            conn.autocommit = True
            conn.execute("VACUUM (ANALYZE)")
            try:
                conn.execute("CHECKPOINT")  # superuser or pg_checkpoint; reported either way
                checkpointed = True
            except psycopg.errors.InsufficientPrivilege:
                checkpointed = False
            conn.autocommit = False
            build_s = time.perf_counter() - t_build
            key = Ed25519PrivateKey.generate()
            checkpoint.sign_head(conn, key)
            conn.commit()
            lot_ids = [f"urn:epc:class:lgtin:6901234.012345.B{n:07d}" for n in range(lots)]
            sample = [rng.choice(lot_ids) for _ in range(traces)]
            trace(conn, sample[0])  # warm caches and plans
            timings, legs_seen, most_legs = [], 0, (0, sample[0])
            for lot in sample:
                t = time.perf_counter()
                result = trace(conn, lot)
                timings.append((time.perf_counter() - t) * 1000)
                assert result is not None
                legs_seen += len(result.custody)
                most_legs = max(most_legs, (len(result.custody), lot))
            conn.rollback()
        # The inspector's desk on the same ledger: the PDF of the sampled lot with the most legs.
        pdf = measure_pdf(url, most_legs[1], repeats=3 if quick else 5)
        with psycopg.connect(url) as conn:
            inspector = create_key(conn, "inspector", "bench trace")
            conn.commit()
        page = measure_trace_page(create_app(url), inspector, most_legs[1], repeats=20 if quick else traces)
        # Capture: documents of 1000 events for new lots, through the real capture path. The first
        # 100 lots' events go first as a warm-up document of the same size, not timed: a running
        # service has started its checking process, compiled the EPCIS schema and filled the memos
        # of its validator before its first timed document. Then ``capture_bursts`` bursts of other
        # new lots' events as JSON-LD (capture_eps: their median), then as many as EPCIS 2.0 XML
        # (capture_eps_xml): one burst's rate moves with the host from one second to the next.
        warm_lots = min(100, max(1, capture_events // 10))
        timed_lots = max(1, capture_events // 10)
        new_lots = warm_lots + 2 * timed_lots * capture_bursts
        batch: list[dict[str, Any]] = []
        for n, container, start in _plan(new_lots, containers, readings_per_container):
            batch.extend(_lot_events(lots + n, container, start, prefix="C"))
        warm_up, batch = document(batch[: warm_lots * 10]), batch[warm_lots * 10 :]
        size, burst_events = document_events, timed_lots * 10
        bursts = [
            batch[i : i + burst_events] for i in range(0, 2 * capture_bursts * burst_events, burst_events)
        ]
        json_bursts = [
            [msgspec.json.encode(document(events[i : i + size])) for i in range(0, len(events), size)]
            for events in bursts[:capture_bursts]
        ]
        xml_bursts = [
            [
                epcis_xml.events_to_xml({**e, "@context": CONTEXT} for e in events[i : i + size])
                for i in range(0, len(events), size)
            ]
            for events in bursts[capture_bursts:]
        ]
        settle_heap()  # as `coldchain run` does once its stages have started
        worker = CaptureWorker(url, check_process=True)
        stop = threading.Event()
        running = threading.Thread(target=worker.run_forever, args=(stop,), name="bench-capture", daemon=True)
        running.start()
        try:
            warm_up_events = capture_rate(worker, url, [msgspec.json.encode(warm_up)]).events
            json_timed = [capture_rate(worker, url, docs) for docs in json_bursts]
            xml_timed = [capture_rate(worker, url, docs) for docs in xml_bursts]
        finally:
            stop.set()
            worker.wake()
            running.join()
        first_seq, last_seq = json_timed[0].first_seq, json_timed[-1].last_seq
        assert first_seq is not None
        assert last_seq is not None
        stored = capture_store_rate(url, first_seq, last_seq)
        with psycopg.connect(url, autocommit=True) as conn:
            checkpoint.sign_head(conn, key)
            t = time.perf_counter()
            full = verify.verify(conn, public_key=checkpoint.public_hex(key))
            verify_s = time.perf_counter() - t
            t = time.perf_counter()
            deep = verify.verify(conn, deep=True, public_key=checkpoint.public_hex(key))
            deep_s = time.perf_counter() - t
            api = _api_rates(url, lot_ids, api_requests, rng)
            # Last, as it adds a 30-day minute series of its own to the database.
            downsample = measure_leg_downsample(url, repeats=10 if quick else 20)
            sizes = conn.execute(
                "SELECT (SELECT count(*) FROM reading), (SELECT count(*) FROM ledger_event),"
                " (SELECT count(*) FROM lot) + %s, pg_total_relation_size('reading'),"
                " pg_total_relation_size('ledger_event'), pg_database_size(current_database())",
                (lots + new_lots,),
            ).fetchone()
            assert sizes is not None
    out = {
        "bench": "trace",
        "trace_p50_ms": round(statistics.median(timings), 2),
        "trace_p95_ms": round(_percentile(timings, 0.95), 2),
        "capture_eps": round(statistics.median(b.events / b.seconds for b in json_timed), 1),
        "capture_eps_xml": round(statistics.median(b.events / b.seconds for b in xml_timed), 1),
        "capture_eps_bursts": [round(b.events / b.seconds, 1) for b in json_timed],
        "capture_eps_xml_bursts": [round(b.events / b.seconds, 1) for b in xml_timed],
        "capture_store_eps": round(stored.events / stored.seconds, 1),
        "capture_store_rows": stored.rows,
        "verify_eps": round(full.events / verify_s, 1),
        "verify_deep_eps": round(deep.events / deep_s, 1),
        "verify_ok": full.anchored and deep.anchored,
        "traces": len(timings),
        "legs_per_trace": round(legs_seen / max(1, len(timings)), 2),
        "readings": sizes[0],
        "ledger_events": sizes[1],
        "lots": sizes[2] - 0,
        "bulk_events": events,
        "captured_events": sum(b.events for b in json_timed),
        "captured_events_xml": sum(b.events for b in xml_timed),
        "warm_up_events": warm_up_events,
        "reading_bytes": sizes[3],
        "ledger_bytes": sizes[4],
        "database_bytes": sizes[5],
        "build_s": round(build_s, 1),
        "build_checkpointed": checkpointed,
        "api_trace_rps": api["api_trace_rps"],
        "api_ceiling_rps": api["api_ceiling_rps"],
        "api_concurrency": API_CONCURRENCY,
        "trace_page_p50_ms": page["trace_page_p50_ms"],
        "trace_page_p95_ms": page["trace_page_p95_ms"],
        "trace_page_wall_p95_ms": page["trace_page_wall_p95_ms"],
        "pdf_p50_ms": pdf["pdf_p50_ms"],
        "pdf_max_ms": pdf["pdf_max_ms"],
        "pdf_read_p50_ms": pdf["read_p50_ms"],
        "pdf_render_p50_ms": pdf["render_p50_ms"],
        "pdf_legs": pdf["legs"],
        "pdf_bytes": pdf["pdf_bytes"],
        "leg_downsample_p50_ms": downsample["leg_downsample_p50_ms"],
        "leg_downsample_p95_ms": downsample["leg_downsample_p95_ms"],
        "leg_downsample_readings": downsample["readings"],
        "leg_downsample_points": downsample["points"],
        "cpu_steal_pct": steal(),
        "host_probe_ms": probe(),
        "database": database,
        "params": {
            "quick": quick,
            "lots": lots,
            "containers": containers,
            "readings_per_container": readings_per_container,
            "capture_events": capture_events,
            "document_events": document_events,
            "capture_bursts": capture_bursts,
            "api_requests": api_requests,
        },
    }
    if as_json:
        emit_json(out)
    else:
        for k, v in out.items():
            typer.echo(f"{k}: {v}")

"""Stage 3, ledger: the capture worker — pending capture jobs (POST /epcis/capture) checked and appended.

POST /epcis/capture stores a document's bytes as a pending job, announced on the capture channel, and
answers 202 (``capture.enqueue``); this worker, listening there, finishes the jobs, oldest first, each all
or nothing (``capture.write``). It is a two-stage
pipeline: a preparing thread takes pending jobs and checks each document (parse, limits, JSON Schema,
the rules the schema cannot say, CBV 2.0 hash, canonical bytes: no database), and the writing thread
finishes them in order, each document with those checked by the time the writer is free in one
transaction (``capture.write_group``: under the ledger's lock, the append, the job rows; an eventID the
ledger holds already is found by its unique index), with at most ``QUEUE_DEPTH`` checked documents
between them. Document N+1 is checked while the database appends document N.

With ``check_process`` (what the ledger stage runs), the checking itself runs in ``CHECK_PROCESSES`` child
processes of this worker (spawned, not forked: this process has threads), so it does not hold this
interpreter's lock against the writing thread, whose own work then overlaps the database's; a child's
result comes back pickled. The checking also makes each entry's row parts and the keys the derivation
reads by, so the writer only joins them. A document checked while the writer appends is checked whole
in one child; the one the writer waits for (the first of a burst) is checked in parts, one in each
child (``capture.check_part``, merged as if checked whole). A child that dies is replaced, and the
document it held is checked here.

Pending jobs are taken FOR UPDATE SKIP LOCKED, by the preparing thread as it reads them and again by the
transaction that finishes each: two workers never finish one job twice, and a job whose worker stopped
before its commit is pending still, so a restarted worker takes it. A job's failure is that job's
refusal, recorded with its reasons; it never stops the jobs after it. A database that cannot be reached
is an exception (the supervisor sees it; the jobs stay pending).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import queue
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
import psycopg

from traceability import queries
from traceability.epcis import builders, capture, validation
from traceability.ledger import chain, derive

log = logging.getLogger(__name__)

# Checked documents waiting for the writer: two keep it busy (one being appended, one ready) while the
# preparer checks a third; more would only hold memory (a document is up to the document byte limit).
QUEUE_DEPTH = 2
# The most documents one transaction writes (``capture.write_group``): the writer takes, with the one it
# waited for, those checked meanwhile (the queue holds ``QUEUE_DEPTH``). A write pays part of its cost
# once whatever its size (the round trip under the lock, each table's COPY, the commit: ≈ 7 ms, against
# some 70 ms for 1 000 events).
GROUP_DOCUMENTS = QUEUE_DEPTH + 1
# Pending jobs read per query by the preparer (each is taken again, row-locked, by its writer): one, as
# a body may be as large as the document limit (16 MiB) and one query a job costs nothing beside it.
TAKE_BATCH = 1
# Checking processes (with ``check_process``): the document the writer waits for (the first of a burst) is
# checked in parts, one in each; the others, checked while the writer appends, in one each.
CHECK_PROCESSES = 2
# How many finished capture ids ``wait_finished`` remembers.
REMEMBERED = 10_000

_Item = tuple[capture.Checked, str | None]


class CaptureWorker:
    """Finishes pending capture jobs (``run_once`` / ``run_forever``), under ``limits``."""

    def __init__(
        self,
        conninfo: str,
        limits: capture.CaptureLimits = capture.DEFAULT_LIMITS,
        *,
        check_process: bool = False,
    ) -> None:
        self._conninfo = conninfo
        self._limits = limits
        self._check_process = check_process
        self._pool: ProcessPoolExecutor | None = None
        self._preparing: psycopg.Connection[Any] | None = None
        self._wake = threading.Event()
        self._writing = threading.Event()  # set while the writer appends a document
        self._finished = threading.Condition()
        self._finished_ids: set[str] = set()
        self._finished_order: deque[str] = deque()

    def wake(self) -> None:
        """Look for jobs before the next wait (a wait under way ends at the queue's next announcement or
        the poll); a job queued by ``capture.enqueue`` wakes the worker by its announcement anyway."""
        self._wake.set()

    def run_forever(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Finish pending jobs until ``stop`` is set; when there are none, wait until a job is queued (the
        queue announces each on ``queries.CAPTURE_CHANNEL``, which this worker listens on), ``wake`` is
        called, or ``poll_s`` has passed. One connection throughout; the preparing thread only while
        there are jobs, its connection kept from one run of jobs to the next."""
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute(queries.LISTEN_CAPTURE_JOBS)
                while not stop.is_set():
                    self._wake.clear()
                    if self._drain(conn, stop) == 0 and not self._wake.is_set():
                        for _ in conn.notifies(timeout=poll_s, stop_after=1):
                            pass
        finally:
            self.close()

    def close(self) -> None:
        """End the checking process, if one runs, and close the preparing thread's connection
        (``run_forever`` does this when it ends)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._close_preparing_connection()

    def _preparing_connection(self) -> psycopg.Connection[Any]:
        """The preparing thread's connection, kept from one run of jobs to the next (opened again after a
        failure): a burst of documents starts without a connection's start-up (a new backend)."""
        if self._preparing is None or self._preparing.closed:
            self._preparing = psycopg.connect(self._conninfo, autocommit=True)
        return self._preparing

    def _close_preparing_connection(self) -> None:
        conn, self._preparing = self._preparing, None
        if conn is not None:
            conn.close()

    def run_once(self) -> int:
        """Finish every job pending now (and those queued meanwhile); return how many this worker finished."""
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                return self._drain(conn, threading.Event())
        finally:
            self._close_preparing_connection()

    def _drain(self, conn: psycopg.Connection[Any], halt: threading.Event) -> int:
        """The pipeline over the pending jobs, until there are none or ``halt`` is set (the jobs not
        finished then stay pending); the writing thread is this one, on ``conn``."""
        pending = conn.execute(queries.PENDING_CAPTURE_JOBS).fetchone()
        if pending is None or not pending[0]:
            return 0
        items: queue.Queue[_Item | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        stop = threading.Event()
        failure: list[BaseException] = []
        preparer = threading.Thread(
            target=self._prepare, args=(items, stop, failure), name="coldchain-capture-prepare", daemon=True
        )
        finished = 0
        preparer.start()
        try:
            ended = False
            while not ended and not halt.is_set() and (item := items.get()) is not None:
                group = [item]  # with every other document checked by now: one transaction for them all
                while len(group) < GROUP_DOCUMENTS:
                    try:
                        more = items.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        ended = True
                        break
                    group.append(more)
                self._writing.set()
                try:
                    jobs = capture.write_group(conn, group, queued=True)
                finally:
                    self._writing.clear()
                for job in jobs:
                    if job is not None:
                        finished += 1
                        self._remember(job.capture_id)
        finally:
            stop.set()
            while preparer.is_alive():  # it may be blocked on a full queue: make room until it ends
                with contextlib.suppress(queue.Empty):
                    items.get(timeout=0.05)
            preparer.join()
        if failure:
            raise failure[0]
        return finished

    def wait_finished(self, capture_id: str, timeout_s: float) -> bool:
        """Whether this worker finished ``capture_id`` within ``timeout_s`` (for tests and the bench)."""
        with self._finished:
            return self._finished.wait_for(lambda: capture_id in self._finished_ids, timeout_s)

    def _remember(self, capture_id: str) -> None:
        with self._finished:
            self._finished_ids.add(capture_id)
            self._finished_order.append(capture_id)
            if len(self._finished_order) > REMEMBERED:
                self._finished_ids.discard(self._finished_order.popleft())
            self._finished.notify_all()

    def _prepare(
        self, items: queue.Queue[_Item | None], stop: threading.Event, failure: list[BaseException]
    ) -> None:
        """The preparing thread: pending jobs read (skipping those another worker holds), checked, queued."""
        try:
            conn = self._preparing_connection()
            handed: list[str] = []
            while not stop.is_set():
                # Binary rows: the body comes as its bytes, not as hex for the server to make and this
                # process to undo (twice the bytes on the socket).
                asked = (handed, TAKE_BATCH)
                rows = conn.execute(queries.NEXT_CAPTURE_JOBS, asked, binary=True).fetchall()
                if not rows:
                    break
                for capture_id, body, captured_by in rows:
                    handed.append(capture_id)
                    waited_for = items.empty() and not self._writing.is_set()
                    checked = self._check(capture_id, bytes(body), waited_for=waited_for)
                    if not _put(items, (checked, captured_by), stop):
                        return
        except BaseException as exc:  # the writer re-raises it once the jobs in hand are finished
            self._close_preparing_connection()
            failure.append(exc)
        finally:
            _put(items, None, stop)

    def _check(self, capture_id: str, body: bytes, *, waited_for: bool = False) -> capture.Checked:
        """``capture.check_bytes`` (in the checking processes, with ``check_process``: in parts, one in
        each, when the writer is ``waited_for``: it has nothing else to append); a bug of ours is that
        job's refusal, never the worker's end."""
        if self._check_process:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    CHECK_PROCESSES,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=start_checking,
                )
            parts = CHECK_PROCESSES if waited_for else 1
            now = datetime.now(UTC)  # the recordTime of every part
            try:
                asked = [
                    self._pool.submit(_checked_compact, body, self._limits, now, part, parts)
                    for part in range(parts)
                ]
                return capture.merged(capture_id, [_expanded(a.result()) for a in asked])
            except BrokenProcessPool:  # a child died (killed, out of memory): new ones for the next
                log.error("a capture checking process died; capture %s is checked here", capture_id)
                self._pool = None
        return _checked(body, self._limits, capture_id)


# The youngest generation of the garbage collector is collected after this many allocations (Python's
# default: 700). Checking a 1000-event document allocates some 100 000 objects, next to none of them in a
# cycle; at 700 the collector runs some 140 times a document, each pass over everything still young.
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once a process has started (``Services.start``, the checking process, the bench): the objects it
    allocated so far (modules, compiled schemas, settings) leave the collector's generations for good
    (``gc.freeze``), and the youngest generation is collected every ``GC_YOUNG_THRESHOLD`` allocations.
    Cycles are still collected; the long-lived startup heap is no longer walked at every full pass."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def start_checking() -> None:
    """A checking process's start: the EPCIS JSON Schema compiled (any of them may check a document whole),
    then ``settle_heap``."""
    with contextlib.suppress(validation.InvalidEventError):
        validation.validate_document(builders.document([]))
    settle_heap()


def _checked(body: bytes, limits: capture.CaptureLimits, capture_id: str) -> capture.Checked:
    """``capture.check_bytes``; a bug of ours is that job's refusal (logged), never an exception."""
    try:
        return capture.check_bytes(body, limits, capture_id=capture_id)
    except Exception:
        log.exception("capture %s could not be checked", capture_id)
        return capture.Checked(capture_id, [_INTERNAL], [])


_INTERNAL = capture.CaptureError("", "the document could not be checked (an internal error)")


class _Compact(NamedTuple):
    """A ``capture.Part`` as a checking process sends it back: each event as its hash, canonical bytes
    and row parts (``chain.Row``: bytes) only. Pickling the events' objects cost the child about as much
    as the schema check, and unpickling them cost this process more than decoding the bytes does."""

    stage: int
    errors: list[capture.CaptureError]
    events: list[tuple[str, bytes, chain.Row | None]]
    unreadable: bool
    pointer: str
    keys: derive.StateKeys | None


def _checked_compact(
    body: bytes, limits: capture.CaptureLimits, now: datetime, part: int, parts: int
) -> _Compact:
    """``capture.check_part_bytes`` of one part, in a checking process, as it crosses back; a bug of ours
    is the document's refusal (logged), never an exception."""
    try:
        c = capture.check_part_bytes(body, limits, now=now, part=part, parts=parts)
    except Exception:
        log.exception("a capture could not be checked")
        return _Compact(capture.DOCUMENT, [_INTERNAL], [], False, capture.EVENT_LIST, None)
    events = [(p.event_hash, p.jcs, p.row) for p in c.prepared if p.jcs is not None]
    if len(events) != len(c.prepared):  # never: capture.check canonicalises every event it prepares
        raise ValueError("an event was prepared without its canonical bytes")
    return _Compact(c.stage, c.errors, events, c.unreadable, c.pointer, c.keys)


def _expanded(compact: _Compact) -> capture.Part:
    """The ``capture.Part`` of a compact one: each event is its canonical bytes decoded, the JSON value
    that the ledger stores for it."""
    prepared = [chain.Prepared(_DECODE(jcs), ev_hash, jcs, row) for ev_hash, jcs, row in compact.events]
    return capture.Part(
        compact.stage, compact.errors, prepared, compact.unreadable, compact.pointer, compact.keys
    )


_DECODE = msgspec.json.Decoder().decode


def _put(items: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` on the bounded queue, waiting for room; False when the writer stopped first."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


class Running:
    """A capture worker on its own thread (``start_thread``), as the API runs one when served alone."""

    def __init__(self, worker: CaptureWorker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coldchain-capture", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run_forever(self._stop)
        except Exception:  # the database went away: logged; the jobs stay pending for the next worker
            log.exception("the capture worker stopped")

    def stop(self) -> None:
        self._stop.set()
        self.worker.wake()
        self._thread.join(timeout=30)


def start_thread(conninfo: str, limits: capture.CaptureLimits = capture.DEFAULT_LIMITS) -> Running:
    """Start a capture worker on a thread of this process; ``Running.stop`` ends it."""
    running = Running(CaptureWorker(conninfo, limits))
    running._thread.start()
    return running

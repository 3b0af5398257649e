"""Tests: the port demo's geofence counts leave out events declared wrong (a late position moved them)."""

from __future__ import annotations

from geofence_support import INSIDE, OUTSIDE, Conn, declared_geofence_events, fenced_world, track
from rules_support import drain

from coldchain.port_demo import geofence_counts
from rules.worker import RulesWorker
from traceability.worker import LedgerWorker


def _run(db_url: str) -> None:
    worker = RulesWorker(db_url)
    try:
        drain(worker)
    finally:
        worker.close()
    while LedgerWorker(db_url).run_once():
        pass


def test_counts_are_of_the_live_events_one_per_crossing(db_url: str, conn: Conn) -> None:
    fenced_world(conn)
    track(conn, [(0, OUTSIDE), (10, INSIDE), (20, INSIDE), (30, OUTSIDE)])
    _run(db_url)
    assert geofence_counts(conn) == (2, 2)
    # Late: inside already at minute 5; the entry moves there and its event at 10 is declared wrong.
    track(conn, [(5, INSIDE)])
    _run(db_url)
    assert len(declared_geofence_events(conn)) == 1
    assert geofence_counts(conn) == (2, 2), "the event declared wrong and its declaration are not counted"

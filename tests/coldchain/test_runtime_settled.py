"""Tests: the runtime is settled only once the rules stage has judged the custody changes of every ledger
entry, not only once the outboxes are empty (the demo's summary reads the lots' verdicts then)."""

from __future__ import annotations

import psycopg
from trace_support import packing_event, seed_world

from coldchain.runtime import Services
from traceability.ledger import chain

# Long enough for several looks (three quiet ones in a row settle it); it must run out, never be raced.
HELD_S = 3.0


def test_not_settled_while_the_custody_watermark_is_behind_the_ledger(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        seed_world(conn)
        chain.append(conn, packing_event())  # a custody change: the pallet's lot packed into it
        services = Services(db_url, None, stages=("rules", "ledger"))
        services.start()
        try:
            with psycopg.connect(db_url) as holder:
                # The watermark held: the rules stage skips its custody pass (SKIP LOCKED), as when
                # another worker judges it; the outboxes are empty all the while.
                holder.execute("SELECT judged_seq FROM custody_watermark FOR UPDATE")
                assert not services.wait_settled(timeout_s=HELD_S)
                holder.rollback()
            assert services.wait_settled(timeout_s=60)
            # At the head, which the lot verdict its custody pass sent has moved on since.
            judged, head = conn.execute(
                "SELECT judged_seq, (SELECT max(seq) FROM ledger_event) FROM custody_watermark"
            ).fetchone() or (None, None)
            assert judged == head
            assert head is not None
            assert head > 1
        finally:
            services.stop()


def test_settled_without_the_rules_stage_whatever_the_watermark(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        seed_world(conn)
        chain.append(conn, packing_event())
        services = Services(db_url, None, stages=("ledger",))
        services.start()
        try:
            assert services.wait_settled(timeout_s=60)  # nobody here moves the watermark
            assert conn.execute("SELECT judged_seq FROM custody_watermark").fetchone() == (0,)
        finally:
            services.stop()

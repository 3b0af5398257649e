"""Stage 1 (ingest): (boot, seq) accounting per device: readings received, missing and skipped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg

from gateway.models import RawMessage, RfidBatch, TelemetryBatch
from gateway.queries import INSERT_SEQ_ANOMALY, INSERT_SEQ_ROWS, SELECT_SEQ, UPDATE_SEQ, pg_text, ts

log = logging.getLogger(__name__)


class _SeqState(msgspec.Struct):
    """device_seq of one (device, boot) while a transaction computes it.

    Rule for a jump: a message whose seq lies more than seq_jump_max beyond next_seq is a device anomaly
    (a device_anomaly row); its readings are stored, but it moves nothing here: it becomes the pending
    jump (jump_seq .. jump_next, its readings received in jump_received), so one stray seq (2**53-1, say)
    cannot lift next_seq above the device's real messages and switch gap counting off. A later message
    within seq_jump_max of the pending jump's range (above or below it, not the jump message itself)
    confirms it: the device really rebased. The count then re-bases onto the jump: the seq numbers from
    next_seq up to the lower of the two are skipped (not missing), next_seq moves past both and their
    readings count as received. A further jump beyond both windows replaces the pending one (its
    readings are stored but never counted); a message within next_seq's window counts as usual."""

    next_seq: int
    received: int
    skipped: int
    jump_seq: int | None
    jump_next: int | None
    jump_received: int


def update_seq(
    cur: psycopg.Cursor[Any],
    batches: Sequence[tuple[RawMessage, TelemetryBatch | RfidBatch]],
    stored: dict[int, int],
    seq_jump_max: int,
    missing_delta: dict[int, int] | None = None,
) -> tuple[int, int]:
    """Count (boot, seq) per device; return (readings newly known as missing, seq jumps recorded).

    `stored` gives each message's readings received (see _SeqState for the rule of a jump). When given,
    `missing_delta` gets, per (device, boot), the change in its missing count (negative when late readings
    filled gaps), keyed by id() of that (device, boot)'s highest-seq message in the transaction."""
    if not batches:
        return 0, 0
    by_key: dict[tuple[str, int], list[tuple[RawMessage, TelemetryBatch | RfidBatch]]] = {}
    for raw, b in batches:
        by_key.setdefault((b.device_id, b.boot), []).append((raw, b))
    keys = sorted(by_key)
    devices, boots = [k[0] for k in keys], [k[1] for k in keys]
    cur.execute(SELECT_SEQ, (devices, boots))
    rows = cur.fetchall()
    if len(rows) < len(keys):  # a new (device, boot): create its row, then lock it like the others
        cur.execute(INSERT_SEQ_ROWS, (devices, boots))
        cur.execute(SELECT_SEQ, (devices, boots))
        rows = cur.fetchall()
    old = {
        (str(d), int(b)): (_SeqState(int(n), int(r), int(k), js, jn, int(jr)), int(m))
        for d, b, n, r, k, m, js, jn, jr in rows
    }
    gaps = 0
    anomalies: list[tuple[Any, ...]] = []
    cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
    for key in keys:
        st, m_old = old[key]
        for raw, b in sorted(by_key[key], key=lambda rb: rb[1].seq):  # per message, in seq order
            got = stored.get(id(b), 0)
            end = b.seq + len(b)
            if b.seq - st.next_seq <= seq_jump_max:
                st.next_seq = max(st.next_seq, end)
                st.received += got
            elif st.jump_seq is not None and st.jump_next is not None and b.seq == st.jump_seq:
                st.jump_next = max(st.jump_next, end)  # the pending jump message again (redelivered)
                st.jump_received += got
            elif (
                st.jump_seq is not None
                and st.jump_next is not None
                and b.seq - st.jump_next <= seq_jump_max
                and st.jump_seq - end <= seq_jump_max
            ):  # confirms the pending jump: re-base onto it
                st.skipped += min(st.jump_seq, b.seq) - st.next_seq
                st.next_seq = max(st.jump_next, end)
                st.received += st.jump_received + got
                st.jump_seq, st.jump_next, st.jump_received = None, None, 0
            else:
                anomalies.append(
                    (
                        b.device_id,
                        b.boot,
                        ts(raw.received_at_ms),
                        st.next_seq,
                        b.seq,
                        b.seq - st.next_seq,
                        pg_text(raw.topic),
                    )
                )
                st.jump_seq, st.jump_next, st.jump_received = b.seq, end, got
        raw_missing = st.next_seq - st.received - st.skipped
        if raw_missing < 0:
            # More received than the device produced: overlapping seq ranges from the device, or a count
            # made twice. missing stays 0 (never negative); the log and device_seq.received show it, and
            # tests assert received itself (tests/gateway_support.assert_exactly_once).
            log.warning(
                "gateway: %s boot %s: %d readings received beyond next_seq %d",
                key[0], key[1], -raw_missing, st.next_seq,
            )  # fmt: skip
        m_new = max(raw_missing, 0)
        gaps += max(m_new - m_old, 0)
        if missing_delta is not None and m_new != m_old:
            last = max(by_key[key], key=lambda rb: rb[1].seq)[1]
            missing_delta[id(last)] = missing_delta.get(id(last), 0) + m_new - m_old
        for col, x in zip(
            cols,
            (*key, st.next_seq, st.received, st.skipped, m_new, st.jump_seq, st.jump_next, st.jump_received),
            strict=True,
        ):
            col.append(x)
    if anomalies:
        cur.executemany(INSERT_SEQ_ANOMALY, anomalies)
    cur.execute(UPDATE_SEQ, cols)
    return gaps, len(anomalies)

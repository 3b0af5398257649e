"""Stage 3 (reports): what every report says to prove itself: the query it answers, its row count, the
ledger seq range and signed head it covers, and the sha256 of its companion evidence bundle (the lot's
bundle, ``traceability.ledger.bundle``), which ``coldchain ledger verify-bundle`` checks offline."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from traceability.ledger import bundle, checkpoint, jsonfile
from traceability.trace_model import Trace

Conn = psycopg.Connection[Any]

# The questions the reports answer (reports msgids; {lot} is the lot id).
EVENTS_QUERY = (
    "Every ledger event about lot {lot} or a unit that enclosed it, in ledger order, with its key data"
    " elements"
)
READINGS_QUERY = (
    "The temperature readings of each custody leg of lot {lot}, at the class's regulated recording"
    " interval, flagged out of range, gap or excursion"
)
BUNDLE_SUFFIX = ".bundle.json"
# How an inspector checks a report's companion bundle offline (the reports and the trace page say it).
VERIFY_BUNDLE_COMMAND = f"coldchain ledger verify-bundle FILE{BUNDLE_SUFFIX} --public-key KEY"


class ReportError(Exception):
    """The report cannot be proven: no ledger event or no signed checkpoint covers the lot, or the lot
    changed while it was read."""


@dataclass(frozen=True, slots=True)
class Proof:
    lot_id: str
    event_rows: int
    reading_rows: int | None
    """None when the report holds no readings rows (the PDF)"""
    seq_first: int
    seq_last: int
    head_seq: int
    """the signed checkpoint the bundle ends at"""
    head_hash: str
    """the chain's entry hash at head_seq, as the checkpoint signs it"""
    signed_at: str
    signature: str
    public_key: str
    key_fingerprint: str
    bundle_sha256: str
    bundle_bytes: int
    generated_at: datetime

    def items(self) -> list[tuple[str, str]]:
        """The proof as (English label, value) pairs: the reports' proof block (labels are msgids)."""
        readings = [] if self.reading_rows is None else [("Readings (rows)", str(self.reading_rows))]
        return [
            ("Lot", self.lot_id),
            ("Events (rows)", str(self.event_rows)),
            *readings,
            ("Ledger seq range", f"{self.seq_first}–{self.seq_last}"),
            ("Ledger head (signed seq)", str(self.head_seq)),
            ("Ledger head hash", self.head_hash),
            ("Checkpoint signed at", self.signed_at),
            ("Checkpoint signature", self.signature),
            ("Key fingerprint", self.key_fingerprint),
            ("Evidence bundle sha256", self.bundle_sha256),
            ("Verify offline with", VERIFY_BUNDLE_COMMAND),
        ]


def evidence(
    conn: Conn,
    found: Trace,
    *,
    reading_rows: int | None,
    generated_at: datetime,
    cp: checkpoint.Checkpoint | None = None,
) -> tuple[bytes, Proof]:
    """The lot's evidence bundle (proven up to ``cp``, default the newest checkpoint) and the proof the
    report states. The bundle's events must be the trace's: otherwise the lot changed in between."""
    try:
        data = bundle.export_lot(conn, found.lot_id, cp)
    except bundle.BundleError as exc:
        raise ReportError(str(exc)) from None
    parsed = jsonfile.loads(data)
    seqs = [int(e["seq"]) for e in parsed["events"]]
    if seqs != [e.seq for e in found.events]:
        raise ReportError("the lot's ledger events changed while the report was read: ask again")
    signed = parsed["checkpoint"]
    proof = Proof(
        lot_id=found.lot_id,
        event_rows=len(found.events),
        reading_rows=reading_rows,
        seq_first=min(seqs),
        seq_last=max(seqs),
        head_seq=int(signed["seq"]),
        head_hash=str(signed["entry_hash"]),
        signed_at=str(signed["signed_at"]),
        signature=str(signed["signature"]),
        public_key=str(signed["public_key"]),
        key_fingerprint=checkpoint.key_fingerprint(str(signed["public_key"])),
        bundle_sha256=hashlib.sha256(data).hexdigest(),
        bundle_bytes=len(data),
        generated_at=generated_at,
    )
    return data, proof


def bundle_name(report_file: str) -> str:
    """The companion bundle's file name beside a report file."""
    return report_file + BUNDLE_SUFFIX

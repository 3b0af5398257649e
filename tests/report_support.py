"""Tests: the demo scenario's lot ledgered, judged and signed, as the reports read it."""

from __future__ import annotations

from pathlib import Path

from trace_support import LOT, build_scenario

from rules.worker import RulesWorker
from traceability.ledger import checkpoint
from traceability.worker import LedgerWorker


def seeded_lot(db_url: str, home: Path) -> tuple[str, str]:
    """The scenario's lot ledgered, judged and signed: its id and the signer's public key (hex)."""
    build_scenario(db_url)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).run_once()
    key_path = home / checkpoint.KEY_FILE
    assert checkpoint.CheckpointWorker(db_url, key_path).run_once() is not None
    return LOT, checkpoint.pinned_key(str(key_path))

"""Tests: a signed checkpoint catches a ledger cut short or re-grown under it, each branch by its own cause.

The tail is deleted as a database superuser can (the append-only triggers switched off); the checkpoint
stays genuine, signed with the ledger's own key, so that only the chain's state can make verify fail."""

from __future__ import annotations

from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from tests.traceability.test_ledger_trust import _append, _event, _key, _truncate_tail
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.ledger import chain, checkpoint, verify


def test_truncated_tail_under_the_kept_checkpoint_names_the_first_missing_seq(
    db_url: str, tmp_path: Path
) -> None:
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 6)
        signed = checkpoint.sign_head(conn, key)
        conn.commit()
        assert verify.verify(conn, public_key=public).ok
        _truncate_tail(conn, after=4)
        conn.commit()
        result = verify.verify(conn, public_key=public)
    assert checkpoint.signature_ok(signed, public)  # the checkpoint is genuine: not the signature branch
    assert (result.ok, result.first_bad_seq, result.events, result.anchored) == (False, 5, 4, False)
    assert result.problems == (
        f"checkpoint #1 (seq 6, signed {signed.signed_at}): the chain ends at seq 4: seq 5 to 6 are gone",
    )


def test_regrown_tail_under_a_genuine_checkpoint_names_the_rewritten_seq(db_url: str, tmp_path: Path) -> None:
    """The tail deleted and two other events appended through the real append: the chain links again,
    seq 6 exists, and only its entry hash differs from the one the ledger's key signed."""
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 6)
        signed = checkpoint.sign_head(conn, key)
        conn.commit()
        _truncate_tail(conn, after=4)
        assert chain.append_many(conn, [_event(50), _event(51)]) == [5, 6]
        conn.commit()
        result = verify.verify(conn, public_key=public)
    assert checkpoint.signature_ok(signed, public)
    assert (result.ok, result.first_bad_seq, result.events, result.anchored) == (False, 6, 6, False)
    assert result.problems == (
        f"checkpoint #1 (seq 6, signed {signed.signed_at}): the entry hash at seq 6 is not the one signed:"
        " the chain was rewritten at or below seq 6",
    )


def test_api_verify_names_the_truncation(db_url: str, tmp_path: Path) -> None:
    """GET /ledger/verify with the ledger's key file pinned says the same."""
    key_file = tmp_path / "ledger.pem"
    key, _ = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 6)
        checkpoint.sign_head(conn, key)
        reader = create_key(conn, "inspector", "auditor")
        conn.commit()
        _truncate_tail(conn, after=3)
        conn.commit()
    app = create_app(db_url, options=ApiOptions(ledger_key=key_file))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = client.get("/ledger/verify", headers={"X-API-Key": reader}).json()
    assert (body["ok"], body["first_bad_seq"], body["events"], body["pinned"]) == (False, 4, 3, True)
    assert body["problems"][0].endswith("the chain ends at seq 3: seq 4 to 6 are gone")

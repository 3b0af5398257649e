"""Tests: the ledger's trust anchor outside the database. Forgeries and truncations by whoever can rewrite
the database are found against a pinned key and kept checkpoints; ledger_checkpoint is append-only."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from process_support import as_url
from psycopg import sql
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability.epcis import builders
from traceability.epcis.eventhash import event_hash
from traceability.ledger import chain, checkpoint, verify

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SSCC = "urn:epc:id:sscc:6901234.0000000042"
DERIVED = ("event_subject", "biz_transaction", "lineage", "bonded_status")
INTERVALS = ("containment", "custody_leg")


def _event(i: int) -> dict[str, Any]:
    """A storing read of one pallet with the peak temperature of the hour before it."""
    return builders.object_event(
        event_time=T0 + timedelta(hours=i),
        epcs=[SSCC],
        biz_step="storing",
        read_point="urn:epc:id:sgln:6901234.00001.1",
        sensor_elements=[
            builders.temperature_element(
                start_time=T0 + timedelta(hours=i - 1), end_time=T0 + timedelta(hours=i), max_c=4.0 + i / 10
            )
        ],
    )


def _append(conn: psycopg.Connection[Any], first: int, last: int) -> None:
    chain.append_many(conn, [_event(i) for i in range(first, last + 1)])


def _key(tmp: Path, name: str = "ledger.pem") -> tuple[Ed25519PrivateKey, str]:
    key = checkpoint.load_or_create_key(tmp / name)
    return key, checkpoint.public_hex(key)


def _as_superuser(conn: psycopg.Connection[Any]) -> None:
    """Switch off every trigger of the ledger's tables (the append-only ones and the foreign keys), as a
    database administrator can."""
    for table in ("ledger_event", "ledger_checkpoint", *DERIVED, *INTERVALS):
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER ALL").format(sql.Identifier(table)))


def _rewrite_and_relink(conn: psycopg.Connection[Any], seq: int, peak_c: float) -> None:
    """Change the peak temperature of entry ``seq``, re-hash it and relink every entry after it, so that
    the chain holds again (what a forger without the key does)."""
    _as_superuser(conn)
    rows = conn.execute(
        "SELECT seq, event_jcs, event_hash FROM ledger_event WHERE seq >= %s ORDER BY seq", (seq,)
    ).fetchall()
    prev_row = conn.execute("SELECT entry_hash FROM ledger_event WHERE seq = %s", (seq - 1,)).fetchone()
    prev = chain.GENESIS_HASH if prev_row is None else str(prev_row[0])
    for s, jcs_raw, ev_hash in rows:
        event = json.loads(bytes(jcs_raw))
        if s == seq:
            event["sensorElementList"][0]["sensorReport"][0]["maxValue"] = peak_c
            ev_hash = event_hash(event)
        jcs = rfc8785.dumps(event)
        entry = chain.entry_hash(prev, ev_hash, hashlib.sha256(jcs).digest())
        conn.execute(
            "UPDATE ledger_event SET event_jcs = %s, event_hash = %s, prev_hash = %s, entry_hash = %s"
            " WHERE seq = %s",
            (jcs, ev_hash, prev, entry, s),
        )
        prev = entry


def _truncate_tail(conn: psycopg.Connection[Any], after: int) -> None:
    """Delete every entry after seq ``after`` and the rows derived from them, checkpoints left alone."""
    _as_superuser(conn)
    for table in DERIVED:
        conn.execute(sql.SQL("DELETE FROM {} WHERE seq > %s").format(sql.Identifier(table)), (after,))
    for table in INTERVALS:
        conn.execute(sql.SQL("DELETE FROM {} WHERE start_seq > %s").format(sql.Identifier(table)), (after,))
        conn.execute(
            sql.SQL("UPDATE {} SET end_seq = NULL WHERE end_seq > %s").format(sql.Identifier(table)), (after,)
        )
    conn.execute("DELETE FROM ledger_event WHERE seq > %s", (after,))


def _forged_checkpoint(conn: psycopg.Connection[Any], tmp: Path) -> None:
    """A checkpoint of the current head signed by a key of the forger's own, recorded as the newest."""
    forger, _ = _key(tmp, "forger.pem")
    checkpoint.sign_head(conn, forger, now=datetime.now(UTC) + timedelta(seconds=1))


def test_forgery_rewrite_relink_and_own_checkpoint_is_found(db_url: str, tmp_path: Path) -> None:
    """The forgery: change a peak temperature, re-hash, relink, add a checkpoint signed with
    any key. Under the pinned key the genuine checkpoint no longer matches and the forged one does not
    verify; with no key pinned the result is not ok either."""
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 6)
        checkpoint.sign_head(conn, key)
        conn.commit()
        assert verify.verify(conn, public_key=public).anchored
        _rewrite_and_relink(conn, 3, peak_c=2.0)
        _forged_checkpoint(conn, tmp_path)
        unpinned = verify.verify(conn, deep=True)  # what `ledger verify --deep` trusted: the rows' key
        assert not unpinned.ok
        assert verify.NO_KEY.format(n=2) in unpinned.problems
        for deep in (False, True):
            result = verify.verify(conn, deep=deep, public_key=public)
            assert (result.ok, result.anchored, result.first_bad_seq) == (False, False, 6)
            assert any(
                p.startswith("checkpoint #1 (seq 6") and "rewritten at or below seq 6" in p
                for p in result.problems
            ), result.problems
            assert any(
                p.startswith("checkpoint #2 (seq 6") and "does not verify under the pinned key" in p
                for p in result.problems
            ), result.problems
        conn.rollback()


def test_truncated_tail_under_a_fresh_checkpoint_is_named(db_url: str, tmp_path: Path) -> None:
    """Delete the tail with the triggers off, keep the signed checkpoint, then sign the shortened head
    with the real key (`ledger checkpoint`): the earlier checkpoint's seq is gone, and verify names the
    first missing seq and that checkpoint."""
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 6)
        checkpoint.sign_head(conn, key)
        conn.commit()
        _truncate_tail(conn, after=4)
        checkpoint.sign_head(conn, key, now=datetime.now(UTC) + timedelta(seconds=1))
        result = verify.verify(conn, public_key=public)
        assert (result.ok, result.first_bad_seq, result.events, result.checkpoint_seq) == (False, 5, 4, 4)
        (_, first), (_, second) = checkpoint.stored(conn)
        assert result.problems == (
            f"checkpoint #1 (seq 6, signed {first.signed_at}): the chain ends at seq 4: seq 5 to 6 are gone",
            f"checkpoint #2 (seq 4, signed {second.signed_at}) comes after checkpoint #1"
            f" (seq 6, signed {first.signed_at}): checkpoints out of order",
        )
        conn.rollback()


@pytest.mark.parametrize("resigner", ["key_holder", "forger"])
def test_rewrite_below_an_earlier_checkpoint_is_named(db_url: str, tmp_path: Path, resigner: str) -> None:
    """Checkpoints at seq 4 and 8; entry 2 is rewritten and the chain relinked, and the head re-signed,
    by the key holder or by a forger's key. The newest checkpoint may hold, the one at seq 4 does not:
    verify names it and seq 4 (the rewrite is at or below it)."""
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 4)
        checkpoint.sign_head(conn, key)
        _append(conn, 5, 8)
        checkpoint.sign_head(conn, key, now=datetime.now(UTC) + timedelta(seconds=1))
        conn.commit()
        _rewrite_and_relink(conn, 2, peak_c=-1.0)
        if resigner == "key_holder":
            checkpoint.sign_head(conn, key, now=datetime.now(UTC) + timedelta(seconds=2))
        else:
            _forged_checkpoint(conn, tmp_path)
        result = verify.verify(conn, public_key=public)
        assert (result.ok, result.first_bad_seq) == (False, 4)
        assert result.problems[0].startswith("checkpoint #1 (seq 4, signed ")
        assert result.problems[0].endswith("the chain was rewritten at or below seq 4")
        assert result.problems[1].startswith("checkpoint #2 (seq 8, signed ")
        assert len(result.problems) == (2 if resigner == "key_holder" else 3)
        assert result.signed_seq == (8 if resigner == "key_holder" else None)
        conn.rollback()


def test_checkpoints_out_of_order_are_named(db_url: str, tmp_path: Path) -> None:
    """A genuine older checkpoint recorded again after a newer one (so that it reads as the newest)."""
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 3)
        old = checkpoint.sign_head(conn, key)
        _append(conn, 4, 5)
        checkpoint.sign_head(conn, key, now=datetime.now(UTC) + timedelta(seconds=1))
        assert old is not None
        conn.execute(
            "INSERT INTO ledger_checkpoint (seq, entry_hash, signed_at, public_key, signature)"
            " VALUES (%s, %s, %s, %s, %s)",
            (old.seq, old.entry_hash, builders.parse_time(old.signed_at), old.public_key, old.signature),
        )
        result = verify.verify(conn, public_key=public)
        assert (result.ok, result.first_bad_seq) == (False, 4)  # a cut above seq 3 would read so
        assert result.problems[0].startswith("checkpoint #3 (seq 3")
        assert "comes after checkpoint #2 (seq 5" in result.problems[0]
        conn.rollback()


def test_kept_checkpoints_are_in_order_within_each_file_not_across(db_url: str, tmp_path: Path) -> None:
    """Two kept files, the newer given first: each is in order, so nothing is out of order; one file
    holding them the wrong way round is."""
    key, public = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 3)
        old = checkpoint.sign_head(conn, key)
        _append(conn, 4, 5)
        new = checkpoint.sign_head(conn, key, now=datetime.now(UTC) + timedelta(seconds=1))
        assert old is not None
        assert new is not None
        apart = [("kept checkpoint new.json#1", new), ("kept checkpoint old.json#1", old)]
        result = verify.verify(conn, public_key=public, kept=apart)
        assert (result.ok, result.anchored, result.signed_seq) == (True, True, 5), result.problems
        together = [("kept checkpoint both.jsonl#1", new), ("kept checkpoint both.jsonl#2", old)]
        result = verify.verify(conn, public_key=public, kept=together)
        assert (result.ok, result.first_bad_seq) == (False, 4)
        assert "kept checkpoint both.jsonl#2 (seq 3" in result.problems[0]
        conn.rollback()


def test_verify_never_trusts_the_key_in_the_rows(db_url: str, tmp_path: Path) -> None:
    """Only a pinned key counts: with none the checkpoints are unverifiable, with another they fail."""
    key, public = _key(tmp_path)
    _, other = _key(tmp_path, "other.pem")
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 3)
        checkpoint.sign_head(conn, key)
        good = verify.verify(conn, public_key=public)
        assert (good.ok, good.anchored, good.signed_seq, good.checkpoints) == (True, True, 3, 1)
        assert not verify.verify(conn).ok
        wrong = verify.verify(conn, public_key=other)
        assert (wrong.ok, wrong.first_bad_seq) == (False, 3)
        assert wrong.problems[0].endswith("does not verify under the pinned key; it names another key")
        conn.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_checkpoint SET seq = 1",
        "DELETE FROM ledger_checkpoint",
        "TRUNCATE ledger_checkpoint",
    ],
)
def test_checkpoints_are_append_only(db_url: str, tmp_path: Path, statement: str) -> None:
    key, _ = _key(tmp_path)
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 2)
        checkpoint.sign_head(conn, key)
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="ledger_checkpoint is append-only"):
            conn.execute(statement)
        conn.rollback()
        assert conn.execute("SELECT count(*), min(seq) FROM ledger_checkpoint").fetchone() == (1, 2)


def _cli(monkeypatch: pytest.MonkeyPatch, db_url: str, home: Path, *args: str) -> Any:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(home))
    return CliRunner().invoke(cli_app, list(args))


def test_kept_checkpoint_finds_a_truncation_the_database_hides(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is cut back to seq 4 and its checkpoints after seq 4 deleted. The operator's own
    verify finds it in the checkpoint log beside the key; an inspector without that log, pinning the
    public key, finds it with the checkpoint a partner kept, and only with it."""
    home = server_tmp / "operator"
    first = _cli(monkeypatch, db_url, home, "ledger", "checkpoint")
    assert first.exit_code == 1  # an empty ledger: nothing to sign
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 4)
        conn.commit()
    assert _cli(monkeypatch, db_url, home, "ledger", "checkpoint").exit_code == 0
    with psycopg.connect(db_url) as conn:
        _append(conn, 5, 6)
        conn.commit()
    assert _cli(monkeypatch, db_url, home, "ledger", "checkpoint").exit_code == 0
    log = checkpoint.log_beside(home / checkpoint.KEY_FILE)
    lines = log.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [4, 6]
    kept = server_tmp / "kept.json"
    kept.write_text(lines[-1])
    with psycopg.connect(db_url) as conn:
        _truncate_tail(conn, after=4)
        conn.execute("DELETE FROM ledger_checkpoint WHERE seq > 4")
        conn.commit()
    operator = _cli(monkeypatch, db_url, home, "ledger", "verify", "--json")
    assert operator.exit_code == 1, operator.output
    answer = json.loads(operator.output.splitlines()[-1])
    assert (answer["ok"], answer["first_bad_seq"]) == (False, 5)
    assert answer["problems"][-1].startswith(f"checkpoint log {log}#2")
    public = checkpoint.configured_key(home)
    assert public is not None
    inspector = server_tmp / "inspector"
    inspector.mkdir()
    alone = _cli(monkeypatch, db_url, inspector, "ledger", "verify", "--json", "--public-key", public)
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.output.splitlines()[-1])["signed_seq"] == 4
    for kept_file in (kept, log):
        found = _cli(
            monkeypatch, db_url, inspector, "ledger", "verify", "--json", "--public-key", public,
            "--checkpoint", str(kept_file),
        )  # fmt: skip
        assert found.exit_code == 1, found.output
        answer = json.loads(found.output.splitlines()[-1])
        assert (answer["ok"], answer["first_bad_seq"]) == (False, 5)
        assert answer["problems"][-1].startswith(f"kept checkpoint {kept_file}#")
        assert answer["problems"][-1].endswith("the chain ends at seq 4: seq 5 to 6 are gone")
    human = _cli(
        monkeypatch, db_url, inspector, "ledger", "verify", "--public-key", public, "--checkpoint", str(kept)
    )
    assert human.output.splitlines()[0] == "ledger BROKEN at seq 5 (4 events)"
    # A wrong key fails, whatever the database holds.
    other = server_tmp / "other.pem"
    checkpoint.load_or_create_key(other)
    assert _cli(monkeypatch, db_url, inspector, "ledger", "verify", "--public-key", str(other)).exit_code == 1


def test_verify_without_a_key_says_so(db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, _ = _key(server_tmp / "elsewhere")
    with psycopg.connect(db_url) as conn:
        _append(conn, 1, 3)
        checkpoint.sign_head(conn, key)
        conn.commit()
    result = _cli(monkeypatch, db_url, server_tmp, "ledger", "verify")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "ledger NOT VERIFIED (3 events)"
    assert "no public key pinned" in result.output

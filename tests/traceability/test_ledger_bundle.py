"""Tests: signed checkpoints (truncation caught), errorDeclaration, lot bundles verified with no database,
and any changed byte, deleted, inserted or reordered entry of a bundle detected (Hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from traceability.epcis import builders
from traceability.ledger import bundle, chain, checkpoint, verify

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LOT = "urn:epc:class:lgtin:6901234.012345.B1"
SSCC = "urn:epc:id:sscc:6901234.0000000077"


def _events() -> list[dict[str, Any]]:
    out = [
        builders.aggregation_event(
            event_time=T0,
            action="ADD",
            parent_id=SSCC,
            child_quantities=[builders.quantity(LOT, 10, "KGM")],
            biz_step="packing",
        )
    ]
    for i in range(1, 6):
        out.append(
            builders.object_event(
                event_time=T0 + timedelta(hours=i),
                epcs=[SSCC if i % 2 else f"urn:epc:id:sscc:6901234.00000001{i:02d}"],
                biz_step="storing" if i % 2 else "shipping",
                read_point="urn:epc:id:sgln:6901234.00001.1",
            )
        )
    return out


def _ledger_bundle(conn: psycopg.Connection[Any], tmp: Path) -> tuple[bytes, str]:
    chain.append_many(conn, _events())
    key = checkpoint.load_or_create_key(tmp / "k.pem")
    cp = checkpoint.sign_head(conn, key)
    assert cp is not None
    return bundle.export_lot(conn, LOT, cp), checkpoint.public_hex(key)


def test_checkpoint_catches_truncation_and_signature(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        chain.append_many(conn, _events())
        key = checkpoint.load_or_create_key(tmp_path / "keys" / "k.pem")
        assert (tmp_path / "keys" / "k.pem").stat().st_mode & 0o777 == 0o600
        cp = checkpoint.sign_head(conn, key)
        conn.commit()
        assert cp is not None
        public = checkpoint.public_hex(key)
        assert checkpoint.signature_ok(cp, public)
        result = verify.verify(conn, public_key=public)
        assert (result.ok, result.anchored, result.checkpoint_seq, result.signed_seq) == (True, True, 6, 6)
        assert verify.verify(conn, deep=True, public_key=public).anchored
        other = checkpoint.public_hex(checkpoint.load_or_create_key(tmp_path / "other.pem"))
        assert verify.verify(conn, public_key=other).first_bad_seq == 6
        unpinned = verify.verify(conn)
        assert (unpinned.ok, unpinned.first_bad_seq) == (False, None)  # its checkpoint cannot be verified
        assert unpinned.problems == (verify.NO_KEY.format(n=1),)
        # Drop the newest entry (as a superuser would) and move the checkpoint's row to seq 5.
        conn.execute("ALTER TABLE ledger_event DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE ledger_checkpoint DISABLE TRIGGER USER")
        for table in ("event_subject", "containment", "custody_leg"):
            conn.execute(
                f"DELETE FROM {table} WHERE {'seq' if table == 'event_subject' else 'start_seq'} = 6"
            )
        conn.execute("UPDATE containment SET end_seq = NULL WHERE end_seq = 6")
        conn.execute("UPDATE custody_leg SET end_seq = NULL WHERE end_seq = 6")
        conn.execute("DELETE FROM ledger_checkpoint")
        conn.execute("DELETE FROM ledger_event WHERE seq = 6")
        conn.execute(
            "INSERT INTO ledger_checkpoint (seq, entry_hash, signed_at, public_key, signature)"
            " VALUES (5, %s, %s, %s, %s)",
            (cp.entry_hash, checkpoint.parse_time(cp.signed_at), cp.public_key, cp.signature),
        )
        assert not verify.verify(conn, public_key=public).ok  # signature no longer matches seq 5
        conn.rollback()


def test_error_declaration_is_a_new_event(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        seqs = chain.append_many(conn, _events())
        wrong = conn.execute("SELECT event_id FROM ledger_event WHERE seq = 2").fetchone()
        assert wrong is not None
        seq = chain.declare_error(conn, wrong[0], corrective_event_ids=["urn:uuid:1"])
        assert seq == max(seqs) + 1
        assert chain.declare_error(conn, wrong[0]) == seq  # idempotent
        row = conn.execute(
            "SELECT event, event_id, declares_error FROM ledger_event WHERE seq = %s", (seq,)
        ).fetchone()
        assert row is not None
        assert row[1] == wrong[0]
        assert row[2] is True
        assert row[0]["errorDeclaration"]["reason"] == "incorrect_data"
        assert verify.verify(conn).ok
        with pytest.raises(LookupError):
            chain.declare_error(conn, "urn:uuid:none")


def test_bundle_verifies_offline_and_via_cli(
    db_url: str, server_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(db_url) as conn:
        data, public = _ledger_bundle(conn, server_tmp)
        conn.commit()
    result = bundle.verify_bundle(data, pinned_public_key=public)
    assert result.ok, result.problems
    assert result.events == 4  # packing + the three SSCC storing reads
    assert not bundle.verify_bundle(data, pinned_public_key="00" * 32).ok
    # CLI: export signs a checkpoint with the key under COLDCHAIN_HOME; verify-bundle needs no database.
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(server_tmp))
    out = server_tmp / "lot.bundle.json"
    runner = CliRunner()
    exported = runner.invoke(cli_app, ["ledger", "export", "--lot", LOT, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert (server_tmp / "keys" / "ledger-ed25519.pem").exists()
    monkeypatch.delenv("COLDCHAIN_DATABASE_URL")
    checked = runner.invoke(cli_app, ["ledger", "verify-bundle", str(out)])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output.strip().splitlines()[-1])["ok"] is True
    out.write_bytes(out.read_bytes().replace(b"storing", b"stoving", 1))
    assert runner.invoke(cli_app, ["ledger", "verify-bundle", str(out)]).exit_code == 1


@pytest.fixture(scope="module")
def bundle_bytes(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[bytes, str]:
    """A lot's bundle and the public key that signed it."""
    from coldchain.embedded import with_database

    name = "bundle_prop"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f'CREATE DATABASE {name} TEMPLATE "{template_db}"')
    with psycopg.connect(with_database(pg_server_url, name)) as conn:
        data, public = _ledger_bundle(conn, tmp_path_factory.mktemp("k"))
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    return data, public


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_changed_byte_is_detected(bundle_bytes: tuple[bytes, str], position: int, bit: int) -> None:
    data, public = bundle_bytes
    assert bundle.verify_bundle(data, pinned_public_key=public).ok
    i = position % len(data)
    changed = bytearray(data)
    changed[i] ^= 1 << bit
    assert not bundle.verify_bundle(bytes(changed), pinned_public_key=public).ok


def _mutate(data: bytes, op: str, where: str, i: int, j: int) -> bytes:
    b = json.loads(data)
    items = b["chain"]["entries"] if where == "chain" else b["events"]
    i, j = i % len(items), j % len(items)
    if op == "delete":
        del items[i]
    elif op == "insert":
        items.insert(i, json.loads(json.dumps(items[j])))
    elif op == "swap":
        if i == j:
            j = (i + 1) % len(items)
        items[i], items[j] = items[j], items[i]
    return bytes(rfc8785.dumps(b))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    op=st.sampled_from(["delete", "insert", "swap"]),
    where=st.sampled_from(["chain", "events"]),
    i=st.integers(min_value=0, max_value=100),
    j=st.integers(min_value=0, max_value=100),
)
def test_deleted_inserted_reordered_entries_detected(
    bundle_bytes: tuple[bytes, str], op: str, where: str, i: int, j: int
) -> None:
    data, public = bundle_bytes
    mutated = _mutate(data, op, where, i, j)
    assert mutated != data
    assert not bundle.verify_bundle(mutated, pinned_public_key=public).ok

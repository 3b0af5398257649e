"""Tests: the derived tables rebuilt from the ledger (`coldchain ledger rederive`), and checked against it."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from process_support import as_url
from typer.testing import CliRunner

from coldchain.cli import app as cli_app
from tests.traceability.test_trace_multimodal import BUYER, LOT, SSCC, STORE, build
from traceability.ledger.derive import DERIVED_TABLES
from traceability.ledger.rederive import rederive
from traceability.ledger.verify import verify
from traceability.trace import trace
from traceability.trace_model import Trace, to_json


def _content(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every derived table's rows without their ids, sorted."""
    out = {}
    for table, columns in DERIVED_TABLES:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT {} FROM {}").format(
                psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, columns)),
                psycopg.sql.Identifier(table),
            )
        ).fetchall()
        out[table] = sorted(rows, key=repr)
    return out


def _without_leg_ids(found: Trace | None) -> str:
    assert found is not None
    result = to_json(found)
    text = json.dumps(result, sort_keys=True, default=str)
    for leg in result["custody"]:
        text = text.replace(f'"leg_id": {leg["leg_id"]}', '"leg_id": 0')
    return text


@pytest.fixture
def chain_db(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        build(conn)
    return db_url


@pytest.mark.parametrize("batch_events", [1, 4, 1000])
def test_rederive_of_appended_ledger_finds_and_changes_nothing(chain_db: str, batch_events: int) -> None:
    """Replaying the whole ledger, in batches of any size, gives exactly the rows the appends derived (a
    document at a time): the check says so, and a rebuild leaves the same rows and the same trace."""
    with psycopg.connect(chain_db, autocommit=True) as conn:
        before, traced = _content(conn), _without_leg_ids(trace(conn, LOT))
        events = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
        check = rederive(conn, apply=False, batch_events=batch_events)
        assert check.consistent
        assert not check.applied
        assert (check.events,) == events
        by_table = {t.table: t for t in check.tables}
        assert set(by_table) == {t for t, _ in DERIVED_TABLES}
        for table, rows in before.items():
            assert by_table[table].before == by_table[table].after == len(rows), table
        assert by_table["custody_leg"].after >= 5
        assert by_table["containment"].after > 0
        assert by_table["lineage"].after == 1
        assert by_table["bonded_status"].after == 2
        rebuilt = rederive(conn, apply=True, batch_events=batch_events)
        assert rebuilt.consistent
        assert rebuilt.applied
        assert _content(conn) == before
        assert _without_leg_ids(trace(conn, LOT)) == traced
        assert verify(conn).ok


def test_rederive_check_names_damage_and_rebuild_repairs_it(chain_db: str) -> None:
    """Rows lost, altered or added outside the append are counted per table by the check (which changes
    nothing); the rebuild puts back what the ledger gives. The lost rows are those of a step that an older
    derivation did not recognise (a Web-URI bizStep before migration 0006): the buyer's receipt started no
    custody leg and the bonded store's leg stayed open."""
    with psycopg.connect(chain_db, autocommit=True) as conn:
        before, traced = _content(conn), _without_leg_ids(trace(conn, LOT))
        last = conn.execute(
            "SELECT custody_leg_id, start_seq FROM custody_leg WHERE epc = %s AND custodian = %s"
            " ORDER BY t_start LIMIT 1",
            (SSCC, BUYER),
        ).fetchone()
        assert last is not None
        conn.execute("DELETE FROM custody_leg WHERE start_seq >= %s AND custodian = %s", (last[1], BUYER))
        conn.execute(
            "UPDATE custody_leg SET t_end = NULL, end_seq = NULL WHERE epc = %s AND custodian = %s",
            (SSCC, STORE),
        )
        conn.execute(
            "INSERT INTO lineage SELECT 'urn:epc:class:lgtin:1.2.X', output_id, seq, event_time FROM lineage"
        )
        damaged = _content(conn)
        found = trace(conn, LOT)
        assert found is not None
        custodians = [leg.custodian.party_id for leg in found.custody if leg.custodian is not None]
        assert custodians[-1] == STORE  # the buyer is missing from the trace

        check = rederive(conn, apply=False)
        assert not check.consistent
        diff = {t.table: (t.missing, t.extra) for t in check.tables}
        lost = len(before["custody_leg"]) - len(damaged["custody_leg"])
        assert lost >= 1
        assert diff["custody_leg"] == (lost + 1, 1)  # the lost legs, and the store leg: open vs closed
        assert diff["lineage"] == (0, 1)
        assert diff["containment"] == diff["event_subject"] == (0, 0)
        assert _content(conn) == damaged  # the check changed nothing

        rebuilt = rederive(conn, apply=True)
        assert not rebuilt.consistent  # it reports what it found
        assert _content(conn) == before
        assert _without_leg_ids(trace(conn, LOT)) == traced
        assert rederive(conn, apply=False).consistent
        conn.autocommit = False
        conn.execute("SELECT 1")
        with pytest.raises(RuntimeError, match="own transaction"):
            rederive(conn, apply=False)


def test_rederive_cli(chain_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(chain_db))
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["ledger", "rederive", "--check", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output.strip().splitlines()[-1])["consistent"] is True
    with psycopg.connect(chain_db, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM containment WHERE containment_id = (SELECT min(containment_id) FROM containment)"
        )
    bad = runner.invoke(cli_app, ["ledger", "rederive", "--check"])
    assert bad.exit_code == 1, bad.output
    assert "containment: " in bad.output
    assert "1 missing" in bad.output
    fixed = runner.invoke(cli_app, ["ledger", "rederive", "--json"])
    assert fixed.exit_code == 0, fixed.output
    out = json.loads(fixed.output.strip().splitlines()[-1])
    assert out["applied"] is True
    assert out["consistent"] is False
    assert runner.invoke(cli_app, ["ledger", "rederive", "--check"]).exit_code == 0

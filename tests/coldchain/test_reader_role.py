"""Tests, composition root: the read-only login for Grafana, and how `demo --serve` points Grafana at it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from coldchain.demo import grafana_host, grafana_instructions
from coldchain.reader_role import PASSWORD_FILE, READER_ROLE, ensure_reader, reader_password


def _as(url: str, role: str, password: str) -> str:
    return make_conninfo(url, user=role, password=password)


def test_the_reader_reads_everything_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    role = f"reader_{os.getpid()}"
    ensure_reader(db_url, "first-pw", role=role)
    ensure_reader(db_url, "second-pw", role=role)  # idempotent: a second call alters, never fails
    with psycopg.connect(db_url, autocommit=True) as owner:
        owner.execute("CREATE TABLE made_after (x int)")  # a later migration's table is readable too
    try:
        with psycopg.connect(_as(db_url, role, "second-pw")) as conn:
            assert conn.execute("SELECT count(*) FROM reading").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM made_after").fetchone() == (0,)
            assert conn.execute(
                "SELECT count(*) FROM readings_binned(interval '1 hour', now(), now())"
            ).fetchone()
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO made_after VALUES (1)")
        for secret in ("api_key", "web_session", "epcis_subscription", "epcis_delivery", "audit_log"):
            with (
                psycopg.connect(_as(db_url, role, "second-pw")) as conn,
                pytest.raises(psycopg.errors.InsufficientPrivilege),
            ):
                conn.execute(f"SELECT 1 FROM {secret} LIMIT 1")
    finally:
        with psycopg.connect(db_url, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {role}")
            owner.execute(f"DROP ROLE {role}")


def test_the_password_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = reader_password(tmp_path)
    assert len(first) >= 20
    assert reader_password(tmp_path) == first
    assert stat.S_IMODE((tmp_path / PASSWORD_FILE).stat().st_mode) == 0o600


def test_demo_serve_says_where_grafana_connects_and_what_it_provisions(db_url: str, tmp_path: Path) -> None:
    lines = grafana_instructions(db_url, tmp_path)
    info = conninfo_to_dict(db_url)
    text = "\n".join(lines)
    assert f"at {grafana_host(info)[0]} (" in text
    assert f"database {info['dbname']}" in text
    assert f"user {READER_ROLE} (read-only)" in text
    assert str(tmp_path / PASSWORD_FILE) in text
    folder = text.split("Grafana provisioning folder: ", 1)[1].split(" ", 1)[0]
    assert (Path(folder) / "datasources").is_dir(), folder
    with psycopg.connect(_as(db_url, READER_ROLE, reader_password(tmp_path))) as conn:
        assert conn.execute("SELECT count(*) FROM asset").fetchone() is not None


def test_a_socket_only_server_is_named_as_such() -> None:
    """The embedded server listens on a Unix socket only: say so, never print `<socket dir>:5432`."""
    host, where = grafana_host(
        conninfo_to_dict("postgresql://postgres@/coldchain?host=/tmp/cc-sock&port=5544")
    )
    assert host == "/tmp/cc-sock"
    assert "Unix socket, port 5544" in where
    assert "this machine only" in where
    assert grafana_host(conninfo_to_dict("postgresql://u@db.internal:6543/x")) == ("db.internal:6543", "TCP")

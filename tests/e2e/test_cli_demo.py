"""End to end: `coldchain demo` resets only a database of its own, never device logins; `--reset` asks
for it; `demo --serve` serves until SIGTERM and exits 0."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
from process_support import DEMO_SPEEDUP, Running, coldchain, servers_under

from coldchain.cli.common import ExitCode
from coldchain.datadir import DataDir
from coldchain.embedded import EmbeddedPostgres, free_port

SPEEDUP = str(DEMO_SPEEDUP)


def column(home: Path, query: str) -> list[object]:
    """The first column of `query` on the home's embedded database (started for the question, stopped)."""
    pg = EmbeddedPostgres(DataDir(home).pgdata)
    url = pg.start()
    try:
        with psycopg.connect(url) as conn:
            return [row[0] for row in conn.execute(query).fetchall()]
    finally:
        pg.stop()


def devices_in(home: Path) -> set[str]:
    return {str(d) for d in column(home, "SELECT device_id FROM device")}


def api_keys_in(home: Path) -> list[object]:
    """The names of the API keys: each demo run makes one for its inspector."""
    return column(home, "SELECT name FROM api_key ORDER BY 1")


def ok(done: object) -> None:
    assert getattr(done, "returncode", None) == ExitCode.OK, done


def test_demo_leaves_a_database_it_did_not_create_and_reset_asks(server_tmp: Path) -> None:
    home = server_tmp / "home"
    env = {"COLDCHAIN_HOME": str(home)}
    data = DataDir(home)
    # A user's own house: a database made by `db migrate`, a device registered with its broker login.
    ok(coldchain("db", "migrate", env=env))
    added = coldchain("devices", "add", "probe-own-1", "--kind", "temp_logger", env=env)
    assert added.returncode == ExitCode.OK, added.stderr
    passwd, acl = data.passwd_file.read_text(), data.acl_file.read_text()
    assert "probe-own-1:" in passwd
    assert "probe-own-1" in acl

    refused = coldchain("demo", "--speedup", SPEEDUP, env=env)
    assert refused.returncode == ExitCode.USAGE, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "the demo did not create" in refused.stderr
    assert "coldchain demo --reset" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert devices_in(home) == {"probe-own-1"}, "the user's database is left as it was"
    assert not data.demo_marker.exists()

    # Asked for: the database is the demo's from now on; the device's broker login stays.
    reset = coldchain("demo", "--reset", "--speedup", SPEEDUP, env=env)
    assert reset.returncode == ExitCode.OK, reset.stdout[-3000:] + reset.stderr[-3000:]
    assert "demo data reset" in reset.stdout
    assert data.demo_marker.is_file()
    assert "probe-own-1" not in devices_in(home)
    assert "probe-own-1:" in data.passwd_file.read_text()
    assert "probe-own-1" in data.acl_file.read_text()

    # Its own database the demo resets without being asked, and again keeps the device's login.
    again = coldchain("demo", "--speedup", SPEEDUP, env=env)
    assert again.returncode == ExitCode.OK, again.stdout[-3000:] + again.stderr[-3000:]
    assert api_keys_in(home) == ["demo inspector"], "a clean slate: nothing of the last run is left"
    assert json.loads(again.stdout.strip().splitlines()[-1])["ledger_verified"] is True
    assert "probe-own-1:" in data.passwd_file.read_text()
    assert servers_under(home) == []


def test_demo_serve_serves_until_sigterm(server_tmp: Path) -> None:
    home = server_tmp / "home"
    api_port = free_port()
    running = Running("demo", "--serve", "--speedup", SPEEDUP, env={
        "COLDCHAIN_HOME": str(home), "COLDCHAIN_API_PORT": str(api_port)
    })  # fmt: skip
    try:
        running.wait_for(r"^serving: API http://127\.0\.0\.1:\d+", deadline_s=300)
        key = running.wait_for(r"^operator API key .*: (\S+)$").group(1)
        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10)
        assert health.status_code == 200
        keyed = httpx.get(
            f"http://127.0.0.1:{api_port}/ledger/verify", headers={"X-API-Key": key}, timeout=60
        )
        assert keyed.status_code == 200, keyed.text
        running.stop_cleanly()
    finally:
        running.kill()
    assert servers_under(home) == []


def test_demo_serve_refuses_a_database_it_did_not_create(server_tmp: Path) -> None:
    home = server_tmp / "home"
    env = {"COLDCHAIN_HOME": str(home)}
    ok(coldchain("db", "migrate", env=env))
    done = coldchain("demo", "--serve", env=env)
    assert done.returncode == ExitCode.USAGE
    assert "coldchain demo --reset" in done.stderr
    assert "serving" not in done.stdout

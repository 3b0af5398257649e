"""Composition root: the built-in demo scenario, end to end on whatever stack is configured."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from coldchain.embedded import DATABASE_NAME, ensure_database
from coldchain.migrate import migrate
from coldchain.runtime import Services, api_options, gateway_limits
from coldchain.seed import seed_world
from coldchain.settings import BrokerAddress, Settings
from coldchain.stack import open_stack

Progress = Callable[[str], None]

# Scenario seconds per wall-clock second: 8 h of scenario in about half a minute.
DEFAULT_SPEEDUP = 900.0
# The demo's scenarios: the default one, and the import flow at Qinzhou port.
SCENARIOS = ("default", "port")


def play_scenario(
    broker: BrokerAddress, *, start_ms: int, speedup: float, progress: Progress | None = None
) -> dict[str, Any]:
    """Play the simulated devices of the demo scenario against the broker; return what they sent."""
    from firmware_sim.scenario import run_demo

    report = run_demo(
        broker.host,
        broker.port,
        start_ms=start_ms,
        speedup=speedup,
        on_progress=progress,
        username=broker.username,
        password=broker.password.get_secret_value() if broker.password else None,
        mqtt5=broker.mqtt5,
    )
    return asdict(report)


def run_scenario(
    database_url: str,
    broker: BrokerAddress,
    *,
    speedup: float = DEFAULT_SPEEDUP,
    progress: Progress | None = None,
    api_host: str = "127.0.0.1",
    api_port: int = 0,
    checkpoint_key: Path | None = None,
    stage_brokers: Mapping[str, BrokerAddress] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Seed the world, run every stage, play the devices, wait until the stages settle, summarise.

    With `checkpoint_key`, the ledger head is signed (Ed25519) before verification. `stage_brokers`: the
    stages' and the simulator's own logins (Stack.stage_brokers); without, all use `broker`. `settings`:
    the gateway's limits and the API's options (without, their defaults)."""
    say = progress or (lambda _msg: None)
    logins = dict(stage_brokers or {})
    start_ms = seed_world(database_url)
    services = Services(
        database_url,
        broker,
        api_host=api_host,
        api_port=api_port,
        checkpoint_key=checkpoint_key,
        stage_brokers=logins,
        gateway_limits=gateway_limits(settings) if settings else None,
        api_options=api_options(settings) if settings else None,
    )
    services.start()
    try:
        say(f"stages running; API on {services.api_url}; broker {broker.url()}")
        t0 = time.monotonic()
        simulator = logins.get("simulator", broker)
        sent = play_scenario(simulator, start_ms=start_ms, speedup=speedup, progress=say)
        say(f"devices done in {time.monotonic() - t0:.1f} s; waiting for the stages to settle")
        if not services.wait_settled(timeout_s=90):
            raise RuntimeError("the stages did not settle within 90 s")
        if checkpoint_key is not None:
            from traceability.ledger.checkpoint import CheckpointWorker

            CheckpointWorker(database_url, checkpoint_key).run_once()
        summary = summarize(database_url, services.api_url, checkpoint_key=checkpoint_key)
        summary["sent"] = sent
        return summary
    finally:
        services.stop()


def summarize(database_url: str, api_url: str, *, checkpoint_key: Path | None = None) -> dict[str, Any]:
    """Counts from the database, the ledger's verification (its checkpoints against the public key of
    `checkpoint_key`), and the API's answer for the traced lot."""
    from firmware_sim.world import demo_world
    from traceability.api.auth import create_key
    from traceability.ledger.checkpoint import latest, own_log, pinned_key
    from traceability.ledger.verify import verify

    lot_id = demo_world().lots[0].lot_id
    with psycopg.connect(database_url) as conn:
        counts: dict[str, Any] = {}
        for key, table in (
            ("readings", "reading"),
            ("dead_letters", "dead_letter"),
            ("excursions", "excursion"),
            ("chain_breaks", "chain_break"),
            ("ledger_events", "ledger_event"),
            ("lots", "lot"),
            ("rfid_reads", "rfid_read"),
        ):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[key] = int(row[0]) if row else 0
        reasons: dict[str, int] = dict(
            conn.execute("SELECT reason, count(*) FROM dead_letter GROUP BY reason ORDER BY 1").fetchall()
        )
        result = verify(
            conn,
            public_key=pinned_key(str(checkpoint_key)) if checkpoint_key else None,
            kept=own_log(checkpoint_key) if checkpoint_key else [],
        )
        checkpoint = latest(conn)
        # The demo asks the API as an inspector would: with an inspector's key.
        key = create_key(conn, "inspector", "demo inspector")
        conn.commit()
    response = httpx.get(f"{api_url}/trace/{lot_id}", headers={"X-API-Key": key}, timeout=30)
    trace = response.json() if response.status_code == 200 else None
    return {
        **counts,
        "dead_letter_reasons": reasons,
        "ledger_verified": result.ok,
        "checkpoint_seq": checkpoint.seq if checkpoint else None,
        "trace_lot": lot_id,
        "trace_status": response.status_code,
        "trace": trace,
    }


def reset_embedded(settings: Settings, server_url: str) -> str:
    """Drop and recreate the embedded `coldchain` database: every demo run starts from a clean slate.

    The checkpoint log beside the ledger's key vouches for the ledger being dropped: it is moved aside
    (``ledger-checkpoints.jsonl.<UTC time>``), kept, and no longer checked against the new ledger."""
    from traceability.ledger.checkpoint import KEY_FILE, log_beside

    log = log_beside(settings.home / KEY_FILE)
    if log.exists():
        log.rename(log.with_name(f"{log.name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE_NAME)))
    url = ensure_database(server_url, DATABASE_NAME)
    migrate(url)
    return url


def run_demo_command(
    settings: Settings, *, serve: bool, speedup: float, reset: bool = False, scenario: str = "default"
) -> int:
    """`coldchain demo`: progress lines, a human summary, and one JSON object as the last line.

    `scenario`: ``default`` (Qinzhou cold store -> Nanning market) or ``port`` (the import flow at Qinzhou:
    ``coldchain.port_demo``).

    On the embedded database the demo starts from a clean slate, which it makes only on a database of
    its own: one it created (marked so under COLDCHAIN_HOME), a home that holds none yet, or with
    `reset` (asked for by the user). Any other database is left as it is, and the demo refuses (2).
    The broker's logins (mqtt/passwd, mqtt/acl: the devices' included) are never touched."""
    from coldchain.datadir import DataDir
    from coldchain.port_demo import format_port_summary, port_ok, run_port_scenario
    from coldchain.report import format_demo_summary
    from firmware_sim.port_world import port_world
    from traceability.ledger.checkpoint import KEY_FILE as LEDGER_KEY_FILE

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")

    embedded_db = settings.database_url is None
    data = DataDir(settings.home)
    # A home in use by another process: opening the stack below refuses it, naming that process.
    foreign = data.holds_database() and not data.demo_marker.is_file() and not data.locked_by_another()
    if embedded_db and foreign and not reset:
        print(
            f"COLDCHAIN_HOME {data.home} holds a database the demo did not create; the demo leaves it as it"
            " is. `coldchain demo --reset` drops it and its data (the broker logins stay), or point"
            " COLDCHAIN_HOME at another directory",
            file=sys.stderr,
            flush=True,
        )
        return 2
    # The demo resets the database: it must own the data directory. A fresh broker store too: no queued
    # messages of an earlier run reach this run's database.
    with open_stack(settings, broker=True, exclusive=True, fresh_broker_store=True) as stack:
        assert stack.broker is not None
        database_url = stack.database_url
        if embedded_db:
            assert stack.embedded_pg is not None
            print(f"embedded PostgreSQL in {stack.embedded_pg.pgdata}; demo data reset", flush=True)
            database_url = reset_embedded(settings, stack.embedded_pg.server_url)
            data.demo_marker.write_text(
                f"The database {DATABASE_NAME!r} in pgdata/ was created by `coldchain demo`,"
                " which resets it on every run.\n"
            )
        else:
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM ledger_event").fetchone()
            if row and row[0]:
                print("the configured database already holds ledger events; run the demo on an empty one")
                return 2
        try:
            play = run_port_scenario if scenario == "port" else run_scenario
            summary = play(
                database_url,
                stack.broker,
                speedup=speedup,
                progress=lambda m: print(m, flush=True),
                checkpoint_key=settings.home / LEDGER_KEY_FILE,
                api_host=settings.api_host,
                stage_brokers=stack.stage_brokers(),
                settings=settings,
            )
            human = format_port_summary(summary) if scenario == "port" else format_demo_summary(summary)
            print(human, flush=True)
            line = {k: v for k, v in summary.items() if k not in ("trace", "traces", "sent")}
            line["messages_sent"] = summary["sent"].get("messages")
            print(json.dumps(line, ensure_ascii=False, default=str), flush=True)
            if serve:
                lot = port_world().trace_code_lot if scenario == "port" else None
                _serve_forever(settings, database_url, stack.broker, stack.stage_brokers(), lot=lot)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            return 130
    if scenario == "port":
        return 0 if port_ok(summary) else 1
    ok = summary["ledger_verified"] and summary["trace_status"] == 200
    return 0 if ok else 1


def web_instructions(api_url: str, key: str, lot_id: str | None = None) -> list[str]:
    """What to do in a browser: the pages' URL, the key to sign in with, and the demo lot's label as a
    scanner reads it (GS1 element string of its GTIN and batch) to type into the search box. `lot_id`: the
    port scenario's lot to show (default: the default scenario's lot)."""
    from firmware_sim.port_world import port_world
    from firmware_sim.world import demo_world
    from traceability.web.identify import hri

    lots = demo_world().lots if lot_id is None else port_world().base.lots
    lot = next(x for x in lots if lot_id in (None, x.lot_id))
    label = hri((("01", lot.gtin), ("10", lot.batch)))
    return [
        f"web pages: open {api_url}/ui/ and sign in with the key above",
        f"find the demo lot by typing its scanned label: {label}",
        f"a buyer's view of it (no sign-in): {api_url}/scan/{label}",
    ]


def grafana_host(info: Mapping[str, object]) -> tuple[str, str]:
    """The datasource's host as Grafana takes it, and who can reach it. The embedded server listens on a
    Unix socket only (no TCP address): Grafana takes the socket's directory as the host, from this
    machine alone."""
    host = str(info.get("host") or "127.0.0.1")
    port = info.get("port") or 5432
    if host.startswith("/"):
        return (
            host,
            f"a Unix socket, port {port}: a Grafana on this machine only; for one elsewhere, run on a"
            " PostgreSQL with a TCP listener (COLDCHAIN_DATABASE_URL)",
        )
    return f"{host}:{port}", "TCP"


def grafana_instructions(database_url: str, home: Path) -> list[str]:
    """How to point a Grafana at this database: the address, the read-only login (made here, its password
    kept under COLDCHAIN_HOME) and the provisioning folder with the generated dashboards and alert rules."""
    from importlib import resources

    from psycopg.conninfo import conninfo_to_dict

    from coldchain.reader_role import PASSWORD_FILE, READER_ROLE, ensure_reader, reader_password

    password = reader_password(home)
    ensure_reader(database_url, password)
    info = conninfo_to_dict(database_url)
    host, where = grafana_host(info)
    grafana = Path(str(resources.files("dashboards").joinpath("grafana")))
    db = info.get("dbname")
    return [
        f"Grafana: PostgreSQL datasource at {host} ({where}), database {db}, user {READER_ROLE}"
        f" (read-only), password in {home / PASSWORD_FILE}, TLS off",
        f"Grafana provisioning folder: {grafana / 'provisioning'} (datasources, dashboards, alert rules);"
        f" the dashboards: {grafana / 'dashboards'} (the provider reads /var/lib/grafana/dashboards)",
        f"  provisioned, Grafana's environment needs COLDCHAIN_GRAFANA_DB_HOST={host}"
        f" COLDCHAIN_GRAFANA_DB_NAME={db} COLDCHAIN_GRAFANA_DB_USER={READER_ROLE}"
        " COLDCHAIN_GRAFANA_DB_PASSWORD=<that password>; see docs/grafana.md",
    ]


def _serve_forever(
    settings: Settings,
    database_url: str,
    broker: BrokerAddress,
    stage_brokers: Mapping[str, BrokerAddress],
    *,
    lot: str | None = None,
) -> None:
    from traceability.api.auth import create_key
    from traceability.ledger.checkpoint import KEY_FILE as LEDGER_KEY_FILE

    with psycopg.connect(database_url) as conn:
        key = create_key(conn, "operator", "demo --serve")
        conn.commit()
    # While serving, the ledger keeps signing its head, and publishes each checkpoint as it is made.
    services = Services(
        database_url,
        broker,
        api_host=settings.api_host,
        api_port=settings.api_port,
        stage_brokers=stage_brokers,
        checkpoint_key=settings.home / LEDGER_KEY_FILE,
        gateway_limits=gateway_limits(settings),
        api_options=api_options(settings),
    )
    services.start()
    print(f"serving: API {services.api_url}, broker {broker.url()} (Ctrl-C to stop)", flush=True)
    print(f"operator API key for this data directory (send as X-API-Key): {key}", flush=True)
    for line in web_instructions(services.api_url, key, lot):
        print(line, flush=True)
    for line in grafana_instructions(database_url, settings.home):
        print(line, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM is how serving ends: the demo's verdict stands.
        print("stopping", flush=True)
    finally:
        services.stop()

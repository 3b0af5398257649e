"""Composition root: `coldchain bench scorecard`: every carrier's scorecard from rollups, at fleet sizes.

Each size is a database of its own on the configured (or embedded) server. The fleet generator's samples
(one a minute per logger: temp, lat, lon; each carrier with its fault profile) go through the gateway's
own writer (`gateway.store.write`, one binary COPY per transaction, the `device_seq` and dead-letter
accounting of the live service) rather than through MQTT: one message per sample, received at its upload
time (late samples LATE_MS after their device time), the malformed ones refused by the gateway's decoder.
The rules worker then judges everything (geofence crossings) and refreshes the rollups; the timed figure
is `scorecard_s`, the median of three runs (after a warm-up) of the whole carrier scoreboard
(`traceability.scorecards.compute.scoreboard`), and each size says whether the cards equal what the
injected faults imply.

`--build direct` fills each size's database without the gateway and the rules worker: the tables the
scorecards read are written from the same fleet generator (`coldchain.fleet_rollups.build`, checked equal
to this pipeline's by tests/coldchain/test_fleet_rollups.py), so a quarter of 1 000 loggers builds in
minutes. `--keep-db NAME` builds the one size into database NAME on the server and keeps it; `--keep-db NAME
--reuse` times that database again without building it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import psycopg
import typer

from coldchain.bench.app import bench_app, host_probe, scratch_database, steal_meter
from coldchain.cli.common import cli_settings, emit_json, fail

DAY_MS = 86_400_000
# The period starts on a quarter's first day: 2026Q4.
START_MS = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000)
# Messages per gateway transaction: ten times the service's default max_batch, fewer commits for the
# bulk load (the load is not what the bench times).
WRITE_CHUNK = 5000
CARRIERS = 5  # one per fault profile
TIMED_RUNS = 3  # the scoreboard timed this many times after a warm-up run; the median is reported
BUILDS = ("pipeline", "direct")
LOADED_THROUGH = {
    "pipeline": "gateway.store.write (binary COPY), not MQTT; rules worker for crossings and rollups",
    "direct": "coldchain.fleet_rollups.build: the tables the scorecards read, written from the fleet "
    "generator (equal to the pipeline's: tests/coldchain/test_fleet_rollups.py)",
    "reused": "an existing database (--keep-db NAME --reuse), as built before",
}


def ingest(url: str, fleet: Any, start_ms: int, *, per_transaction: int = WRITE_CHUNK) -> dict[str, int]:
    """Every sample of the fleet through the gateway's writer, in `per_transaction`-message transactions."""
    from firmware_sim import encode
    from firmware_sim.fleet import BOOT, LOST, MALFORMED, malformed_payload, samples
    from firmware_sim.fleet_world import CHANNELS
    from gateway.decode import decode
    from gateway.models import Batch, RawMessage, Rejected, TelemetryBatch
    from gateway.store import SeriesCache, write

    channels = list(CHANNELS)
    flags = [0] * len(channels)
    cache: SeriesCache = {}
    counts = {"messages": 0, "readings": 0, "dead_letters": 0, "transactions": 0}
    items: list[tuple[RawMessage, Batch | Rejected]] = []
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")  # a bulk load: no WAL flush wait per commit
        conn.commit()

        def flush() -> None:
            result = write(conn, items, cache)
            counts["messages"] += result.messages
            counts["readings"] += result.readings_written
            counts["dead_letters"] += result.dead_letters
            counts["transactions"] += 1
            items.clear()

        for dev in samples(fleet, start_ms):
            topic = encode.topic(dev.device_id, "telemetry")
            upload = dev.upload_ms
            values = np.stack([dev.temp_c, dev.lat, dev.lon], axis=1).tolist()
            bad = 0
            for i in np.argsort(upload, kind="stable").tolist():
                fate = int(dev.fate[i])
                if fate == LOST:
                    continue
                t, rx = int(dev.t_ms[i]), int(upload[i])
                if fate == MALFORMED:
                    payload = malformed_payload(dev.device_id, dev.seq(i), t, bad)
                    bad += 1
                    items.append((RawMessage(topic, payload, rx), decode(topic, payload, rx)))
                else:
                    batch = TelemetryBatch(
                        device_id=dev.device_id,
                        boot=BOOT,
                        seq=dev.seq(i),
                        received_at_ms=rx,
                        t_ms=[t] * len(channels),
                        channel=channels,
                        value=values[i],
                        flags=flags,
                    )
                    items.append((RawMessage(topic, b"", rx), batch))
                if len(items) >= per_transaction:
                    flush()
        if items:
            flush()
    return counts


def judge(url: str) -> int:
    """Run the rules worker until every ingest batch is judged and every rollup refreshed."""
    from rules.worker import RulesWorker

    worker = RulesWorker(url)
    runs = 0
    try:
        while worker.run_once():
            runs += 1
        while worker.refresh_rollups(1000):
            runs += 1
    finally:
        worker.close()
    return runs


def carrier_board(
    conn: psycopg.Connection[Any], label: str, start: datetime, end: datetime, *, facts: bool = True
) -> Any:
    """Every carrier's scorecard over [start, end) (the scorecards stage's scoreboard); ``facts`` False:
    every shipment judged in the statement, none read from shipment_fact."""
    from traceability.scorecards.compute import scoreboard
    from traceability.scorecards.period import Period

    return scoreboard(conn, Period(label, start, end), "carrier", facts=facts)


def judge_all(url: str, end: datetime) -> tuple[int, float]:
    """Judge every shipment of the fleet into shipment_fact as the facts worker does once the period is
    over (its clock a day after ``end``): how many, and the seconds it took."""
    from traceability.scorecards.facts import judge_once

    t0 = time.perf_counter()
    judged = 0
    while (done := judge_once(url, limit=50_000, at=end + timedelta(days=1))).shipments:
        judged += done.shipments
    return judged, time.perf_counter() - t0


@contextmanager
def kept_database(server_url: str, name: str, *, reuse: bool) -> Iterator[str]:
    """The database `name` on the server, kept afterwards: a new, migrated one (refused when it exists), or,
    with `reuse`, the one a previous build left (refused when it does not exist)."""
    from psycopg import sql

    from coldchain.embedded import with_database
    from coldchain.migrate import migrate

    with psycopg.connect(server_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if reuse and not exists:
            fail(f"--reuse: there is no database {name!r} on the server to time (build it with --keep-db)")
        if not reuse and exists:
            fail(f"--keep-db: database {name!r} exists; --reuse times it as it is, or drop it first")
        if not reuse:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    if not reuse:
        migrate(url)
    yield url


def build_fleet(url: str, f: Any, how: str) -> dict[str, Any]:
    """Seed the fleet's registry, then fill what the scorecards read: through the gateway's writer and the
    rules worker (`pipeline`), or written directly (`direct`, coldchain.fleet_rollups); what it took."""
    from coldchain.fleet import seed_fleet
    from coldchain.fleet_rollups import build

    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        seed_fleet(conn, f, START_MS)
        conn.commit()
    seed_s = time.perf_counter() - t0
    out: dict[str, Any] = {"seed_s": round(seed_s, 1)}
    if how == "direct":
        t0 = time.perf_counter()
        built = build(url, f, START_MS, messages_per_transaction=WRITE_CHUNK)
        direct_s = time.perf_counter() - t0
        out.update(
            readings=built.readings,
            messages=built.messages,
            dead_letters=built.dead_letters,
            direct_s=round(direct_s, 1),
            build_s=round(seed_s + direct_s, 1),
        )
        return out
    t0 = time.perf_counter()
    counts = ingest(url, f, START_MS)
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    judge(url)
    judge_s = time.perf_counter() - t0
    out.update(
        readings=counts["readings"],
        messages=counts["messages"],
        dead_letters=counts["dead_letters"],
        ingest_s=round(ingest_s, 1),
        ingest_rps=round(counts["readings"] / ingest_s),
        rules_and_rollups_s=round(judge_s, 1),
        build_s=round(seed_s + ingest_s + judge_s, 1),
    )
    return out


def run_size(
    server_url: str, devices: int, days: int, how: str, keep_db: str | None = None, reuse: bool = False
) -> dict[str, Any]:
    """One fleet of `devices` loggers over `days` days in a database of its own (a scratch one, or
    `keep_db`): build it (`how`: pipeline or direct; nothing when `reuse`), then time the carrier scoreboard
    and compare it with the implied ratios."""
    from coldchain.fleet import compare, period_of, required_interval_ms
    from firmware_sim.fleet import implied
    from firmware_sim.fleet_world import PRODUCT_CLASS, fleet

    f = fleet(carriers=CARRIERS, trucks_per_carrier=max(1, devices // CARRIERS), period_ms=days * DAY_MS)
    database = (
        kept_database(server_url, keep_db, reuse=reuse)
        if keep_db
        else scratch_database(server_url, "bench_scorecard")
    )
    with database as url:
        built: dict[str, Any] = {"build": "reused"} if reuse else {"build": how, **build_fleet(url, f, how)}
        with psycopg.connect(url, autocommit=True) as conn:
            if reuse:
                row = conn.execute("SELECT COALESCE(sum(readings), 0) FROM reading_1d").fetchone()
                built["readings"] = int(row[0]) if row else 0
            else:
                conn.execute("VACUUM (ANALYZE)")  # a database at rest: autovacuum has analysed it
            start, end = period_of(f, START_MS)
            # Without facts: each shipment's track, crossings and evidence judged in the statement itself
            # (a reused database's facts are judged again below, so the judging is measured too).
            conn.execute("TRUNCATE shipment_fact")
            t0 = time.perf_counter()
            unjudged = carrier_board(conn, f"{days}d", start, end, facts=False)
            unjudged_s = time.perf_counter() - t0
            judged, judge_s = judge_all(url, end)
            conn.execute("VACUUM (ANALYZE) shipment_fact")
            carrier_board(conn, f"{days}d", start, end)  # warm: the first run also reads the pages from disk
            times = []
            for _ in range(TIMED_RUNS):
                t0 = time.perf_counter()
                board = carrier_board(conn, f"{days}d", start, end)
                times.append(time.perf_counter() - t0)
            scorecard_s = statistics.median(times)
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        want = implied(f, START_MS, required_interval_ms=required_interval_ms(PRODUCT_CLASS))
        mismatches = compare(board, want)
        unjudged_mismatches = compare(unjudged, want)
    n_devices = sum(len(c.trucks) for c in f.carriers)
    return {
        "devices": n_devices,
        "days": days,
        **built,
        "database": keep_db,
        "shipments": len(f.trips),
        "carriers": len(board.cards),
        "scorecard_s": round(scorecard_s, 3),
        "scorecard_s_runs": [round(t, 3) for t in times],
        "database_mb": round(int(size[0]) / 2**20) if size else None,
        "matches_injected": not mismatches,
        "unjudged_scorecard_s": round(unjudged_s, 3),
        "unjudged_matches_injected": not unjudged_mismatches,
        "facts_judged": judged,
        "facts_judge_s": round(judge_s, 1),
        "mismatches": [m.__dict__ for m in mismatches[:20]],
    }


@bench_app.command("scorecard")
def bench_scorecard(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object as the last line.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (smoke test).")] = False,
    devices: Annotated[
        str, typer.Option(help="Fleet sizes to run, loggers, comma-separated (5 carriers share them).")
    ] = "5,10",
    days: Annotated[int, typer.Option(help="Days simulated (91: a quarter).")] = 91,
    build: Annotated[
        str,
        typer.Option(
            help="How each size is built: 'pipeline' (the gateway's writer and the rules worker) or 'direct' "
            "(the scorecard tables written from the fleet generator: coldchain.fleet_rollups)."
        ),
    ] = "pipeline",
    keep_db: Annotated[
        str | None,
        typer.Option(
            help="Build the (one) size into this database on the server and keep it (not a scratch one)."
        ),
    ] = None,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Time the database --keep-db names as it is, without building it.")
    ] = False,
) -> None:
    """Every carrier's scorecard from rollups, over a fleet with injected faults, at several sizes."""
    try:
        import traceability.scorecards.compute  # noqa: F401
    except ImportError:
        fail("bench scorecard: this build has no scorecards (traceability.scorecards)")
    from coldchain.stack import open_stack
    from firmware_sim.fleet_world import PROFILES

    try:
        sizes = sorted({int(x) for x in devices.split(",") if x.strip()})
    except ValueError:
        fail(f"--devices: comma-separated whole numbers, not {devices!r}")
    if quick:
        sizes, days = [5, 10], 2
    if not sizes or min(sizes) < CARRIERS:
        fail(f"--devices: each size at least {CARRIERS} (one truck per carrier)")
    if days < 2:
        fail("--days: at least 2 (the late profile uploads samples 2 h after their time)")
    if build not in BUILDS:
        fail(f"--build: one of {', '.join(BUILDS)}, not {build!r}")
    if reuse and not keep_db:
        fail("--reuse: name the database to time with --keep-db")
    if keep_db and len(sizes) > 1:
        fail("--keep-db: one fleet size (one database)")
    steal = steal_meter()
    probe = host_probe()
    settings = cli_settings()
    runs = []
    with open_stack(settings, apply_migrations=False) as stack:
        for n in sizes:
            runs.append(run_size(stack.database_url, n, days, build, keep_db, reuse))
            if not json_out:
                r = runs[-1]
                typer.echo(
                    f"{r['devices']} devices x {days} d ({r['build']}): {r['readings']:,} readings; "
                    f"scorecard {r['scorecard_s']} s; matches injected faults: {r['matches_injected']}"
                )
    largest = runs[-1]
    first = runs[0]
    growth = round(largest["scorecard_s"] / first["scorecard_s"], 2) if first["scorecard_s"] > 0 else None
    result = {
        "bench": "scorecard",
        "build": largest["build"],
        "devices": largest["devices"],
        "readings": largest["readings"],
        "shipments": largest["shipments"],
        "build_s": largest.get("build_s"),
        "scorecard_s": largest["scorecard_s"],
        "scorecard_s_runs": largest["scorecard_s_runs"],
        "matches_injected": all(r["matches_injected"] for r in runs),
        "database_mb": largest["database_mb"],
        "database": keep_db,
        "days": days,
        "readings_per_device_minute": 1,
        "channels_per_reading": 3,
        "profiles": [p.name for p in PROFILES],
        "loaded_through": LOADED_THROUGH["reused" if reuse else build],
        "scorecard_growth": {
            "devices_ratio": round(largest["devices"] / first["devices"], 2),
            "scorecard_s_ratio": growth,
        },
        "runs": runs,
        "cpus": os.cpu_count(),
        "cpu_steal_pct": steal(),
        "host_probe_ms": probe(),
    }
    emit_json(result)

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
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
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


def ingest(url: str, fleet: Any, start_ms: int) -> dict[str, int]:
    """Every sample of the fleet through the gateway's writer, in WRITE_CHUNK-message transactions."""
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
                if len(items) >= WRITE_CHUNK:
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


def carrier_board(conn: psycopg.Connection[Any], label: str, start: datetime, end: datetime) -> Any:
    """Every carrier's scorecard over [start, end) (the scorecards stage's scoreboard)."""
    from traceability.scorecards.compute import scoreboard
    from traceability.scorecards.period import Period

    return scoreboard(conn, Period(label, start, end), "carrier")


def run_size(server_url: str, devices: int, days: int) -> dict[str, Any]:
    """One fleet of `devices` loggers over `days` days in a database of its own: build, then time the
    carrier scoreboard and compare it with the implied ratios."""
    from coldchain.fleet import compare, period_of, required_interval_ms, seed_fleet
    from firmware_sim.fleet import implied
    from firmware_sim.fleet_world import PRODUCT_CLASS, fleet

    f = fleet(carriers=CARRIERS, trucks_per_carrier=max(1, devices // CARRIERS), period_ms=days * DAY_MS)
    with scratch_database(server_url, "bench_scorecard") as url:
        with psycopg.connect(url) as conn:
            seed_fleet(conn, f, START_MS)
            conn.commit()
        t0 = time.perf_counter()
        counts = ingest(url, f, START_MS)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        judge(url)
        judge_s = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")  # a database at rest: autovacuum has analysed it
            start, end = period_of(f, START_MS)
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
    n_devices = sum(len(c.trucks) for c in f.carriers)
    return {
        "devices": n_devices,
        "days": days,
        "readings": counts["readings"],
        "messages": counts["messages"],
        "dead_letters": counts["dead_letters"],
        "shipments": len(f.trips),
        "carriers": len(board.cards),
        "scorecard_s": round(scorecard_s, 3),
        "scorecard_s_runs": [round(t, 3) for t in times],
        "ingest_s": round(ingest_s, 1),
        "ingest_rps": round(counts["readings"] / ingest_s),
        "rules_and_rollups_s": round(judge_s, 1),
        "database_mb": round(int(size[0]) / 2**20) if size else None,
        "matches_injected": not mismatches,
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
    steal = steal_meter()
    probe = host_probe()
    settings = cli_settings()
    runs = []
    with open_stack(settings, apply_migrations=False) as stack:
        for n in sizes:
            runs.append(run_size(stack.database_url, n, days))
            if not json_out:
                r = runs[-1]
                typer.echo(
                    f"{r['devices']} devices x {days} d: {r['readings']:,} readings; scorecard "
                    f"{r['scorecard_s']} s; matches injected faults: {r['matches_injected']}"
                )
    largest = runs[-1]
    first = runs[0]
    growth = round(largest["scorecard_s"] / first["scorecard_s"], 2) if first["scorecard_s"] > 0 else None
    result = {
        "bench": "scorecard",
        "devices": largest["devices"],
        "readings": largest["readings"],
        "scorecard_s": largest["scorecard_s"],
        "matches_injected": all(r["matches_injected"] for r in runs),
        "days": days,
        "readings_per_device_minute": 1,
        "channels_per_reading": 3,
        "profiles": [p.name for p in PROFILES],
        "loaded_through": "gateway.store.write (binary COPY), not MQTT",
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

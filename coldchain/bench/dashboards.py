"""Composition root: `coldchain bench dashboards`: every panel's query, raw rows against the rollups.

Builds a fresh database on the configured server (the embedded one by default) holding a generated fleet:
`devices` assets with one temperature logger each over `days` days, `readings` temperature readings in
all, written server-side (INSERT … SELECT generate_series), with dropouts, skewed clocks, receive lag, an
excursion every few days per device (and its excursion row and alarm), positions, battery, dead letters,
sequence gaps and broken lots; then `dashboards.rollups.refresh` and VACUUM ANALYZE. Every panel of
dashboards.queries then runs, expanded as Grafana expands it, for a 24-hour, a 7-day and a 90-day range
ending at the data's end, at Grafana's interval for each range: the whole fleet (every variable at All),
except the asset detail panels, timed for one asset (FA0, a reefer truck) as that dashboard shows one.
Each runs `repeats` times through the rollups (PANELS) and `raw_repeats` times on the raw rows
(PANELS_RAW), after an untimed run. The figures: p95 ms per panel and range, each path; worst_p95_ms,
the slowest panel through the rollups on 90 days (the target's range: < 200 ms); beside them the ceiling
measured in the same run, a `SELECT 1` round trip on the same connection (no panel can beat it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import psycopg
import typer

from coldchain.bench.app import bench_app, host_probe, scratch_database, steal_meter
from coldchain.cli.common import cli_settings, emit_json

END: Final = datetime(2026, 4, 1, tzinfo=UTC)  # the generated data's end (exclusive)
RANGES: Final = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "90d": timedelta(days=90)}
TARGET_P95_MS: Final = 200.0
KINDS: Final = ("reefer_truck", "cold_room", "reefer_container", "passive_box")

# The fleet, server-side. Parameters: devices, days, per_device (readings per device), step_s (seconds
# between a device's readings), end. Device i: asset FA<i>, logger fd<i>, class chilled (0..4 °C) or
# frozen (≤ -18 °C) by parity; an excursion (8 °C or -10 °C) of 1/period of its readings every `period`
# readings, a dropout every 997th, a skewed clock every 101st, receive lag 0..12 s (400 s every 500th).
_FLEET_SQL: Final = (
    """
INSERT INTO party (party_id, name, role)
SELECT 'FC' || c, 'Fleet carrier ' || c, 'carrier' FROM generate_series(0, 4) c
UNION ALL SELECT 'FS', 'Fleet cold store', 'cold_store';
INSERT INTO location (location_id, name, kind, lat, lon)
SELECT 'FL' || s, 'Fleet site ' || s, 'cold_store', 21 + s * 0.1, 108 + s * 0.1 FROM generate_series(0, 9) s;
INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,
                        storage_max_gap_s, transport_max_gap_s)
VALUES ('chilled', 'bench', '1', 'Chilled', 0, 4, 'bench', 1800, 600),
       ('frozen', 'bench', '1', 'Frozen', NULL, -18, 'bench', 1800, 600)
ON CONFLICT (product_class) DO NOTHING;
INSERT INTO asset (asset_id, kind, name, operator_party_id, location_id, product_class, mode)
SELECT 'FA' || i, k.kind, 'Fleet asset ' || i,
       CASE WHEN k.kind = 'cold_room' THEN 'FS' ELSE 'FC' || (i %% 5) END,
       CASE WHEN k.kind = 'cold_room' THEN 'FL' || (i %% 10) END,
       CASE WHEN i %% 2 = 0 THEN 'chilled' ELSE 'frozen' END,
       CASE WHEN k.kind = 'cold_room' THEN 'storage' ELSE 'transport' END
FROM generate_series(0, %(devices)s - 1) i,
     LATERAL (SELECT (ARRAY['"""
    + "', '".join(KINDS)
    + """'])[i %% 4 + 1] AS kind) k;
INSERT INTO device (device_id, kind)
SELECT 'fd' || i, 'temp_logger' FROM generate_series(0, %(devices)s - 1) i;
INSERT INTO device_mount (device_id, asset_id, valid_from)
SELECT 'fd' || i, 'FA' || i, %(end)s - make_interval(days => %(days)s + 1)
FROM generate_series(0, %(devices)s - 1) i;
INSERT INTO series (device_id, channel)
SELECT 'fd' || i, c FROM generate_series(0, %(devices)s - 1) i, unnest(ARRAY['temp', 'battery']) c
UNION ALL
SELECT 'fd' || i, c FROM generate_series(0, %(devices)s - 1) i, unnest(ARRAY['lat', 'lon']) c
WHERE i %% 4 <> 1;
INSERT INTO reading (time, series_id, value, received_at, flags)
SELECT g.t, s.series_id,
       CASE WHEN k %% 997 = 0 THEN NULL
            WHEN (k + s.series_id * 7) %% %(period)s < %(exc_len)s
                 THEN CASE WHEN d.i %% 2 = 0 THEN 8.0 ELSE -10.0 END
            ELSE CASE WHEN d.i %% 2 = 0 THEN 2.0 ELSE -20.0 END + (k %% 10) / 10.0 END,
       g.t + CASE WHEN k %% 500 = 0 THEN interval '400 seconds' ELSE make_interval(secs => k %% 13) END,
       CASE WHEN k %% 101 = 0 THEN 1 ELSE 0 END
FROM series s
JOIN LATERAL (SELECT substr(s.device_id, 3)::int AS i) d ON true
CROSS JOIN generate_series(1, %(per_device)s) k
CROSS JOIN LATERAL (SELECT %(end)s - make_interval(secs => k * %(step_s)s) AS t) g
WHERE s.channel = 'temp' AND s.device_id LIKE 'fd%%';
-- Battery and position once a day; the last battery reading of every tenth device below 20 %%.
INSERT INTO reading (time, series_id, value, received_at)
SELECT %(end)s - make_interval(days => day) - make_interval(mins => 7), s.series_id,
       CASE s.channel WHEN 'battery' THEN CASE WHEN day = 0 AND d.i %% 10 = 0 THEN 12 ELSE 80 END
                      WHEN 'lat' THEN 21 + d.i %% 100 * 0.01 ELSE 108 + d.i %% 100 * 0.01 END,
       %(end)s - make_interval(days => day) - make_interval(mins => 7)
FROM series s
JOIN LATERAL (SELECT substr(s.device_id, 3)::int AS i) d ON true
CROSS JOIN generate_series(0, %(days)s - 1) day
WHERE s.channel IN ('battery', 'lat', 'lon') AND s.device_id LIKE 'fd%%';
-- The excursion rows the rules stage would write: each run of out-of-range readings of a series.
INSERT INTO excursion (series_id, asset_id, product_class, rule_id, pack_version, start_time, end_time, open,
                       peak_c, limit_low_c, limit_high_c, readings)
SELECT x.series_id, 'FA' || substr(s.device_id, 3), CASE WHEN x.peak > 0 THEN 'chilled' ELSE 'frozen' END,
       'bench/range', '1', min(x.time), max(x.time),
       max(x.time) >= %(end)s - make_interval(secs => %(step_s)s),
       max(x.peak), CASE WHEN max(x.peak) > 0 THEN 0 END, CASE WHEN max(x.peak) > 0 THEN 4 ELSE -18 END,
       count(*)
FROM (
    SELECT r.series_id, r.time, r.value AS peak,
           r.time - row_number() OVER (PARTITION BY r.series_id ORDER BY r.time)
               * make_interval(secs => %(step_s)s) AS island
    FROM reading r JOIN series s2 ON s2.series_id = r.series_id
    WHERE s2.channel = 'temp' AND s2.device_id LIKE 'fd%%' AND r.value IN (8.0, -10.0)
) x JOIN series s ON s.series_id = x.series_id
GROUP BY x.series_id, s.device_id, x.island, x.peak;
-- An alarm per excursion: acknowledged after 5 min, resolved 2 min after it ends; the latest left open.
INSERT INTO alarm (asset_id, rule_id, kind, severity, state, series_id, product_class, reason,
                   condition_start, condition_end, opened_at, acknowledged_at, acknowledged_by, resolved_at,
                   resolved_by)
SELECT e.asset_id, e.rule_id || '#' || e.excursion_id, 'excursion',
       CASE WHEN e.excursion_id %% 3 = 0 THEN 'critical' ELSE 'warning' END,
       'resolved', e.series_id, e.product_class, 'bench', e.start_time, e.end_time,
       e.start_time + interval '1 minute', e.start_time + interval '6 minutes', 'bench',
       e.end_time + interval '2 minutes', 'auto'
FROM excursion e WHERE e.rule_id = 'bench/range';
UPDATE alarm a SET state = 'acknowledged', resolved_at = NULL, resolved_by = NULL
FROM (SELECT DISTINCT ON (asset_id) alarm_id FROM alarm WHERE reason = 'bench'
      ORDER BY asset_id, opened_at DESC) last
WHERE a.alarm_id = last.alarm_id;
INSERT INTO device_seq (device_id, boot, next_seq, received)
SELECT 'fd' || i, 1, %(per_device)s + i %% 7, %(per_device)s FROM generate_series(0, %(devices)s - 1) i;
INSERT INTO dead_letter (received_at, topic, payload, reason, payload_bytes, payload_sha256)
SELECT %(end)s - make_interval(secs => n * 613 %% (%(days)s * 86400)), 'cc/v1/dev/x/telemetry', '\\x00',
       (ARRAY['malformed_json', 'schema', 'unknown_device', 'device_mismatch'])[n %% 4 + 1], 1,
       sha256('\\x00')
FROM generate_series(1, 1000) n;
INSERT INTO lot (lot_id, product_class, description)
SELECT 'urn:epc:class:lgtin:6901234.099999.F' || n, CASE WHEN n %% 2 = 0 THEN 'chilled' ELSE 'frozen' END,
       'Fleet lot ' || n
FROM generate_series(1, %(devices)s) n;
INSERT INTO verdict_history (subject_kind, subject_id, version, verdict, product_class, pack_id, pack_version,
                             items, reasons, arrived, change, computed_at)
SELECT 'lot', l.lot_id, 1, CASE WHEN n %% 3 = 0 THEN 'broken' ELSE 'pass' END, l.product_class, 'bench', '1',
       jsonb_build_array(jsonb_build_object('kind', 'gap', 'start',
           %(end)s - make_interval(days => n %% %(days)s))), '[]', '{}', '{}', %(end)s
FROM lot l, LATERAL (SELECT substr(l.lot_id, 37)::int AS n) x
WHERE l.lot_id LIKE 'urn:epc:class:lgtin:6901234.099999.F%%';
"""
)


@dataclass(frozen=True, slots=True)
class Fleet:
    devices: int
    days: int
    per_device: int
    step_s: int
    end: datetime

    @property
    def readings(self) -> int:
        return self.devices * self.per_device


def plan(readings: int, devices: int, days: int, end: datetime = END) -> Fleet:
    """`readings` temperature readings spread over `devices` loggers and `days` days, whole seconds apart."""
    if devices <= 0 or days <= 0 or readings < devices:
        raise ValueError("need devices > 0, days > 0 and at least one reading per device")
    per_device = readings // devices
    step_s = max(1, (days * 86_400) // per_device)
    return Fleet(devices, days, min(per_device, days * 86_400 // step_s), step_s, end)


def build_fleet(conn: psycopg.Connection[Any], fleet: Fleet) -> None:
    """Write the generated fleet (committed by the caller) into a migrated, empty database."""
    per_excursion = max(2, math.ceil(1800 / fleet.step_s))  # about 30 minutes out of range
    period = max(per_excursion * 4, (5 * 86_400) // fleet.step_s)  # every five days or so
    params = {
        "devices": fleet.devices,
        "days": fleet.days,
        "per_device": fleet.per_device,
        "step_s": fleet.step_s,
        "end": fleet.end,
        "period": period,
        "exc_len": per_excursion,
    }
    with conn.cursor() as cur:
        for statement in _FLEET_SQL.split(";\n"):
            if statement.strip():
                cur.execute(statement, params)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], 2)


# The asset detail dashboard shows one asset: its panels are timed for one (a reefer truck); every other
# panel for the whole fleet (every variable at All).
DETAIL_ASSET: Final = "FA0"


def scope(panel: str) -> dict[str, list[str] | None]:
    """The variables a panel is timed with."""
    from dashboards import queries

    return {**queries.ALL, "asset": [DETAIL_ASSET]} if panel.startswith("ASSET_") else dict(queries.ALL)


def panel_points() -> dict[str, int]:
    """Each panel's maxDataPoints as its generated dashboard sets it (Grafana divides the range by it for
    $__interval); a panel that sets none gets Grafana's default, about its width in pixels (1 000)."""
    from importlib import resources

    from dashboards import queries

    by_sql = {text: name for name, text in queries.PANELS.items()}
    points: dict[str, int] = {}
    folder = resources.files("dashboards").joinpath("grafana", "dashboards")
    for item in folder.iterdir():
        if not item.name.endswith(".json"):
            continue
        for panel in json.loads(item.read_text(encoding="utf-8")).get("panels", []):
            for target in panel.get("targets", []):
                name = by_sql.get(target.get("rawSql", ""))
                if name is not None and panel.get("maxDataPoints"):
                    points[name] = int(panel["maxDataPoints"])
    return points


def time_panels(
    conninfo: str, fleet: Fleet, *, repeats: int, raw_repeats: int, panels: list[str] | None = None
) -> dict[str, Any]:
    """p95 ms of every panel (or those named) for each range, through the rollups and on the raw rows,
    after one untimed run of each (plans and caches warm); and the `SELECT 1` ceiling."""
    from dashboards import queries

    names = panels or list(queries.PANELS)
    out: dict[str, dict[str, dict[str, float | None]]] = {n: {} for n in names}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ceiling = []
        for _ in range(max(20, repeats)):
            t = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            ceiling.append((time.perf_counter() - t) * 1000)
        points = panel_points()
        for label, span in RANGES.items():
            t_from, t_to = fleet.end - span, fleet.end
            for name in names:
                ms = queries.interval_ms(t_from, t_to, points.get(name, 1_000))
                figures: dict[str, float | None] = {}
                for path, source, n in (
                    ("rollup", queries.PANELS, repeats),
                    ("raw", queries.PANELS_RAW, raw_repeats),
                ):
                    if n <= 0:
                        figures[f"{path}_p95_ms"] = None
                        continue
                    text = queries.expand(
                        source[name], t_from=t_from, t_to=t_to, interval_ms=ms, variables=scope(name)
                    )
                    conn.execute(text).fetchall()
                    timings = []
                    for _ in range(n):
                        t = time.perf_counter()
                        conn.execute(text).fetchall()
                        timings.append((time.perf_counter() - t) * 1000)
                    figures[f"{path}_p95_ms"] = _p95(timings)
                out[name][label] = figures
    # The target's figure: the slowest panel through the rollups on the 90-day range; and on any range.
    worst = max(((by["90d"]["rollup_p95_ms"] or 0.0, name) for name, by in out.items()), default=(0.0, ""))
    worst_any = max(
        ((f["rollup_p95_ms"] or 0.0, name, label) for name, by in out.items() for label, f in by.items()),
        default=(0.0, "", ""),
    )
    return {
        "panels": out,
        "worst_p95_ms": worst[0],
        "worst_panel": worst[1],
        "worst_any_range_p95_ms": worst_any[0],
        "worst_any_range_panel": worst_any[1],
        "worst_any_range": worst_any[2],
        "ceiling_select1_p95_ms": _p95(ceiling),
    }


@bench_app.command("dashboards")
def bench_dashboards(
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    readings: Annotated[int, typer.Option(help="Temperature readings in all.")] = 10_000_000,
    devices: Annotated[int, typer.Option(help="Loggers, one asset each.")] = 1_000,
    days: Annotated[int, typer.Option(help="Days of data, ending at the ranges' end.")] = 90,
    repeats: Annotated[
        int, typer.Option(help="Timed runs of each panel and range through the rollups.")
    ] = 10,
    raw_repeats: Annotated[int, typer.Option(help="Timed runs of each panel and range on the raw rows.")] = 3,
) -> None:
    """p95 of every dashboard panel's query for 24 h, 7 d and 90 d: raw rows against rollups."""
    from coldchain.stack import open_stack
    from dashboards.rollups import refresh

    fleet = plan(readings, devices, days)
    steal = steal_meter()
    probe = host_probe()
    settings = cli_settings()
    with (
        open_stack(settings, apply_migrations=False) as stack,
        scratch_database(stack.database_url, "bench_dashboards") as url,
    ):
        t_build = time.perf_counter()
        with psycopg.connect(url) as conn:
            build_fleet(conn, fleet)
            conn.commit()
        refresh(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            row = conn.execute(
                "SELECT (SELECT count(*) FROM reading), (SELECT count(*) FROM reading_1h),"
                " (SELECT count(*) FROM excursion), pg_database_size(current_database())"
            ).fetchone()
            assert row is not None
        build_s = time.perf_counter() - t_build
        figures = time_panels(url, fleet, repeats=repeats, raw_repeats=raw_repeats)
    out = {
        "bench": "dashboards",
        "readings": fleet.readings,
        "devices": fleet.devices,
        "days": fleet.days,
        "worst_p95_ms": figures["worst_p95_ms"],
        "worst_panel": figures["worst_panel"],
        "worst_any_range_p95_ms": figures["worst_any_range_p95_ms"],
        "worst_any_range_panel": figures["worst_any_range_panel"],
        "worst_any_range": figures["worst_any_range"],
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": figures["worst_p95_ms"] < TARGET_P95_MS,
        "ceiling_select1_p95_ms": figures["ceiling_select1_p95_ms"],
        "rows_all_channels": row[0],
        "rollup_1h_rows": row[1],
        "excursions": row[2],
        "database_bytes": row[3],
        "step_s": fleet.step_s,
        "build_s": round(build_s, 1),
        "panels": figures["panels"],
        "cpu_steal_pct": steal(),
        "host_probe_ms": probe(),
        "params": {"repeats": repeats, "raw_repeats": raw_repeats, "detail_asset": DETAIL_ASSET},
    }
    if as_json:
        emit_json(out)
    else:
        for k, v in out.items():
            typer.echo(f"{k}: {v}")

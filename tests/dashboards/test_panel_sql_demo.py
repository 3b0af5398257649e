"""Tests, stage 4 (dashboards): the panels on the demo scenario's own data (devices, broker, gateway,
rules, ledger, all real): the truck's compliance rate is what its excursions imply, and the data-quality
panels show the truck's telemetry gap and the malformed messages' dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from process_support import DEMO_SPEEDUP
from web_support import module_database

from coldchain.demo import run_scenario
from coldchain.embedded import EmbeddedBroker
from dashboards import queries as q
from dashboards.rollups import refresh
from firmware_sim import scenario
from firmware_sim.world import CARRIER_PARTY, LOGGER, REEFER, TRUCK, demo_world
from traceability.web.paths import trace_url

Row = tuple[Any, ...]
LOT = demo_world().lots[0].lot_id


@dataclass(frozen=True)
class Demo:
    url: str
    summary: dict[str, Any]

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.summary["sent"]["start_ms"] / 1000, UTC)

    def at(self, ms: int) -> datetime:
        """Scenario time: the start plus `ms`."""
        return self.start + timedelta(milliseconds=ms)


@pytest.fixture(scope="module")
def demo(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo scenario played once into a database of the module's own, on a broker of its own."""
    broker = EmbeddedBroker(tmp_path_factory.mktemp("mqtt"))
    broker.start()
    try:
        with module_database(pg_server_url, template_db) as url:
            summary = run_scenario(url, broker.address, speedup=DEMO_SPEEDUP)
            refresh(url)
            yield Demo(url, summary)
    finally:
        broker.stop()


def run(
    demo: Demo, text: str, t_from: datetime, t_to: datetime, **variables: list[str] | None
) -> list[dict[str, Any]]:
    expanded = q.expand(
        text,
        t_from=t_from,
        t_to=t_to,
        interval_ms=q.interval_ms(t_from, t_to),
        variables={**q.ALL, **variables},
    )
    with psycopg.connect(demo.url) as conn, conn.cursor() as cur:
        cur.execute(expanded)  # type: ignore[call-overload]  # expanded panel SQL
        assert cur.description is not None
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _whole(demo: Demo) -> tuple[datetime, datetime]:
    """A range holding the whole scenario (8 h), on whole hours."""
    start = demo.start.replace(minute=0, second=0, microsecond=0)
    return start - timedelta(hours=1), start + timedelta(hours=10)


def _truck_rate_from_verdicts(
    demo: Demo, t_from: datetime, t_to: datetime
) -> tuple[float, float, list[float]]:
    """(monitored s, out of range s) of the truck, from its raw temperature readings and its excursion
    rows: 60 s for each minute holding a reading of a temperature series while mounted on the truck; out
    of range, those minutes from an excursion's start to its end of that series."""
    with psycopg.connect(demo.url) as conn:
        readings = conn.execute(
            "SELECT r.series_id, r.time FROM reading r JOIN series s ON s.series_id = r.series_id"
            " JOIN device_mount m ON m.device_id = s.device_id AND m.asset_id = %s AND m.valid_from <= r.time"
            "  AND (m.valid_to IS NULL OR r.time < m.valid_to)"
            " WHERE (s.channel = 'temp' OR s.channel LIKE 'temp:%%') AND r.value IS NOT NULL"
            "  AND r.time >= %s AND r.time < %s",
            (TRUCK, t_from, t_to),
        ).fetchall()
        excursions = conn.execute(
            "SELECT series_id, start_time, end_time FROM excursion WHERE asset_id = %s", (TRUCK,)
        ).fetchall()
    minutes = {(sid, t.replace(second=0, microsecond=0)) for sid, t in readings}
    start_minute = {(sid, s.replace(second=0, microsecond=0), e) for sid, s, e in excursions}
    out = {(sid, m) for sid, m in minutes for xs, s, e in start_minute if xs == sid and s <= m <= e}
    assert excursions, "the demo's door-open stop gives the truck an excursion"
    return len(minutes) * 60.0, len(out) * 60.0, [(e - s).total_seconds() for _, s, e in excursions]


def test_truck_compliance_is_what_its_verdicts_imply(demo: Demo) -> None:
    t_from, t_to = _whole(demo)
    monitored, out, durations = _truck_rate_from_verdicts(demo, t_from, t_to)
    # The verdicts' own durations (end - start) say the same time out of range, to the minute at each
    # excursion's edges: the rate is what the verdicts imply, not only what the panel's counting says.
    assert abs(out - sum(durations)) <= 60.0 * len(durations), (out, durations)
    carrier = demo_world().parties[1]
    assert carrier.party_id == CARRIER_PARTY
    rows = {r["group_name"]: r for r in run(demo, q.COMPLIANCE_BY_CARRIER, t_from, t_to)}
    truck = rows[carrier.name]
    assert truck["monitored_s"] == monitored
    assert truck["in_range_s"] == monitored - out
    assert truck["rate"] == pytest.approx(1 - out / monitored, rel=1e-12)
    assert 0 < truck["rate"] < 1
    by_asset = run(demo, q.COMPLIANCE_BY_CLASS, t_from, t_to, asset=[TRUCK])
    assert [(r["group_name"], r["rate"]) for r in by_asset] == [("chilled", truck["rate"])]
    top = run(demo, q.TOP_EXCURSION_ASSETS, t_from, t_to)
    assert top[0]["asset_name"] == "Reefer truck Gui A-12345"
    assert top[0]["excursion_minutes"] * 60 == out


def test_data_quality_shows_the_gap_and_the_dead_letters(demo: Demo) -> None:
    t_from, t_to = _whole(demo)
    gaps = {r["device_id"]: r for r in run(demo, q.DQ_SEQ_GAP_RATE, t_from, t_to)}
    lost = demo.summary["sent"]["readings_lost"]
    assert lost > 0
    assert gaps[REEFER]["missing"] == lost
    assert gaps[REEFER]["gap_rate"] == pytest.approx(lost / (gaps[REEFER]["received"] + lost))
    assert gaps[LOGGER]["missing"] == 0
    # In the dropout, the truck has been silent beyond its 600 s; the cold-room logger has not.
    during = demo.at(scenario.DROPOUT[0] + 30 * 60_000)
    silent = run(demo, q.DQ_SILENT_DEVICES, during - timedelta(hours=1), during)
    assert [(r["device_id"], r["allowed_s"]) for r in silent] == [(REEFER, 600.0)]
    assert silent[0]["last_seen"] == demo.at(scenario.DROPOUT[0] - 60_000)
    assert silent[0]["silent_s"] == 31 * 60
    online = run(demo, q.FLEET_DEVICES_ONLINE, during - timedelta(hours=1), during)
    assert online == [{"online": 1, "offline": 1}]
    assert run(demo, q.ALERT_SILENT_DEVICES, during - timedelta(hours=1), during) == [
        {"device_id": REEFER, "silent_s_over": 31 * 60 - 600.0}
    ]
    after = demo.at(scenario.DROPOUT[1] + 10 * 60_000)
    assert run(demo, q.DQ_SILENT_DEVICES, after - timedelta(hours=1), after) == []
    # The buggy firmware's and the unregistered device's messages, by reason.
    letters = run(demo, q.DQ_DEAD_LETTERS_BY_REASON, t_from, t_to + timedelta(days=1))
    by_reason = {r["reason"]: r["dead_letters"] for r in letters}
    assert by_reason == demo.summary["dead_letter_reasons"]
    assert sum(by_reason.values()) == demo.summary["sent"]["malformed_sent"]
    assert set(by_reason) == {"malformed_json", "device_mismatch", "schema", "unknown_device"}


def test_truck_detail_lots_and_position(demo: Demo) -> None:
    t_from, t_to = _whole(demo)
    lots = run(demo, q.ASSET_LOTS, t_from, t_to, asset=[TRUCK])
    assert [(r["lot_id"], r["trace_path"]) for r in lots] == [(LOT, trace_url(LOT))]
    positions = {r["asset_id"]: r for r in run(demo, q.FLEET_POSITIONS, t_from, t_to)}
    # At the end the truck stands at the Nanning market (22.817, 108.366), a few metres off.
    assert positions[TRUCK]["latitude"] == pytest.approx(22.817, abs=0.01)
    assert positions[TRUCK]["longitude"] == pytest.approx(108.366, abs=0.01)
    temps = run(demo, q.ASSET_TEMPERATURE, t_from, t_to, asset=[TRUCK])
    assert {r["metric"] for r in temps} == {
        "Reefer truck Gui A-12345 truck-12345-rc/temp:1",
        "Reefer truck Gui A-12345 truck-12345-rc/temp:2",
    }
    verdicts = run(demo, q.ASSET_VERDICT_ANNOTATIONS, t_from, t_to, asset=[TRUCK])
    assert any(v["tags"] == "excursion" for v in verdicts)
    doors = [
        e for e in run(demo, q.ASSET_EVENT_ANNOTATIONS, t_from, t_to, asset=[TRUCK]) if e["tags"] == "door"
    ]
    assert [(d["time"], d["timeend"]) for d in doors] == [
        (demo.at(a), demo.at(b))
        for a, b in (scenario.LOADING_DOOR, scenario.EXCURSION_DOOR, scenario.UNLOADING_DOOR)
    ]


def test_every_panel_agrees_raw_and_rollup_on_the_demo(demo: Demo) -> None:
    t_from, t_to = _whole(demo)
    for name, text in q.PANELS.items():
        rollup = run(demo, text, t_from, t_to)
        raw = run(demo, q.PANELS_RAW[name], t_from, t_to)
        assert len(rollup) == len(raw), name
        for a, b in zip(rollup, raw, strict=True):
            for key, value in a.items():
                if isinstance(value, float):
                    assert value == pytest.approx(b[key], rel=1e-9), name
                else:
                    assert value == b[key], name

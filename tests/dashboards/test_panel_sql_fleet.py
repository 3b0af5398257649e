"""Tests, stage 4 (dashboards): every panel on a rollup-sized generated fleet (the bench's generator: 50
loggers over 30 days, a reading every 10 minutes), through the rollups and on the raw rows alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from web_support import module_database

from coldchain.bench.dashboards import RANGES, Fleet, build_fleet, plan
from dashboards import queries as q
from dashboards.rollups import refresh

Row = tuple[Any, ...]
FLEET = plan(50 * 30 * 144, 50, 30)  # 10-minute steps


@pytest.fixture(scope="module")
def fleet_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    with module_database(pg_server_url, template_db) as url:
        with psycopg.connect(url) as conn:
            build_fleet(conn, FLEET)
            conn.commit()
        refresh(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        yield url


def _rows(conn: psycopg.Connection[Row], text: str, t_from: datetime, t_to: datetime, **v: Any) -> list[Row]:
    expanded = q.expand(
        text, t_from=t_from, t_to=t_to, interval_ms=q.interval_ms(t_from, t_to), variables={**q.ALL, **v}
    )
    return conn.execute(expanded).fetchall()  # type: ignore[call-overload]  # expanded panel SQL


def _same(a: list[Row], b: list[Row]) -> bool:
    """Equal rows, floats to 1e-9 relative (sums taken in another order)."""
    return len(a) == len(b) and all(
        len(x) == len(y) and all(v == pytest.approx(w, rel=1e-9, abs=1e-9) for v, w in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


SCOPES: dict[str, dict[str, list[str] | None]] = {
    "all": {},
    "one asset": {"asset": ["FA0"]},
    "carrier, chilled": {"carrier": ["FC0", "FC2"], "product_class": ["chilled"]},
}


@pytest.mark.parametrize("scope", list(SCOPES), ids=list(SCOPES))
@pytest.mark.parametrize("span", list(RANGES), ids=list(RANGES))
def test_every_panel_agrees_raw_and_rollup(fleet_url: str, span: str, scope: str) -> None:
    t_from, t_to = FLEET.end - RANGES[span], FLEET.end
    with psycopg.connect(fleet_url, autocommit=True) as conn:
        for name, text in q.PANELS.items():
            rollup = _rows(conn, text, t_from, t_to, **SCOPES[scope])
            raw = _rows(conn, q.PANELS_RAW[name], t_from, t_to, **SCOPES[scope])
            assert _same(rollup, raw), name


def _fleet_counts(conn: psycopg.Connection[Row], fleet: Fleet, days: int) -> tuple[int, int]:
    """Non-null temperature readings over the last `days` days, and those out of range (each in its own
    minute: the readings are 10 minutes apart), counted from the raw rows."""
    row = conn.execute(
        "SELECT count(r.value), count(r.value) FILTER (WHERE r.value IN (8.0, -10.0))"
        " FROM reading r JOIN series s ON s.series_id = r.series_id"
        " WHERE s.channel = 'temp' AND r.time >= %s AND r.time < %s",
        (fleet.end - timedelta(days=days), fleet.end),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("span", list(RANGES), ids=list(RANGES))
def test_fleet_compliance_is_the_readings(fleet_url: str, span: str) -> None:
    """Monitored time is 60 s a reading (one a minute at most), out of range the excursions' readings."""
    t_from, t_to = FLEET.end - RANGES[span], FLEET.end
    with psycopg.connect(fleet_url, autocommit=True) as conn:
        readings, out = _fleet_counts(conn, FLEET, RANGES[span].days)
        rows = _rows(conn, q.COMPLIANCE_BY_CARRIER, t_from, t_to)
        top = _rows(conn, q.TOP_EXCURSION_ASSETS, t_from, t_to)
        online = _rows(conn, q.FLEET_DEVICES_ONLINE, t_from, t_to)
    assert 0 <= out < readings
    assert out > 0 or span == "24h"  # an excursion every five days or so per logger
    assert sum(r[1] for r in rows) == readings * 60
    assert sum(r[1] - r[2] for r in rows) == out * 60
    assert len(top) == (10 if out else 0)
    # Every logger's latest reading is one step (600 s) before the end: within the 600 s transport and
    # 1800 s storage allowances.
    assert online == [(50, 0)]

"""Tests, stage 4 (dashboards): the views the dashboards' migrations create, on seeded data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

# --------------------------------------------------------------------------------------------------
# The views of dashboards/migrations on seeded data


@dataclass(frozen=True)
class Times:
    """The seeded data's times, derived from the server's `now()` of the test's one transaction.

    PostgreSQL's `now()` is the transaction's start, so the panels and views that read it (the last
    hour's readings, the recent excursions) see the same instant as the data was derived from, however
    long the suite ran before and whichever minute or hour boundary falls in between."""

    server_now: datetime

    @property
    def now(self) -> datetime:
        """The range's end: the server's now() to the minute (Grafana sends whole seconds)."""
        return self.server_now.astimezone(UTC).replace(second=0, microsecond=0)

    @property
    def t0(self) -> datetime:
        """An hour boundary, so 5-minute buckets are predictable."""
        return self.now.replace(minute=0) - timedelta(hours=3)

    def m(self, minutes: float) -> datetime:
        return self.t0 + timedelta(minutes=minutes)

    @property
    def recent(self) -> datetime:
        """The only reading in the last hour."""
        return self.now - timedelta(minutes=10)

    @property
    def day_ago(self) -> datetime:
        return self.t0 - timedelta(days=1)


LOT = "urn:epc:class:lgtin:6901234.012345.TEST1"
ALL_ASSETS = ["A1", "A2", "A3"]


def _seed(conn: psycopg.Connection[tuple[Any, ...]], t: Times) -> None:
    conn.execute("INSERT INTO party (party_id, name, role) VALUES ('P1', 'Carrier One', 'carrier')")
    conn.execute(
        "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source)"
        " VALUES ('chilled', 'cn_food', '1', 'chilled', 0, 4, 'GB 31605-2020'),"
        " ('frozen', 'cn_food', '1', 'frozen', NULL, -18, 'GB/T 24616-2019')"
    )
    conn.execute(
        "INSERT INTO asset (asset_id, kind, name, operator_party_id, product_class, mode) VALUES"
        " ('A1', 'cold_room', 'Cold room one', NULL, 'chilled', 'storage'),"
        " ('A2', 'reefer_truck', 'Truck two', 'P1', 'chilled', 'transport'),"
        " ('A3', 'passive_box', 'Frozen box', NULL, 'frozen', 'transport')"
    )
    conn.execute(
        "INSERT INTO device (device_id, kind) VALUES ('d1', 'temp_logger'), ('d2', 'reefer_controller')"
    )
    # d1 sits on A1, then moves to A2 at T0+60 min; d2 is on A2 throughout.
    conn.execute(
        "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to) VALUES"
        " ('d1', 'A1', %(long_ago)s, %(move)s), ('d1', 'A2', %(move)s, NULL),"
        " ('d2', 'A2', %(long_ago)s, NULL)",
        {"long_ago": t.t0 - timedelta(days=2), "move": t.m(60)},
    )
    sid = {}
    for device, channel in [("d1", "temp"), ("d1", "rh"), ("d2", "temp:1")]:
        row = conn.execute(
            "INSERT INTO series (device_id, channel) VALUES (%s, %s) RETURNING series_id", (device, channel)
        ).fetchone()
        assert row is not None
        sid[device, channel] = row[0]
    readings = [
        (("d1", "temp"), t.m(10), 2.0),
        (("d1", "rh"), t.m(10), 80.0),  # not a temperature channel
        (("d1", "temp"), t.m(70), 3.0),  # after the move: A2's
        (("d2", "temp:1"), t.m(-120), 9.9),  # before the time range
        (("d2", "temp:1"), t.m(10), 5.5),
        (("d2", "temp:1"), t.m(11), 6.5),
        (("d2", "temp:1"), t.m(12), None),  # dropout
        (("d2", "temp:1"), t.recent, 1.5),
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)",
            [(t, sid[key], v, t) for key, t, v in readings],
        )
        cur.executemany(
            "INSERT INTO dead_letter (received_at, topic, payload, reason) VALUES (%s, %s, %s, %s)",
            [
                (t.m(5), "cc/v1/dev/d2/telemetry", b"{", "malformed_json"),
                (t.m(6), "cc/v1/dev/x/telemetry", b"{}", "unknown_device"),
                (t.m(-120), "cc/v1/dev/d2/telemetry", b"[]", "schema"),
            ],
        )
        cur.executemany(
            "INSERT INTO excursion (series_id, asset_id, product_class, rule_id, pack_version, start_time,"
            " end_time, open, peak_c, limit_low_c, limit_high_c, readings) VALUES"
            " (%s, %s, 'chilled', 'cn_food/chilled/range', '1', %s, %s, %s, %s, 0, 4, %s)",
            [
                (sid["d2", "temp:1"], "A2", t.m(10), t.m(25), False, 6.5, 16),
                (
                    sid["d1", "temp"],
                    "A1",
                    t.t0 - timedelta(days=1),
                    t.t0 - timedelta(days=1, minutes=-30),
                    True,
                    7.0,
                    31,
                ),
                (sid["d2", "temp:1"], "A2", t.m(-2880), t.m(-2870), False, 8.0, 11),  # two days before
            ],
        )
    conn.execute(
        "INSERT INTO lot (lot_id, product_class, description) VALUES (%s, 'chilled', 'test shrimp')", (LOT,)
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO chain_break (kind, series_id, asset_id, lot_id, rule_id, pack_version, start_time,"
            " end_time, allowed_s) VALUES (%s, %s, %s, %s, %s, '1', %s, %s, %s)",
            [
                (
                    "gap",
                    sid["d2", "temp:1"],
                    "A2",
                    None,
                    "cn_food/transport/max_gap",
                    t.m(130),
                    t.m(170),
                    600.0,
                ),
                ("handoff", None, None, LOT, "cn_food/handoff", t.m(100), t.m(115), 300.0),
                (
                    "gap",
                    sid["d1", "temp"],
                    "A1",
                    None,
                    "cn_food/storage/max_gap",
                    t.m(-600),
                    t.m(-500),
                    1800.0,
                ),
            ],
        )


@dataclass(frozen=True)
class Seeded:
    conn: psycopg.Connection[tuple[Any, ...]]
    t: Times


@pytest.fixture
def seeded(db_url: str) -> Iterator[Seeded]:
    """The seeded database, in one open transaction: its first statement reads the server's now(), which
    every later query of the test sees unchanged; the data's times are derived from it."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        t = Times(row[0])
        _seed(conn, t)
        yield Seeded(conn, t)
        conn.rollback()


def test_open_excursions_view(seeded: Seeded) -> None:
    rows = seeded.conn.execute("SELECT asset_id, open FROM v_open_excursions ORDER BY start_time").fetchall()
    assert rows == [("A1", True), ("A2", False)]  # the one closed two days ago is not "recent"

"""Tests, stage 4 (dashboards): every panel, variable and alert query of dashboards/queries.py, expanded as
Grafana expands it, on the real schema: a small seeded fleet whose answers are known, for 24 h, 7-day and
90-day ranges, with the variables at All and set; the raw path always equal to the rollup path."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from web_support import module_database

from dashboards import queries as q
from dashboards.rollups import refresh
from traceability.web.paths import trace_url

Row = tuple[Any, ...]

# The range end: not on an hour, so the exact-range pieces (minutes, hours, days) all take part.
TO = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "90d": timedelta(days=90)}
LOT1 = "urn:epc:class:lgtin:6901234.012345.L1"
LOT2 = "urn:epc:class:lgtin:6901234.012345.L2"
SSCC = "urn:epc:id:sscc:6901234.0000000007"
TRUCK_EPC = "urn:epc:id:giai:6901234.TRUCK2"


def at(minutes: float) -> datetime:
    """TO plus `minutes` (negative: before)."""
    return TO + timedelta(minutes=minutes)


# --------------------------------------------------------------------------------------------------
# The seeded fleet
#
# A1 "Cold room one": storage, chilled (0..4 °C, 1800 s allowed), at "Site one", run by a cold store.
#     d1: temp every minute over the 48 h before TO (2.0 °C), one excursion of 30 minutes at 6.0 °C
#     starting 10 h before TO; rh every hour. A gap break 20 h before TO. Alarms al3 (acknowledged,
#     unresolved) and al4 (resolved 30 h before TO).
# A2 "Truck two": transport, chilled (600 s allowed), carrier "Carrier One", carried lot L1.
#     d2: temp:1, door and setpoint every minute from 6 h to 1 h before TO (3.0 °C; 8.0 °C for the 10
#     minutes of its excursion 3 h before TO, the door open then); 30 of its temp readings flagged
#     skewed; one position and one battery reading (15 %) an hour before TO, then silence: offline.
#     Alarm al1 (acknowledged after 600 s, resolved after 1800 s). Door and power events.
# A3 "Frozen box": transport, frozen (≤ -18 °C), no carrier, no site.
#     d3: temp every 10 minutes over the 30 h before TO (-20 °C), received 100 s late; an open excursion
#     since 20 minutes before TO (-10 °C). Alarm al2 (open).
# d4: a reader mounted nowhere, with a sequence gap.


def _seed(conn: psycopg.Connection[Row]) -> None:
    ex = conn.execute
    ex(
        "INSERT INTO party (party_id, name, role) VALUES ('P1', 'Carrier One', 'carrier'),"
        " ('P2', 'Store Co', 'cold_store')"
    )
    ex(
        "INSERT INTO location (location_id, name, kind, lat, lon)"
        " VALUES ('S1', 'Site one', 'cold_store', 21.7, 108.6)"
    )
    ex(
        "INSERT INTO rule_class (product_class, pack_id, pack_version, description, low_c, high_c, source,"
        " storage_max_gap_s, transport_max_gap_s) VALUES"
        " ('chilled', 'cn_food', '1', 'Chilled', 0, 4, 'GB 31605-2020', 1800, 600),"
        " ('frozen', 'cn_food', '1', 'Frozen', NULL, -18, 'GB/T 24616-2019', 1800, 600)"
    )
    ex(
        "INSERT INTO asset (asset_id, epc, kind, name, operator_party_id, location_id, product_class, mode)"
        " VALUES ('A1', NULL, 'cold_room', 'Cold room one', 'P2', 'S1', 'chilled', 'storage'),"
        " ('A2', %s, 'reefer_truck', 'Truck two', 'P1', NULL, 'chilled', 'transport'),"
        " ('A3', NULL, 'passive_box', 'Frozen box', NULL, NULL, 'frozen', 'transport')",
        (TRUCK_EPC,),
    )
    # d1's calibration was due 3 days before TO; d2's is due on TO's day (still covered); d3 states none.
    ex(
        "INSERT INTO device (device_id, kind, calibration_due) VALUES ('d1', 'temp_logger', '2026-02-27'),"
        " ('d2', 'reefer_controller', '2026-03-02'), ('d3', 'temp_logger', NULL), ('d4', 'rfid_reader', NULL)"
    )
    ex(
        "INSERT INTO device_mount (device_id, asset_id, valid_from) VALUES"
        " ('d1', 'A1', %(t)s), ('d2', 'A2', %(t)s), ('d3', 'A3', %(t)s)",
        {"t": at(-200 * 24 * 60)},
    )
    sid: dict[tuple[str, str], int] = {}
    for key in [("d1", "temp"), ("d1", "rh"), ("d2", "temp:1"), ("d2", "door"), ("d2", "setpoint"),
                ("d2", "lat"), ("d2", "lon"), ("d2", "battery"), ("d3", "temp")]:  # fmt: skip
        row = ex(
            "INSERT INTO series (device_id, channel) VALUES (%s, %s) RETURNING series_id", key
        ).fetchone()
        assert row is not None
        sid[key] = row[0]
    gen = """
        INSERT INTO reading (time, series_id, value, received_at, flags)
        SELECT %(to)s - k * %(step)s::interval, %(sid)s, %(value)s,
               %(to)s - k * %(step)s::interval + %(lag)s::interval,
               CASE WHEN k <= %(skewed)s THEN 1 ELSE 0 END
        FROM generate_series(%(k0)s::int, %(k1)s::int) k"""

    def series(key: tuple[str, str], k0: int, k1: int, value: float, *, step: str = "1 minute",
               lag: str = "2 seconds", skewed: int = 0) -> None:  # fmt: skip
        p = {"to": TO, "step": step, "sid": sid[key], "value": value, "lag": lag, "skewed": skewed}
        ex(gen, {**p, "k0": k0, "k1": k1})

    series(("d1", "temp"), 1, 2880, 2.0)
    ex("UPDATE reading SET value = 6.0 WHERE series_id = %s AND time >= %s AND time < %s",
       (sid["d1", "temp"], at(-600), at(-570)))  # fmt: skip
    series(("d1", "rh"), 1, 48, 80.0, step="1 hour")
    # d2: minutes 61..360 before TO; the 30 latest temp readings are the skewed ones.
    series(("d2", "temp:1"), 61, 360, 3.0, skewed=90)
    series(("d2", "door"), 61, 360, 0.0)
    series(("d2", "setpoint"), 61, 360, 2.0)
    for key in (("d2", "temp:1"), ("d2", "door")):
        value = 8.0 if key[1] == "temp:1" else 1.0
        ex("UPDATE reading SET value = %s WHERE series_id = %s AND time >= %s AND time < %s",
           (value, sid[key], at(-180), at(-170)))  # fmt: skip
    series(("d2", "lat"), 60, 60, 22.0)
    series(("d2", "lon"), 60, 60, 108.0)
    series(("d2", "battery"), 120, 120, 15.0)
    series(("d3", "temp"), 1, 180, -20.0, step="10 minutes", lag="100 seconds")
    ex("UPDATE reading SET value = -10.0 WHERE series_id = %s AND time >= %s", (sid["d3", "temp"], at(-20)))
    exc = (
        "INSERT INTO excursion (series_id, asset_id, product_class, rule_id, pack_version, start_time,"
        " end_time, open, peak_c, limit_low_c, limit_high_c, readings)"
        " VALUES (%s, %s, %s, %s, '1', %s, %s, %s, %s, %s, %s, %s)"
    )
    ex(
        exc,
        (
            sid["d1", "temp"],
            "A1",
            "chilled",
            "cn_food/chilled/range",
            at(-600),
            at(-571),
            False,
            6.0,
            0,
            4,
            30,
        ),
    )
    ex(
        exc,
        (
            sid["d2", "temp:1"],
            "A2",
            "chilled",
            "cn_food/chilled/range",
            at(-180),
            at(-171),
            False,
            8.0,
            0,
            4,
            10,
        ),
    )
    ex(
        exc,
        (
            sid["d3", "temp"],
            "A3",
            "frozen",
            "cn_food/frozen/range",
            at(-20),
            at(-10),
            True,
            -10.0,
            None,
            -18,
            2,
        ),
    )
    ex(
        "INSERT INTO chain_break (kind, series_id, asset_id, rule_id, pack_version, start_time, end_time,"
        " allowed_s)"
        " VALUES ('gap', %s, 'A1', 'cn_food/storage/max_gap', '1', %s, %s, 1800)",
        (sid["d1", "temp"], at(-1200), at(-1140)),
    )
    alarm = (
        "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start, opened_at,"
        " acknowledged_at, acknowledged_by, resolved_at) VALUES (%s, %s, %s, %s, %s, 'r', %s, %s, %s, %s, %s)"
    )
    ex(
        alarm,
        (
            "A2",
            "x/range",
            "excursion",
            "critical",
            "resolved",
            at(-180),
            at(-180),
            at(-170),
            "alice",
            at(-150),
        ),
    )
    ex(alarm, ("A3", "x/range", "excursion", "warning", "open", at(-20), at(-15), None, None, None))
    ex(
        alarm,
        ("A1", "x/range", "excursion", "critical", "acknowledged", at(-600), at(-600), at(-540), "bob", None),
    )
    ex(alarm, ("A1", "x/gap", "gap", "info", "resolved", at(-1800), at(-1800), None, None, at(-1740)))
    dead = "INSERT INTO dead_letter (received_at, topic, payload, reason) VALUES (%s, 't', '\\x00', %s)"
    for t, reason in [(at(-60), "malformed_json"), (at(-61), "malformed_json"), (at(-120), "unknown_device"),
                      (at(-3 * 24 * 60), "schema")]:  # fmt: skip
        ex(dead, (t, reason))
    ex(
        "INSERT INTO device_seq (device_id, boot, next_seq, received, skipped) VALUES"
        " ('d1', 1, 500, 500, 0), ('d2', 1, 1000, 950, 0), ('d2', 2, 100, 100, 0), ('d4', 7, 10, 8, 0)"
    )
    ex(
        "INSERT INTO device_event (time, device_id, kind, value, received_at) VALUES"
        " (%(a)s, 'd2', 'door', '{\"state\": \"open\"}', %(a)s),"
        " (%(b)s, 'd2', 'door', '{\"state\": \"closed\"}', %(b)s),"
        " (%(c)s, 'd2', 'power', '{\"state\": \"off\"}', %(c)s),"
        " (%(d)s, 'd2', 'power', '{\"state\": \"on\"}', %(d)s)",
        {"a": at(-180), "b": at(-170), "c": at(-240), "d": at(-235)},
    )
    ex(
        "INSERT INTO lot (lot_id, product_class, description) VALUES (%s, 'chilled', 'Shrimp one'),"
        " (%s, 'frozen', 'Fish two')",
        (LOT1, LOT2),
    )
    history = (
        "INSERT INTO verdict_history (subject_kind, subject_id, version, verdict, product_class, pack_id,"
        " pack_version, items, reasons, arrived, change, computed_at)"
        " VALUES ('lot', %s, %s, %s, 'chilled', 'cn_food', '1', %s, '[]', '{}', '{}', %s)"
    )
    items = '[{"kind": "gap", "start": "%s", "end": "%s"}]'
    ex(history, (LOT1, 1, "pass", "[]", at(-1500)))
    ex(history, (LOT1, 2, "broken", items % (at(-1200).isoformat(), at(-1140).isoformat()), at(-1100)))
    ex(history, (LOT1, 3, "broken", items % (at(-1300).isoformat(), at(-1140).isoformat()), at(-1000)))
    ex(
        history,
        (LOT2, 1, "broken", items % (at(-8 * 1440).isoformat(), at(-8 * 1440 + 5).isoformat()), at(0)),
    )
    # The ledger's derived custody of L1 (in SSCC, on the truck): written directly, without the ledger
    # events whose sequence numbers the derived tables' triggers check.
    ex("SET LOCAL session_replication_role = replica")
    ex(
        "INSERT INTO containment (child_id, parent_id, t0, t1, start_seq) VALUES (%s, %s, %s, NULL, 1)",
        (LOT1, SSCC, at(-2000)),
    )
    ex(
        "INSERT INTO custody_leg (epc, custodian, asset_id, t_start, t_end, start_seq) VALUES"
        " (%s, 'P1', 'A2', %s, %s, 2)",
        (SSCC, at(-400), at(-50)),
    )


@dataclass(frozen=True)
class Fleet:
    url: str
    conn: psycopg.Connection[Row]


@pytest.fixture(scope="module")
def fleet(pg_server_url: str, template_db: str) -> Iterator[Fleet]:
    """The seeded fleet in a database of the module's own, rollups refreshed; read-only for the tests."""
    with module_database(pg_server_url, template_db) as url:
        with psycopg.connect(url) as conn:
            _seed(conn)
            conn.commit()
        refresh(url)
        with psycopg.connect(url, autocommit=True) as conn:
            yield Fleet(url, conn)


def _norm(value: Any) -> Any:
    return round(value, 9) if isinstance(value, float) else value


def run(
    fleet: Fleet,
    name: str,
    span: timedelta = RANGES["24h"],
    *,
    raw: bool = False,
    interval_ms: int | None = None,
    t_to: datetime = TO,
    **variables: list[str] | None,
) -> list[dict[str, Any]]:
    """A panel (or variable or alert query) expanded as Grafana would for [t_to - span, t_to], its
    interval Grafana's for the span unless given; rows as dicts, floats rounded to 1e-9."""
    source = q.PANELS_RAW if raw else q.PANELS
    text = source.get(name) or q.ALERTS.get(name) or q.VARIABLE_QUERIES[name]
    t_from = t_to - span
    ms = interval_ms or q.interval_ms(t_from, t_to)
    expanded = q.expand(text, t_from=t_from, t_to=t_to, interval_ms=ms, variables={**q.ALL, **variables})
    with fleet.conn.cursor() as cur:
        cur.execute(expanded)  # type: ignore[call-overload]  # expanded panel SQL, as Grafana sends it
        assert cur.description is not None
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, (_norm(v) for v in r), strict=True)) for r in cur.fetchall()]


# Output columns of every panel, as the contract names them.
COLUMNS = {
    "FLEET_POSITIONS": ["asset_id", "asset_name", "latitude", "longitude", "state", "last_seen"],
    "FLEET_DEVICES_ONLINE": ["online", "offline"],
    "FLEET_LOW_BATTERY": ["device_id", "asset_name", "battery_pct", "time"],
    "FLEET_OPEN_ALARMS": ["open_alarms"],
    "FLEET_READINGS_PER_MINUTE": ["time", "readings_per_minute"],
    "ASSET_TEMPERATURE": ["time", "metric", "temp_c"],
    "ASSET_LIMITS": ["asset_name", "low_c", "high_c"],
    "ASSET_HUMIDITY": ["time", "metric", "rh_pct"],
    "ASSET_SETPOINT": ["time", "metric", "setpoint_c"],
    "ASSET_EVENT_ANNOTATIONS": ["time", "timeend", "text", "tags"],
    "ASSET_VERDICT_ANNOTATIONS": ["time", "timeend", "text", "tags"],
    "ASSET_RECEIVE_LAG": ["time", "lag_p95_s", "lag_max_s"],
    "ASSET_LOTS": ["lot_id", "description", "first_seen", "last_seen", "trace_path"],
    "ALARMS_OPEN": [
        "alarm_id",
        "severity",
        "age_s",
        "state",
        "acknowledged_by",
        "asset_name",
        "product_class",
        "kind",
        "reason",
        "opened_at",
    ],
    "ALARMS_OVER_TIME": ["time", "severity", "alarms"],
    "ALARMS_RESPONSE": ["carrier", "alarms", "ack_p50_s", "ack_p95_s", "resolve_p50_s", "resolve_p95_s"],
    "COMPLIANCE_BY_CLASS": ["group_name", "monitored_s", "in_range_s", "rate"],
    "COMPLIANCE_BY_CARRIER": ["group_name", "monitored_s", "in_range_s", "rate"],
    "COMPLIANCE_BY_SITE": ["group_name", "monitored_s", "in_range_s", "rate"],
    "COMPLIANCE_OVER_TIME": ["time", "metric", "rate"],
    "LOTS_BROKEN_PER_WEEK": ["time", "lots_broken"],
    "TOP_EXCURSION_ASSETS": ["asset_name", "excursions", "excursion_minutes"],
    "DQ_SEQ_GAP_RATE": ["device_id", "received", "missing", "gap_rate"],
    "DQ_DEAD_LETTERS_BY_REASON": ["reason", "dead_letters"],
    "DQ_RECEIVE_LAG_P95": ["time", "lag_p95_s"],
    "DQ_SILENT_DEVICES": ["device_id", "asset_name", "last_seen", "silent_s", "allowed_s"],
    "DQ_CLOCK_SKEW": ["device_id", "readings", "skewed", "skewed_share"],
    "DQ_CALIBRATION_OVERDUE": ["device_id", "asset_name", "calibration_due", "days_overdue"],
    "DQ_CARRIER_CONFORMANCE": [
        "carrier",
        "messages",
        "accepted",
        "conformance",
        "readings",
        "missing",
        "seq_loss",
    ],
}
SCOPES: dict[str, dict[str, list[str] | None]] = {
    "all": {},
    "truck": {"asset": ["A2"]},
    "carrier": {"carrier": ["P1"]},
    "chilled-at-site": {"product_class": ["chilled"], "site": ["S1"]},
    "kinds": {"asset_kind": ["passive_box", "reefer_truck"]},
    "none": {"asset": ["nothing'here"]},
}


def test_panels_are_the_contracts() -> None:
    assert set(q.PANELS) == set(COLUMNS) == set(q.PANELS_RAW)
    for name in q.PANELS:
        assert getattr(q, name) == q.PANELS[name]
    assert set(q.VARIABLE_QUERIES) == set(q.VARIABLES)


@pytest.mark.parametrize("span", list(RANGES), ids=list(RANGES))
@pytest.mark.parametrize("scope", list(SCOPES), ids=list(SCOPES))
def test_every_panel_runs_and_raw_equals_rollup(fleet: Fleet, span: str, scope: str) -> None:
    """Each panel, for each range and scope: its columns, and the same rows through the raw rows as
    through the rollups (the seeded times are on whole minutes: no edge can differ)."""
    for name, cols in COLUMNS.items():
        rows = run(fleet, name, RANGES[span], **SCOPES[scope])
        if rows:
            assert list(rows[0]) == cols, name
        assert rows == run(fleet, name, RANGES[span], raw=True, **SCOPES[scope]), name
        if scope == "none":
            empty_ok = {"FLEET_DEVICES_ONLINE", "FLEET_OPEN_ALARMS", "FLEET_READINGS_PER_MINUTE",
                        "DQ_DEAD_LETTERS_BY_REASON", "DQ_RECEIVE_LAG_P95"}  # fmt: skip
            assert name in empty_ok or rows == [], name


# --- compliance --------------------------------------------------------------------------------------


def _rate(monitored_min: int, out_min: int) -> dict[str, float]:
    return {"monitored_s": monitored_min * 60.0, "in_range_s": (monitored_min - out_min) * 60.0,
            "rate": round((monitored_min - out_min) / monitored_min, 9)}  # fmt: skip


@pytest.mark.parametrize("span", list(RANGES), ids=list(RANGES))
def test_compliance_rate_per_class_carrier_and_site(fleet: Fleet, span: str) -> None:
    # Monitored minutes and minutes in an excursion: A1 1440 (24 h) or 2880, 30 out; A2 300, 10 out;
    # A3 144 (24 h) or 180, 2 out (its open excursion's readings 20 and 10 minutes before TO).
    a1 = 1440 if span == "24h" else 2880
    a3 = 144 if span == "24h" else 180
    by = lambda name, **v: {r.pop("group_name"): r for r in run(fleet, name, RANGES[span], **v)}  # noqa: E731
    assert by("COMPLIANCE_BY_CLASS") == {"chilled": _rate(a1 + 300, 40), "frozen": _rate(a3, 2)}
    assert by("COMPLIANCE_BY_CARRIER") == {"Carrier One": _rate(300, 10), "(no carrier)": _rate(a1 + a3, 32)}
    assert by("COMPLIANCE_BY_SITE") == {"Site one": _rate(a1, 30), "(no site)": _rate(300 + a3, 12)}
    assert by("COMPLIANCE_BY_CLASS", asset=["A2"]) == {"chilled": _rate(300, 10)}
    assert by("COMPLIANCE_BY_SITE", product_class=["frozen"]) == {"(no site)": _rate(a3, 2)}
    top = run(fleet, "TOP_EXCURSION_ASSETS", RANGES[span])
    assert top == [
        {"asset_name": "Cold room one", "excursions": 1, "excursion_minutes": 30},
        {"asset_name": "Truck two", "excursions": 1, "excursion_minutes": 10},
        {"asset_name": "Frozen box", "excursions": 1, "excursion_minutes": 2},
    ]


def test_compliance_range_edges_to_the_minute(fleet: Fleet) -> None:
    """A range ending inside A1's excursion, starting mid-hour: the pieces add up to the minute."""
    rows = run(fleet, "COMPLIANCE_BY_SITE", timedelta(hours=2, minutes=17), t_to=at(-585), site=["S1"])
    # [TO-722 min, TO-585 min): 137 minutes of readings, 15 of them (TO-600 .. TO-586) out of range.
    assert rows == [{"group_name": "Site one", **_rate(137, 15)}]


def test_compliance_over_time(fleet: Fleet) -> None:
    rows = run(fleet, "COMPLIANCE_OVER_TIME", RANGES["24h"], interval_ms=3_600_000, asset=["A2"])
    by_hour = {r["time"]: r["rate"] for r in rows}
    assert len(by_hour) == 6
    assert {r["metric"] for r in rows} == {"chilled"}
    # The excursion's 10 minutes fall in the hour from TO-210 min (09:00 UTC).
    assert by_hour[at(-210)] == round(50 / 60, 9)
    assert [v for k, v in by_hour.items() if k != at(-210)] == [1.0] * 5


# --- fleet ---------------------------------------------------------------------------------------------


def test_positions_and_states(fleet: Fleet) -> None:
    rows = run(fleet, "FLEET_POSITIONS")
    assert [(r["asset_id"], r["latitude"], r["longitude"], r["state"], r["last_seen"]) for r in rows] == [
        ("A1", 21.7, 108.6, "broken", at(-1)),  # the gap break 20 h before TO; online; site's position
        ("A3", None, None, "excursion", at(-10)),  # open excursion; no position known
        ("A2", 22.0, 108.0, "offline", at(-60)),  # silent an hour; its GPS position
    ]
    # A range after the break: the cold room is in range.
    rows = run(fleet, "FLEET_POSITIONS", timedelta(hours=1), asset=["A1"])
    assert rows[0]["state"] == "in_range"
    # At 3 h before TO the truck was in its excursion and online.
    rows = run(fleet, "FLEET_POSITIONS", timedelta(hours=1), t_to=at(-175), asset=["A2"])
    assert (rows[0]["state"], rows[0]["last_seen"]) == ("excursion", at(-175))


def test_devices_online_silent_and_low_battery(fleet: Fleet) -> None:
    # d3's latest reading is exactly its 600 s allowance old: still online.
    assert run(fleet, "FLEET_DEVICES_ONLINE") == [{"online": 2, "offline": 1}]
    assert run(fleet, "FLEET_DEVICES_ONLINE", carrier=["P1"]) == [{"online": 0, "offline": 1}]
    assert run(fleet, "FLEET_DEVICES_ONLINE", t_to=at(-61)) == [{"online": 3, "offline": 0}]
    silent = {"device_id": "d2", "asset_name": "Truck two", "last_seen": at(-60), "silent_s": 3600.0,
              "allowed_s": 600.0}  # fmt: skip
    assert run(fleet, "DQ_SILENT_DEVICES") == [silent]
    assert run(fleet, "DQ_SILENT_DEVICES", t_to=at(1)) == [
        silent | {"silent_s": 3660.0},
        {
            "device_id": "d3",
            "asset_name": "Frozen box",
            "last_seen": at(-10),
            "silent_s": 660.0,
            "allowed_s": 600.0,
        },
    ]
    assert run(fleet, "ALERT_SILENT_DEVICES") == [{"device_id": "d2", "silent_s_over": 3000.0}]
    assert run(fleet, "FLEET_LOW_BATTERY") == [
        {"device_id": "d2", "asset_name": "Truck two", "battery_pct": 15.0, "time": at(-120)}
    ]
    assert run(fleet, "FLEET_LOW_BATTERY", timedelta(minutes=90)) == []  # not in the range


def test_devices_past_their_calibration_date(fleet: Fleet) -> None:
    d1 = {"device_id": "d1", "asset_name": "Cold room one", "calibration_due": date(2026, 2, 27)}
    assert run(fleet, "DQ_CALIBRATION_OVERDUE") == [d1 | {"days_overdue": 3}]
    # Past due from 00:00 UTC of the day after the due date, as the rules stage judges the readings.
    day_after = datetime(2026, 2, 28, tzinfo=UTC)
    assert run(fleet, "DQ_CALIBRATION_OVERDUE", t_to=day_after - timedelta(microseconds=1)) == []
    assert run(fleet, "DQ_CALIBRATION_OVERDUE", t_to=day_after) == [d1 | {"days_overdue": 1}]
    later = datetime(2026, 3, 3, tzinfo=UTC)
    d2 = {
        "device_id": "d2",
        "asset_name": "Truck two",
        "calibration_due": date(2026, 3, 2),
        "days_overdue": 1,
    }
    assert run(fleet, "DQ_CALIBRATION_OVERDUE", t_to=later) == [d1 | {"days_overdue": 4}, d2]
    assert run(fleet, "DQ_CALIBRATION_OVERDUE", t_to=later, asset=["A2"]) == [d2]


def test_readings_per_minute(fleet: Fleet) -> None:
    rows = run(fleet, "FLEET_READINGS_PER_MINUTE", RANGES["24h"], interval_ms=3_600_000)
    # The hour from TO-90 min: d1 60 temp + 1 rh, d2 30 minutes of 3 channels + lat, lon, d3 6.
    hour = {r["time"]: r["readings_per_minute"] for r in rows}
    assert hour[at(-90)] == round((60 + 1 + 30 * 3 + 2 + 6) / 60, 9)
    # d3 alone: 6 readings an hour; 3 in the last, which the range's end cuts (the first counts whole: an hour
    # bucket of the rollup overlapping the range's start is read whole).
    a3 = run(fleet, "FLEET_READINGS_PER_MINUTE", RANGES["24h"], interval_ms=3_600_000, asset=["A3"])
    assert [r["time"] for r in a3] == [r["time"] for r in rows]
    assert [r["readings_per_minute"] for r in a3] == [0.1] * 24 + [0.05]


# --- asset detail ----------------------------------------------------------------------------------


def test_asset_temperature_humidity_setpoint_and_limits(fleet: Fleet) -> None:
    rows = run(fleet, "ASSET_TEMPERATURE", RANGES["24h"], interval_ms=3_600_000, asset=["A2"])
    assert {r["metric"] for r in rows} == {"Truck two d2/temp:1"}
    temp = {r["time"]: r["temp_c"] for r in rows}
    assert temp[at(-210)] == round((50 * 3.0 + 10 * 8.0) / 60, 9)
    assert temp[at(-330)] == 3.0  # the first hour: 30 readings (from 06:30 UTC)
    assert run(fleet, "ASSET_HUMIDITY", RANGES["24h"], asset=["A1"])[0]["metric"] == "Cold room one d1/rh"
    assert len(run(fleet, "ASSET_HUMIDITY", RANGES["24h"], asset=["A1"])) == 24
    setpoints = run(fleet, "ASSET_SETPOINT", RANGES["24h"], interval_ms=3_600_000)
    assert {r["setpoint_c"] for r in setpoints} == {2.0}
    assert len(setpoints) == 6
    assert run(fleet, "ASSET_LIMITS") == [
        {"asset_name": "Cold room one", "low_c": 0.0, "high_c": 4.0},
        {"asset_name": "Frozen box", "low_c": None, "high_c": -18.0},
        {"asset_name": "Truck two", "low_c": 0.0, "high_c": 4.0},
    ]


def test_annotations(fleet: Fleet) -> None:
    events = run(fleet, "ASSET_EVENT_ANNOTATIONS", RANGES["24h"], asset=["A2"])
    assert [(e["time"], e["timeend"], e["tags"]) for e in events] == [
        (at(-240), at(-235), "power"),
        (at(-180), at(-170), "door"),  # the door event
        (at(-180), at(-170), "door"),  # the door channel: ten 1-minute buckets at 1
    ]
    assert events[1]["text"] == "Truck two: door open (d2)"
    verdicts = run(fleet, "ASSET_VERDICT_ANNOTATIONS", RANGES["24h"], asset_kind=["cold_room"])
    assert [(v["time"], v["timeend"], v["tags"]) for v in verdicts] == [
        (at(-1200), at(-1140), "break,gap"),
        (at(-600), at(-571), "excursion"),
    ]
    assert "peak 6 °C" in verdicts[1]["text"]


def test_receive_lag_and_clock_skew(fleet: Fleet) -> None:
    lag = run(fleet, "ASSET_RECEIVE_LAG", RANGES["24h"], interval_ms=3_600_000, asset=["A3"])
    assert {(r["lag_p95_s"], r["lag_max_s"]) for r in lag} == {(300.0, 100.0)}
    fleet_lag = run(fleet, "DQ_RECEIVE_LAG_P95", RANGES["24h"], interval_ms=3_600_000)
    # Hours where d3's 6 late readings are under 5 % of all: 5 s; where d1 alone is joined by d3: 300 s.
    assert {r["lag_p95_s"] for r in fleet_lag} == {5.0, 300.0}
    skew = run(fleet, "DQ_CLOCK_SKEW", RANGES["7d"])
    assert skew == [
        {"device_id": "d2", "readings": 903, "skewed": 30, "skewed_share": round(30 / 903, 9)},
        {"device_id": "d1", "readings": 2928, "skewed": 0, "skewed_share": 0.0},
        {"device_id": "d3", "readings": 180, "skewed": 0, "skewed_share": 0.0},
    ]


def test_asset_lots_link_the_trace_page(fleet: Fleet) -> None:
    rows = run(fleet, "ASSET_LOTS", asset=["A2"])
    assert rows == [
        {
            "lot_id": LOT1,
            "description": "Shrimp one",
            "first_seen": at(-400),
            "last_seen": at(-50),
            "trace_path": trace_url(LOT1),
        }
    ]
    assert run(fleet, "ASSET_LOTS", timedelta(minutes=30)) == []  # unloaded 50 minutes before TO


# --- alarms --------------------------------------------------------------------------------------------


def test_alarms_open_ages_and_response_times(fleet: Fleet) -> None:
    rows = run(fleet, "ALARMS_OPEN")
    assert [(r["severity"], r["age_s"], r["state"], r["acknowledged_by"], r["asset_name"]) for r in rows] == [
        ("critical", 36000.0, "acknowledged", "bob", "Cold room one"),
        ("warning", 900.0, "open", None, "Frozen box"),
    ]
    assert run(fleet, "FLEET_OPEN_ALARMS") == [{"open_alarms": 2}]
    # Three hours before TO the truck's alarm was open, the cold room's acknowledged.
    rows = run(fleet, "ALARMS_OPEN", t_to=at(-175))
    assert [(r["asset_name"], r["state"], r["age_s"]) for r in rows] == [
        ("Cold room one", "acknowledged", 25500.0),
        ("Truck two", "open", 300.0),
    ]
    assert run(fleet, "ALARMS_RESPONSE") == [
        {"carrier": "(no carrier)", "alarms": 2, "ack_p50_s": 3600.0, "ack_p95_s": 3600.0,
         "resolve_p50_s": None, "resolve_p95_s": None},
        {"carrier": "Carrier One", "alarms": 1, "ack_p50_s": 600.0, "ack_p95_s": 600.0,
         "resolve_p50_s": 1800.0, "resolve_p95_s": 1800.0},
    ]  # fmt: skip
    week = run(fleet, "ALARMS_RESPONSE", RANGES["7d"], carrier=None)
    assert week[0] == {"carrier": "(no carrier)", "alarms": 3, "ack_p50_s": 3600.0, "ack_p95_s": 3600.0,
                       "resolve_p50_s": 3600.0, "resolve_p95_s": 3600.0}  # fmt: skip
    over = run(fleet, "ALARMS_OVER_TIME", RANGES["24h"], interval_ms=86_400_000)
    assert [(r["severity"], r["alarms"]) for r in over] == [("critical", 2), ("warning", 1)]
    assert run(fleet, "ALERT_OPEN_EXCURSION_MINUTES") == [{"asset_id": "A3", "minutes": 20.0}]


# --- data quality and lots ----------------------------------------------------------------------


def test_dead_letters_and_gap_rate(fleet: Fleet) -> None:
    assert run(fleet, "DQ_DEAD_LETTERS_BY_REASON") == [
        {"reason": "malformed_json", "dead_letters": 2},
        {"reason": "unknown_device", "dead_letters": 1},
    ]
    week = run(fleet, "DQ_DEAD_LETTERS_BY_REASON", RANGES["7d"])
    assert {r["reason"]: r["dead_letters"] for r in week} == {
        "malformed_json": 2, "unknown_device": 1, "schema": 1}  # fmt: skip
    gaps = run(fleet, "DQ_SEQ_GAP_RATE")
    assert gaps == [
        {"device_id": "d4", "received": 8, "missing": 2, "gap_rate": 0.2},
        {"device_id": "d2", "received": 1050, "missing": 50, "gap_rate": round(50 / 1100, 9)},
        {"device_id": "d1", "received": 500, "missing": 0, "gap_rate": 0.0},
    ]
    assert run(fleet, "DQ_SEQ_GAP_RATE", asset_kind=["reefer_truck"]) == gaps[1:2]  # the reader: only at All


def test_lots_broken_per_week(fleet: Fleet) -> None:
    # L1 first broken 20 h before TO (Sunday 1 March: the week from Monday 23 February); L2 eight days
    # before TO (Sunday 22 February: the week from 16 February).
    week = lambda d: datetime(2026, 2, d, tzinfo=UTC)  # noqa: E731
    assert run(fleet, "LOTS_BROKEN_PER_WEEK") == [{"time": week(23), "lots_broken": 1}]
    assert run(fleet, "LOTS_BROKEN_PER_WEEK", RANGES["7d"]) == [{"time": week(23), "lots_broken": 1}]
    assert run(fleet, "LOTS_BROKEN_PER_WEEK", RANGES["90d"]) == [
        {"time": week(16), "lots_broken": 1},
        {"time": week(23), "lots_broken": 1},
    ]
    assert run(fleet, "LOTS_BROKEN_PER_WEEK", RANGES["90d"], product_class=["frozen"]) == [
        {"time": week(16), "lots_broken": 1}
    ]
    # Scoped to the truck: the lot it carried; to the cold room: none.
    assert run(fleet, "LOTS_BROKEN_PER_WEEK", RANGES["90d"], asset=["A2"]) == [
        {"time": week(23), "lots_broken": 1}
    ]
    assert run(fleet, "LOTS_BROKEN_PER_WEEK", RANGES["90d"], asset=["A1"]) == []


def test_variables(fleet: Fleet) -> None:
    assert run(fleet, "carrier") == [{"__value": "P1", "__text": "Carrier One"}]
    assert run(fleet, "site") == [{"__value": "S1", "__text": "Site one"}]
    assert [r["__value"] for r in run(fleet, "asset_kind")] == ["cold_room", "passive_box", "reefer_truck"]
    assert run(fleet, "product_class")[0] == {"__value": "chilled", "__text": "chilled — Chilled"}
    assert [r["__value"] for r in run(fleet, "asset")] == ["A1", "A3", "A2"]
    assert [r["__value"] for r in run(fleet, "asset", product_class=["chilled"], carrier=["P1"])] == ["A2"]


# --- expand --------------------------------------------------------------------------------------------


def test_expand_writes_grafanas_macros() -> None:
    text = (
        "SELECT $__timeFilter(e.time), $__timeFrom(), $__timeTo(), $__interval_ms,"
        " $asset, ${site}, [[carrier]]"
    )
    out = q.expand(
        text,
        t_from=datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC),
        t_to=datetime(2026, 1, 3, 11, 4, 5, tzinfo=UTC).astimezone(),
        interval_ms=60_000,
        variables={"asset": ["A1", "B'2"], "site": None, "carrier": ["x"]},
    )
    assert out == (
        "SELECT e.time BETWEEN '2026-01-02T03:04:05Z' AND '2026-01-03T11:04:05Z', '2026-01-02T03:04:05Z',"
        " '2026-01-03T11:04:05Z', 60000, 'A1','B''2', '__all', 'x'"
    )
    with pytest.raises(ValueError, match="unknown"):
        q.expand("SELECT $__timeGroup(time, 1m)", t_from=TO, t_to=TO, interval_ms=1, variables={})
    with pytest.raises(ValueError, match="unknown"):
        q.expand("SELECT $nope", t_from=TO, t_to=TO, interval_ms=1, variables={})
    with pytest.raises(ValueError, match="needs a value"):
        q.expand("SELECT $asset", t_from=TO, t_to=TO, interval_ms=1, variables={"asset": []})


@given(
    values=st.lists(
        st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s), min_size=1, max_size=4
    )
)
def test_expanded_values_come_back_as_the_same_strings(pg_server_url: str, values: list[str]) -> None:
    """Whatever a value holds (quotes, $, backslashes, SQL), PostgreSQL reads back the values given."""
    out = q.expand(
        "SELECT ARRAY[$asset]::text[]", t_from=TO, t_to=TO, interval_ms=1, variables={"asset": values}
    )
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        row = conn.execute(out).fetchone()  # type: ignore[call-overload]  # expanded SQL
    assert row is not None
    assert list(row[0]) == values


def test_interval_follows_grafanas_rounding() -> None:
    assert q.interval_ms(TO - RANGES["24h"], TO) == 60_000
    assert q.interval_ms(TO - RANGES["7d"], TO) == 600_000
    assert q.interval_ms(TO - RANGES["90d"], TO) == 7_200_000
    assert q.interval_ms(TO - timedelta(hours=1), TO) == 60_000  # never under the datasource's 1 min
    assert q.interval_ms(TO - timedelta(days=365), TO) == 21_600_000
    assert math.isclose(q.interval_ms(TO - timedelta(days=3 * 365), TO), 86_400_000)

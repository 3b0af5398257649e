"""Tests: readings judged against a shipper's per-shipment profile beside the class: profile rows and alarms
citing the shipper's specification and version, a version applying from its creation onward, late data
re-judged, the class verdicts untouched, and a carrier's key seeing its own asset's profile alarm only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient
from rules_support import Conn, add_asset, add_device, add_readings, add_series, at, drain

import registry.store as registry
from registry.models import ClassBounds, Lot, Shipment, ShipmentLeg, ShipmentLot, ShipmentProfile
from registry.shipments import add_profile, add_shipment
from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.epcis import builders
from traceability.i18n import Lang
from traceability.ledger import chain, checkpoint
from traceability.reports import pdf
from traceability.reports.build import read_report
from traceability.trace import trace_lot
from traceability.trace_model import to_json

TRUCK, OTHER = "TRUCK-P1", "TRUCK-P2"
SPEC = "Shipper QA spec SQ-7 §3.2: chilled salmon 1-3 °C"
SPEC_V2 = "Shipper QA spec SQ-7 rev B §3.2: 1-2.5 °C"
CARRIER_A, CARRIER_B = "6901234300001", "6901234300002"
# What cn_food's chilled class allows (rule_class): a profile may only narrow it.
CHILLED = ClassBounds("chilled", 0.0, 4.0, 600.0)


def _truck(conn: Conn, truck: str = TRUCK, device: str = "dev-p1") -> int:
    add_asset(conn, truck, "reefer_truck", "chilled", "transport")
    add_device(conn, device, truck)
    return add_series(conn, device, "temp")


def _shipment(
    conn: Conn, shipment_id: str, truck: str, *profiles: ShipmentProfile, carrier: str | None = None
) -> None:
    add_shipment(
        conn,
        Shipment(
            shipment_id,
            product_class="chilled",
            legs=(ShipmentLeg(1, "road", carrier_party_id=carrier, asset_id=truck),),
            profiles=profiles,
        ),
        CHILLED,
    )


def _created(conn: Conn, shipment_id: str, version: int, minute: float) -> None:
    """Date a profile version on the readings' device-time axis (the registry stamps its creation)."""
    conn.execute(
        "UPDATE shipment_profile SET created_at = %s WHERE shipment_id = %s AND version = %s",
        (at(minute), shipment_id, version),
    )


def _run(db_url: str) -> None:
    worker = RulesWorker(db_url)
    try:
        drain(worker)
    finally:
        worker.close()


def _rows(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, asset_id, shipment_id, profile_version, rule_id, source, start_time, end_time, open"
        " FROM profile_excursion ORDER BY asset_id, start_time"
    ).fetchall()


def _alarms(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT asset_id, rule_id, kind, state, shipment_id, profile_version, source, pack_version"
        " FROM alarm WHERE shipment_id IS NOT NULL ORDER BY alarm_id"
    ).fetchall()


def _class_verdicts(conn: Conn) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM excursion), (SELECT count(*) FROM chain_break),"
        " (SELECT count(*) FROM verdict_outbox), (SELECT count(*) FROM alarm WHERE shipment_id IS NULL)"
    ).fetchone()
    assert row is not None
    return row


# 2 °C, then 3.2 °C for 15 min (inside the class's 0-4 °C, outside the shipper's 1-3 °C), then 2 °C again.
WARM = (
    [(m, 2.0) for m in range(0, 10)] + [(m, 3.2) for m in range(10, 25)] + [(m, 2.0) for m in range(25, 40)]
)


def test_a_reading_outside_the_profile_but_inside_the_class_raises_a_profile_alarm(
    db_url: str, conn: Conn
) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-P1", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0))
    _created(conn, "SHP-P1", 1, -60)
    add_readings(conn, sid, WARM)
    _run(db_url)
    rule = "shipment/SHP-P1/range"
    assert _rows(conn) == [("range", TRUCK, "SHP-P1", 1, rule, SPEC, at(10), at(24), False)]
    # The alarm cites the shipper's specification and the version, not the rule pack; the run is over.
    assert _alarms(conn) == [(TRUCK, rule, "profile_range", "resolved", "SHP-P1", 1, SPEC, None)]
    reason = conn.execute("SELECT reason FROM alarm").fetchone()
    assert reason is not None
    assert "profile v1" in reason[0]
    assert SPEC in reason[0]
    # The class judged the same readings as it always does: nothing out of its range.
    assert _class_verdicts(conn) == (0, 0, 0, 0)


def test_no_profile_no_profile_alarm_and_the_class_verdicts_unchanged(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-P0", TRUCK)  # a shipment without a profile
    hot = (
        [(m, 2.0) for m in range(0, 5)] + [(m, 6.0) for m in range(5, 25)] + [(m, 2.0) for m in range(25, 30)]
    )
    add_readings(conn, sid, WARM[:5] + hot[5:])
    _run(db_url)
    assert _rows(conn) == []
    assert _alarms(conn) == []
    assert conn.execute("SELECT rule_id, source FROM alarm").fetchall() == [("cn_food/chilled/range", None)]
    assert conn.execute("SELECT count(*) FROM excursion").fetchone() == (1,)


def test_a_class_excursion_is_the_same_with_a_profile_and_the_profile_adds_its_own(
    db_url: str, second_db_url: str, conn: Conn
) -> None:
    hot = (
        [(m, 2.0) for m in range(0, 5)] + [(m, 6.0) for m in range(5, 25)] + [(m, 2.0) for m in range(25, 30)]
    )

    def class_rows(url: str, with_profile: bool) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as c:
            sid = _truck(c)
            profiles = (ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0),) if with_profile else ()
            _shipment(c, "SHP-C", TRUCK, *profiles)
            if with_profile:
                _created(c, "SHP-C", 1, -60)
            add_readings(c, sid, hot)
            _run(url)
            return [
                *c.execute("SELECT rule_id, start_time, end_time, peak_c FROM excursion").fetchall(),
                *c.execute(
                    "SELECT kind, payload->>'verdict_id' FROM verdict_outbox ORDER BY 1, 2"
                ).fetchall(),
                *c.execute(
                    "SELECT rule_id, state, severity FROM alarm WHERE shipment_id IS NULL ORDER BY 1"
                ).fetchall(),
            ]

    assert class_rows(db_url, True) == class_rows(second_db_url, False)
    assert [r[4] for r in _rows(conn)] == ["shipment/SHP-C/range"]


def test_a_newer_version_applies_from_its_creation_onward(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-V", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0))
    _created(conn, "SHP-V", 1, -60)
    assert add_profile(conn, "SHP-V", ShipmentProfile(0, SPEC_V2, low_c=1.0, high_c=2.5), CHILLED) == 2
    _created(conn, "SHP-V", 2, 60)
    # 2.8 °C from minute 10 to 29 (inside v1) and from minute 70 to 89 (outside v2, created at minute 60).
    points = [(m, 2.8 if 10 <= m < 30 or 70 <= m < 90 else 2.0) for m in range(0, 100)]
    add_readings(conn, sid, points)
    _run(db_url)
    assert [(r[3], r[5], r[6], r[7]) for r in _rows(conn)] == [(2, SPEC_V2, at(70), at(89))]
    assert [(a[5], a[6]) for a in _alarms(conn)] == [(2, SPEC_V2)]


def test_late_readings_re_judge_the_profile_on_device_time(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-L", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0))
    _created(conn, "SHP-L", 1, -60)
    add_readings(conn, sid, [(m, 2.0) for m in range(0, 10)] + [(m, 3.2) for m in range(10, 16)])
    add_readings(conn, sid, [(m, 2.0) for m in range(30, 40)])
    _run(db_url)
    assert _rows(conn) == []  # 6 min outside: shorter than the class's 10 min minimum duration
    # The device's buffered readings of minutes 16-29 arrive late: the run lasted 20 min after all.
    add_readings(conn, sid, [(m, 3.2) for m in range(16, 30)])
    _run(db_url)
    assert [(r[6], r[7], r[8]) for r in _rows(conn)] == [(at(10), at(29), False)]
    assert [(a[1], a[3]) for a in _alarms(conn)] == [("shipment/SHP-L/range", "resolved")]


def test_an_open_run_keeps_its_alarm_open_until_back_in_band(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-O", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0))
    _created(conn, "SHP-O", 1, -60)
    add_readings(conn, sid, [(m, 2.0) for m in range(0, 5)] + [(m, 3.2) for m in range(5, 20)])
    _run(db_url)
    assert [(r[8]) for r in _rows(conn)] == [True]
    assert [a[3] for a in _alarms(conn)] == ["open"]
    add_readings(conn, sid, [(m, 2.0) for m in range(20, 25)])
    _run(db_url)
    assert [(r[7], r[8]) for r in _rows(conn)] == [(at(19), False)]
    assert [a[3] for a in _alarms(conn)] == ["resolved"]


def test_a_gap_beyond_the_profile_interval_raises_a_profile_gap_alarm(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-G", TRUCK, ShipmentProfile(1, SPEC, max_gap_s=120))
    _created(conn, "SHP-G", 1, -60)
    # A 5 min hole: within the class's 10 min transport interval, beyond the shipper's 2 min.
    add_readings(conn, sid, [(m, 2.0) for m in (*range(0, 10), *range(15, 20))])
    _run(db_url)
    assert [(r[0], r[4], r[6], r[7]) for r in _rows(conn)] == [("gap", "shipment/SHP-G/gap", at(9), at(15))]
    assert [(a[1], a[2], a[3]) for a in _alarms(conn)] == [("shipment/SHP-G/gap", "profile_gap", "open")]
    assert _class_verdicts(conn) == (0, 0, 0, 0)


def test_readings_before_the_asset_carries_the_shipment_are_the_class_alone(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    add_shipment(
        conn,
        Shipment(
            "SHP-W",
            product_class="chilled",
            planned_start=at(30),
            legs=(ShipmentLeg(1, "road", asset_id=TRUCK),),
            profiles=(ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0),),
        ),
        CHILLED,
    )
    _created(conn, "SHP-W", 1, -60)
    add_readings(conn, sid, [(m, 3.2) for m in range(0, 20)] + [(m, 2.0) for m in range(20, 40)])
    _run(db_url)
    assert _rows(conn) == []
    assert _alarms(conn) == []


def test_a_carrier_key_sees_the_profile_alarm_of_its_own_asset_only(db_url: str, conn: Conn) -> None:
    conn.execute(
        "INSERT INTO party (party_id, name, role)"
        " VALUES (%s, 'Carrier A', 'carrier'), (%s, 'Carrier B', 'carrier')",
        (CARRIER_A, CARRIER_B),
    )
    own, other = _truck(conn, TRUCK, "dev-p1"), _truck(conn, OTHER, "dev-p2")
    conn.execute("UPDATE asset SET operator_party_id = %s WHERE asset_id = %s", (CARRIER_A, TRUCK))
    conn.execute("UPDATE asset SET operator_party_id = %s WHERE asset_id = %s", (CARRIER_B, OTHER))
    _shipment(conn, "SHP-A", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0), carrier=CARRIER_A)
    _shipment(conn, "SHP-B", OTHER, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0), carrier=CARRIER_B)
    _created(conn, "SHP-A", 1, -60)
    _created(conn, "SHP-B", 1, -60)
    add_readings(conn, own, WARM)
    add_readings(conn, other, WARM)
    _run(db_url)
    keys = {
        "a": create_key(conn, "carrier", "carrier A", CARRIER_A),
        "b": create_key(conn, "carrier", "carrier B", CARRIER_B),
        "operator": create_key(conn, "operator", "operator"),
    }
    with TestClient(create_app(db_url), raise_server_exceptions=False) as client:

        def seen(who: str) -> list[tuple[str, str, int, str]]:
            response = client.get("/alarms", headers={"X-API-Key": keys[who]}, params={"state": "resolved"})
            assert response.status_code == 200, response.text
            return sorted(
                (a["asset_id"], a["rule_id"], a["profile_version"], a["source"]) for a in response.json()
            )

        assert seen("a") == [(TRUCK, "shipment/SHP-A/range", 1, SPEC)]
        assert seen("b") == [(OTHER, "shipment/SHP-B/range", 1, SPEC)]
        assert [a[0] for a in seen("operator")] == [TRUCK, OTHER]


def test_the_window_of_a_late_reading_covers_the_stored_profile_rows(db_url: str, conn: Conn) -> None:
    """A late reading inside a stored profile run re-judges the whole run (never one beside itself)."""
    sid = _truck(conn)
    _shipment(conn, "SHP-R", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0))
    _created(conn, "SHP-R", 1, -60)
    add_readings(conn, sid, [(m, 2.0) for m in range(0, 10)] + [(m, 3.2) for m in range(10, 30) if m != 20])
    add_readings(conn, sid, [(m, 2.0) for m in range(30, 40)])
    _run(db_url)
    before = [(r[6], r[7]) for r in _rows(conn)]
    assert before == [(at(10), at(29))]
    add_readings(conn, sid, [(20, 3.3)])
    _run(db_url)
    assert [(r[6], r[7]) for r in _rows(conn)] == before
    assert len(_alarms(conn)) == 1, "the re-judged run raises no second alarm"


def test_the_lots_trace_shows_the_profile_run_of_its_shipment(
    db_url: str, conn: Conn, tmp_path: Path
) -> None:
    lot, sscc, truck_epc = (
        "urn:epc:class:lgtin:6901234.012345.PRF1",
        "urn:epc:id:sscc:6901234.0000000991",
        ("urn:epc:id:giai:6901234.991"),
    )
    add_asset(conn, TRUCK, "reefer_truck", "chilled", "transport")
    conn.execute("UPDATE asset SET epc = %s WHERE asset_id = %s", (truck_epc, TRUCK))
    add_device(conn, "dev-p1", TRUCK)
    sid = add_series(conn, "dev-p1", "temp")
    registry.add_lots(conn, [Lot(lot, "chilled")])
    for event in (
        builders.aggregation_event(
            event_time=at(-60),
            action="ADD",
            parent_id=sscc,
            child_quantities=[builders.quantity(lot, 800, "KGM")],
            biz_step="packing",
        ),
        builders.aggregation_event(
            event_time=at(-5), action="ADD", parent_id=truck_epc, child_epcs=[sscc], biz_step="loading"
        ),
        builders.object_event(event_time=at(-4), epcs=[sscc], biz_step="shipping"),
    ):
        chain.append(conn, event)
    add_shipment(
        conn,
        Shipment(
            "SHP-T",
            product_class="chilled",
            legs=(ShipmentLeg(1, "road", asset_id=TRUCK),),
            lots=(ShipmentLot(lot, 800, "KGM"),),
            profiles=(ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0),),
        ),
        CHILLED,
    )
    _created(conn, "SHP-T", 1, -60)
    add_readings(conn, sid, WARM)
    _run(db_url)
    found = trace_lot(conn, lot)
    assert found is not None
    assert [
        (p.kind, p.shipment_id, p.profile_version, p.source, p.start_time, p.end_time)
        for p in found.profile_excursions
    ] == [("range", "SHP-T", 1, SPEC, at(10), at(24))]
    # Beside the class's account of the leg, not in it.
    assert [e for leg in found.custody for e in leg.excursions] == []
    assert to_json(found)["profile_excursions"][0]["rule_id"] == "shipment/SHP-T/range"
    # The trace page and the alarms page show the run and the specification it breaks, in either language.
    key = create_key(conn, "operator", "operator")
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        form = client.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = client.post("/ui/signin", data={"key": key, "csrf": csrf.group(1), "next": "/ui/"})
        assert signed.status_code == 303, signed.text
        for lang, heading in (("en", "Outside the shipper's profile"), ("zh-CN", "超出货主告警配置")):
            headers = {"Accept-Language": lang}
            page = client.get(f"/ui/trace/{lot}", headers=headers)
            assert page.status_code == 200, page.text
            assert heading in page.text
            assert 'class="profile-excursion"' in page.text
            alarms = client.get("/ui/alarms", params={"state": "all"}, headers=headers)
            assert alarms.status_code == 200, alarms.text
            assert "SHP-T" in alarms.text
            assert "SQ-7" in alarms.text
    # The lot's report shows it too.
    checkpoint.sign_head(conn, checkpoint.load_or_create_key(tmp_path / "ledger.pem"), now=datetime.now(UTC))
    langs: list[tuple[Lang, str]] = [
        ("en", "Outside the shipper&#39;s profile"),
        ("zh-CN", "超出货主告警配置"),
    ]
    for lang, heading in langs:
        report = read_report(conn, lot, lang=lang, tz=ZoneInfo("UTC"))
        assert report is not None
        text = pdf.html(report)
        assert heading in text
        assert 'class="profile-excursion-row"' in text
        assert "SQ-7" in text


def test_late_readings_that_move_a_stored_run_raise_no_second_alarm(db_url: str, conn: Conn) -> None:
    sid = _truck(conn)
    _shipment(conn, "SHP-M", TRUCK, ShipmentProfile(1, SPEC, low_c=1.0, high_c=3.0))
    _created(conn, "SHP-M", 1, -60)
    add_readings(conn, sid, [(m, 2.0) for m in range(0, 8)] + [(m, 3.2) for m in range(10, 25)])
    add_readings(conn, sid, [(m, 2.0) for m in range(25, 40)])
    _run(db_url)
    assert [(r[6], r[7]) for r in _rows(conn)] == [(at(10), at(24))]
    add_readings(conn, sid, [(8, 3.2), (9, 3.2)])  # buffered: the run began two minutes earlier
    _run(db_url)
    assert [(r[6], r[7]) for r in _rows(conn)] == [(at(8), at(24))]
    assert [(a[1], a[3]) for a in _alarms(conn)] == [("shipment/SHP-M/range", "resolved")]

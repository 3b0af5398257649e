"""Tests: the readings API behind the charts over a real PostgreSQL: an asset's window and a lot's legs,
peaks kept through downsampling, door / power / defrost markers, only mounted devices' readings, problems."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from trace_support import LOT, SSCC, build_scenario, h

from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.readings import leg_readings
from traceability.trace import trace
from traceability.worker import LedgerWorker

TRUCK = "TRUCK-GXA-12345"
TRUCK_DEVICE = "truck-12345-rc"
PROBLEMS = "https://ns.coldchain.example/problems/"


def _series(conn: psycopg.Connection[Any], device: str, channel: str) -> int:
    row = conn.execute(
        "INSERT INTO series (device_id, channel) VALUES (%s, %s)"
        " ON CONFLICT (device_id, channel) DO UPDATE SET channel = excluded.channel RETURNING series_id",
        (device, channel),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _readings(conn: psycopg.Connection[Any], series_id: int, rows: list[tuple[datetime, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reading (time, series_id, value, received_at) VALUES (%s, %s, %s, %s)",
            [(t, series_id, v, t) for t, v in rows],
        )


def seed_chart(db_url: str) -> None:
    """On the truck: its door (open S+3h..S+3h25, the excursion), defrost and power events, GPS; a logger
    mounted on it for half an hour inside the leg only, and one never mounted, both with readings all day."""
    minutes = range(0, 361, 10)
    with psycopg.connect(db_url) as conn:
        door = _series(conn, TRUCK_DEVICE, "door")
        _readings(conn, door, [(h(m / 60), 1.0 if 180 <= m < 205 else 0.0) for m in range(120, 361, 10)])
        for t, kind, state in [
            (h(4.5), "defrost", "start"),
            (h(4.75), "defrost", "end"),
            (h(5), "power", "off"),
            (h(5.1), "power", "on"),
            (h(5.2), "setpoint", "changed"),  # not a marker
        ]:
            conn.execute(
                "INSERT INTO device_event (time, device_id, kind, value, received_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (t, TRUCK_DEVICE, kind, Jsonb({"state": state}), t),
            )
        lat, lon = _series(conn, TRUCK_DEVICE, "lat"), _series(conn, TRUCK_DEVICE, "lon")
        _readings(conn, lat, [(h(m / 60), 21.9 + m / 1000) for m in range(120, 361, 30)])
        _readings(conn, lon, [(h(m / 60), 108.6 - m / 1000) for m in range(120, 361, 30) if m != 240])
        for device in ("stray-logger", "ghost-logger"):
            conn.execute("INSERT INTO device (device_id, kind) VALUES (%s, 'temp_logger')", (device,))
        conn.execute(
            "INSERT INTO device_mount (device_id, asset_id, valid_from, valid_to) VALUES (%s, %s, %s, %s)",
            ("stray-logger", TRUCK, h(3), h(3.5)),
        )
        stray, ghost = _series(conn, "stray-logger", "temp"), _series(conn, "ghost-logger", "temp")
        _readings(conn, stray, [(h(m / 60), 1.0 if 180 <= m < 210 else -30.0) for m in minutes])
        _readings(conn, ghost, [(h(m / 60), 50.0) for m in minutes])
        conn.commit()


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    build_scenario(db_url)
    seed_chart(db_url)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).run_once()
    with psycopg.connect(db_url) as conn:
        key = create_key(conn, "inspector", "test-inspector")  # the read role is enough
    app = create_app(db_url)
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": key}) as test_client:
        yield test_client


def _window(client: TestClient, asset: str = TRUCK, **params: Any) -> httpx.Response:
    return client.get(f"/assets/{asset}/readings", params=params)


def _truck(client: TestClient, **params: Any) -> dict[str, Any]:
    response = _window(client, **{"from": h(2).isoformat(), "to": h(6).isoformat(), **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _t(hours: float) -> str:
    return h(hours).isoformat().replace("+00:00", "Z")


def _problem(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if type_ is not None:
        assert body["type"] == PROBLEMS + type_
    return body


def test_downsampling_keeps_the_excursion_peak(client: TestClient) -> None:
    body = _truck(client, max_points=2)
    assert (body["asset_id"], body["t_from"], body["t_to"], body["max_points"]) == (TRUCK, _t(2), _t(6), 2)
    probes = {s["channel"]: s for s in body["temperature"] if s["device_id"] == TRUCK_DEVICE}
    assert probes.keys() == {"temp:1", "temp:2"}
    probe = probes["temp:1"]
    assert probe["readings"] == 19  # S+2h..S+6h every 10 min, the 40-minute gap apart
    assert probe["downsampled"] is True
    assert [p["v"] for p in probe["points"]] == [3.0, 8.5]  # the first minimum, then the peak
    assert [p["t"] for p in probe["points"]] == [_t(2), _t(3)]
    full = {s["channel"]: s for s in _truck(client)["temperature"] if s["device_id"] == TRUCK_DEVICE}
    assert full["temp:1"]["downsampled"] is False
    assert len(full["temp:1"]["points"]) == 19
    assert max(p["v"] for p in full["temp:1"]["points"]) == 8.5


def test_markers_at_the_door_opening_and_events(client: TestClient) -> None:
    markers = [(m["t"], m["kind"], m["device_id"]) for m in _truck(client)["markers"]]
    assert markers == [
        (_t(3), "door_open", TRUCK_DEVICE),
        (_t(3.5), "door_closed", TRUCK_DEVICE),  # the first reading with the door shut again
        (_t(4.5), "defrost_start", TRUCK_DEVICE),
        (_t(4.75), "defrost_end", TRUCK_DEVICE),
        (_t(5), "power_off", TRUCK_DEVICE),
        (_t(5.1), "power_on", TRUCK_DEVICE),
    ]
    # A window opening while the door is open says so at its first reading.
    inside = _window(client, **{"from": _t(3 + 1 / 6), "to": _t(4)}).json()["markers"]
    assert [(m["t"], m["kind"]) for m in inside] == [(_t(3 + 1 / 6), "door_open"), (_t(3.5), "door_closed")]


def test_only_readings_of_devices_mounted_at_the_time_count(client: TestClient) -> None:
    body = _truck(client)
    stray = [s for s in body["temperature"] if s["device_id"] == "stray-logger"]
    assert len(stray) == 1
    assert stray[0]["readings"] == 3  # S+3h00, 3h10, 3h20: mounted S+3h..S+3h30 only
    assert {p["v"] for p in stray[0]["points"]} == {1.0}
    assert all(s["device_id"] != "ghost-logger" for s in body["temperature"])  # never mounted
    # The same readings as the trace counts as the leg's evidence (one selection for both).
    legs = {leg["leg_id"]: leg for leg in client.get(f"/trace/{LOT}").json()["custody"]}
    charts = client.get(f"/trace/{LOT}/readings").json()
    for chart in charts:
        leg = legs[chart["leg_id"]]
        counted = sum(s["readings"] for s in (chart["readings"] or {"temperature": []})["temperature"])
        assert counted == leg["temperature"]["readings"]
        assert len((chart["readings"] or {"temperature": []})["temperature"]) == leg["temperature"]["series"]


def test_track_pairs_latitude_and_longitude_and_thins(client: TestClient) -> None:
    track = _truck(client)["track"]
    assert [p["t"] for p in track] == [_t(m / 60) for m in (120, 150, 180, 210, 270, 300, 330)]
    assert track[0] == {"t": _t(2), "lat": pytest.approx(22.02), "lon": pytest.approx(108.48)}
    thinned = _truck(client, max_points=2)["track"]
    assert [p["t"] for p in thinned] == [_t(2), _t(5.5)]


def test_trace_readings_per_leg(client: TestClient) -> None:
    response = client.get(f"/trace/{LOT}/readings", params={"max_points": 4})
    assert response.status_code == 200, response.text
    charts = response.json()
    legs = client.get(f"/trace/{LOT}").json()["custody"]  # the trace route still answers
    assert [c["leg_id"] for c in charts] == [leg["leg_id"] for leg in legs]
    assert [leg["epc"] for leg in legs] == [SSCC, SSCC, SSCC]
    store, truck, market = charts
    assert store["readings"]["asset_id"] == "COLDROOM-QZ-B2"
    assert (store["readings"]["t_from"], store["readings"]["t_to"]) == (_t(0), _t(2))
    assert (truck["readings"]["t_from"], truck["readings"]["t_to"]) == (_t(2), _t(6))
    assert truck["readings"]["max_points"] == 4
    peaks = {s["channel"]: max(p["v"] for p in s["points"]) for s in truck["readings"]["temperature"]}
    assert peaks == {"temp:1": 8.5, "temp:2": 8.0, "temp": 1.0}
    assert all(len(s["points"]) <= 4 for s in truck["readings"]["temperature"])
    assert [m["kind"] for m in truck["readings"]["markers"]][:2] == ["door_open", "door_closed"]
    assert market["readings"] is None  # no asset on the leg: no temperature evidence
    # An identifier that leads to the lot (its pallet's SSCC) gives the same legs.
    by_pallet = client.get(f"/trace/{SSCC}/readings").json()
    assert [c["leg_id"] for c in by_pallet] == [c["leg_id"] for c in charts]


def test_an_open_leg_runs_to_now_or_past_its_last_reading(client: TestClient, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        found = trace(conn, LOT)
        assert found is not None
        truck = dataclasses.replace(found.custody[1], t_end=None)
        opened = dataclasses.replace(found, custody=[truck])
        (late,) = leg_readings(conn, opened, now=h(5))
        assert late.readings is not None
        assert late.readings.t_to == h(6 - 1 / 6) + timedelta(microseconds=1)  # just past 5h50
        (now,) = leg_readings(conn, opened, now=h(9))
        assert now.readings is not None
        assert now.readings.t_to == h(9)
        stray = [s for s in now.readings.temperature if s.device_id == "stray-logger"]
        assert stray[0].readings == 3  # the mount's end still bounds it


def test_default_window_is_the_last_day(client: TestClient) -> None:
    body = _window(client).json()
    t_from, t_to = (datetime.fromisoformat(body[k]) for k in ("t_from", "t_to"))
    assert t_to - t_from == timedelta(hours=24)
    assert body["max_points"] == 2000
    assert body["temperature"] == []  # the scenario is in March 2026
    body = _window(client, to=_t(6)).json()
    assert body["t_from"] == _t(-18)


def test_refusals_are_problems(client: TestClient) -> None:
    body = _problem(_window(client, "NO-SUCH-TRUCK", **{"from": _t(2), "to": _t(6)}), 404, "asset-not-found")
    assert body["instance"] == "/assets/NO-SUCH-TRUCK/readings"
    _problem(_window(client, **{"from": _t(6), "to": _t(6)}), 400, "bad-value")
    _problem(_window(client, **{"from": _t(6), "to": _t(2)}), 400, "bad-value")
    _problem(_window(client, **{"from": _t(-24 * 401), "to": _t(0)}), 400, "bad-value")
    assert _window(client, **{"from": _t(-24 * 400), "to": _t(0)}).status_code == 200
    body = _problem(_window(client, **{"from": "2026-03-01T02:00:00", "to": _t(6)}), 400, "bad-value")
    assert "offset" in body["detail"]
    _problem(_window(client, to="0001-01-01T00:00:00Z"), 400, "bad-value")  # 24 h before: no such year
    _problem(_window(client, to="0001-01-01T05:00:00+08:00"), 400, "bad-value")
    _problem(_window(client, **{"from": "yesterday"}), 422, "validation")
    _problem(_window(client, max_points=1), 422, "validation")
    _problem(_window(client, max_points=20_001), 422, "validation")
    assert _window(client, max_points=20_000).status_code == 200
    _problem(client.get(f"/trace/{LOT}/readings", params={"max_points": 0}), 422, "validation")
    lot = "urn:epc:class:lgtin:6901234.012345.NOPE"
    body = _problem(client.get(f"/trace/{lot}/readings"), 404, "lot-not-found")
    assert body["instance"] == f"/trace/{lot}/readings"
    _problem(client.get(f"/assets/{TRUCK}/readings", headers={"X-API-Key": ""}), 401)


def test_openapi_lists_the_readings_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    asset = spec["paths"]["/assets/{asset_id}/readings"]["get"]
    answer = asset["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/AssetReadings")
    assert {p["name"] for p in asset["parameters"]} >= {"asset_id", "from", "to", "max_points"}
    legs = spec["paths"]["/trace/{trace_id}/readings"]["get"]["responses"]["200"]
    assert legs["content"]["application/json"]["schema"]["items"]["$ref"].endswith("/LegReadings")
    assert {"AssetReadings", "SeriesPoints", "Marker", "TrackPoint", "LegReadings"} <= spec["components"][
        "schemas"
    ].keys()

"""Tests: who may see what, route by route: a carrier's key asking for another carrier's data gets 404 (never
403, never the data) and its own 200; a shipper sees its lots, customs the import flow, a regulator all;
collections (events, known EPCs, FEFO, alarms) hold only what the key may read; every read is audited with
the key's role and party."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from scope_support import (
    CARRIER_A,
    LOT_A,
    LOT_B,
    LOT_IMP,
    PALLET_B,
    PALLETS,
    STORE,
    TRUCK_A,
    TRUCK_B,
    TRUCK_B_EPC,
    World,
    received,
    seed_world,
)
from web_support import module_database

from traceability.api.app import create_app
from traceability.api.options import ApiOptions
from traceability.epcis import capture


@pytest.fixture(scope="module")
def world(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with module_database(pg_server_url, template_db) as db_url:
        yield seed_world(db_url, tmp_path_factory.mktemp("scope-keys"))


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.db_url, options=ApiOptions(ledger_key=world.ledger_key))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _get(client: TestClient, world: World, who: str, path: str, **params: Any) -> Any:
    return client.get(path, headers={"X-API-Key": world.keys[who]}, params=params)


def _event_path(world: World, of: str) -> str:
    return "/epcis/events/" + quote(world.event_ids[of], safe="")


def _event_ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    return {e["eventID"] for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]}


# (path, the key that reads it, a key that may not): the one gets 200, the other 404.
READS: list[tuple[str, str, str]] = [
    (f"/trace/{LOT_A}", "carrier_a", "carrier_b"),
    (f"/trace/{LOT_B}", "carrier_b", "carrier_a"),
    (f"/trace/{LOT_A}", "shipper_a", "customs"),
    (f"/trace/{LOT_IMP}", "customs", "shipper_a"),
    (f"/trace/{LOT_IMP}", "regulator", "carrier_a"),
    (f"/trace/{LOT_A}/readings", "carrier_a", "carrier_b"),
    (f"/trace/{LOT_A}/report.pdf", "carrier_a", "carrier_b"),
    (f"/trace/{LOT_A}/report.csv", "shipper_a", "carrier_b"),
    (f"/trace/{LOT_A}/report.xlsx", "carrier_a", "customs"),
    (f"/trace/{LOT_A}/bundle.json", "carrier_a", "carrier_b"),
    (f"/trace/{LOT_IMP}/bundle.json", "customs", "carrier_a"),
    (f"/assets/{TRUCK_A}/readings", "carrier_a", "carrier_b"),
    (f"/assets/{TRUCK_B}/readings", "carrier_b", "carrier_a"),
]


@pytest.mark.parametrize(("path", "reader", "outsider"), READS)
def test_a_party_reads_its_own_and_gets_404_for_another_s(
    client: TestClient, world: World, path: str, reader: str, outsider: str
) -> None:
    own = _get(client, world, reader, path)
    assert own.status_code == 200, own.text
    other = _get(client, world, outsider, path)
    assert other.status_code == 404, other.text
    assert other.headers["content-type"] == "application/problem+json"
    for secret in (LOT_A, LOT_B, LOT_IMP, TRUCK_A, TRUCK_B):
        if secret not in path:
            assert secret not in other.text


@pytest.mark.parametrize(
    ("of", "reader", "outsider"),
    [
        (LOT_A, "carrier_a", "carrier_b"),
        (LOT_A, "shipper_a", "customs"),
        (PALLET_B, "carrier_b", "carrier_a"),  # visible only through carrier B's through document
        (TRUCK_B_EPC, "carrier_b", "shipper_a"),
        ("inspection", "customs", "carrier_a"),
        ("inspection", "inspector", "shipper_a"),
    ],
)
def test_one_event_is_404_to_a_key_that_may_not_read_it(
    client: TestClient, world: World, of: str, reader: str, outsider: str
) -> None:
    path = _event_path(world, of)
    assert _event_ids(_get(client, world, reader, path)) == {world.event_ids[of]}
    assert _get(client, world, outsider, path).status_code == 404


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("carrier_a", {LOT_A}),
        ("carrier_b", {LOT_B, LOT_IMP, TRUCK_B_EPC, PALLET_B, "inspection"}),
        ("shipper_a", {LOT_A}),
        ("customs", {LOT_IMP, TRUCK_B_EPC, PALLET_B, "inspection"}),
        ("regulator", {LOT_A, LOT_B, LOT_IMP, TRUCK_B_EPC, PALLET_B, "inspection"}),
    ],
)
def test_the_event_query_serves_only_the_events_a_key_may_read(
    client: TestClient, world: World, who: str, sees: set[str]
) -> None:
    # A lot's events: its packing, and its pallet's receipt (seen through the lot the pallet holds).
    sees = sees | {received(lot) for lot in sees & set(PALLETS)}
    expected = {world.event_ids[of] for of in sees}
    assert _event_ids(_get(client, world, who, "/epcis/events")) == expected
    # The same through a resource's events: none of another's.
    lot_b_events = _event_ids(_get(client, world, who, f"/epcis/epcs/{quote(LOT_B, safe='')}/events"))
    assert lot_b_events == ({world.event_ids[LOT_B]} if LOT_B in sees else set())


def test_known_values_are_those_of_the_events_a_key_may_read(client: TestClient, world: World) -> None:
    def members(who: str, resource: str) -> set[str]:
        response = _get(client, world, who, f"/epcis/{resource}", perPage=1000)
        assert response.status_code == 200, response.text
        return set(response.json()["member"])

    assert members("carrier_a", "epcs") == {LOT_A, PALLETS[LOT_A]}
    assert members("customs", "epcs") == {LOT_IMP, PALLETS[LOT_IMP], TRUCK_B_EPC, PALLET_B}
    assert {LOT_A, LOT_B, LOT_IMP} <= members("regulator", "epcs")
    assert {"departing", "receiving"} <= members("carrier_a", "bizSteps")  # the standard's values stay listed
    assert members("carrier_a", "bizLocations") == {STORE}


@pytest.mark.parametrize(
    ("who", "lots"),
    [
        ("carrier_a", [LOT_A]),
        ("carrier_b", [LOT_B, LOT_IMP]),
        ("customs", [LOT_IMP]),
        ("inspector", [LOT_A, LOT_B, LOT_IMP]),
    ],
)
def test_fefo_lists_only_the_lots_a_key_may_read(
    client: TestClient, world: World, who: str, lots: list[str]
) -> None:
    response = _get(client, world, who, f"/locations/{quote(STORE, safe='')}/fefo")
    assert response.status_code == 200, response.text
    assert sorted(lot["lot_id"] for lot in response.json()["lots"]) == lots


def test_a_carrier_lists_and_acts_on_its_own_alarms_only(client: TestClient, world: World) -> None:
    def assets(who: str) -> list[str]:
        response = _get(client, world, who, "/alarms")
        assert response.status_code == 200, response.text
        return sorted(a["asset_id"] for a in response.json())

    assert assets("carrier_a") == [TRUCK_A]
    assert assets("carrier_b") == [TRUCK_B]
    assert assets("operator") == [TRUCK_A, TRUCK_B]
    other, own = world.alarms[TRUCK_B], world.alarms[TRUCK_A]
    headers = {"X-API-Key": world.keys["carrier_a"]}
    for action in ("ack", "resolve"):
        refused = client.post(f"/alarms/{other}/{action}", json={"note": "not ours"}, headers=headers)
        assert refused.status_code == 404, refused.text
    assert client.post(f"/alarms/{own}/ack", json={"note": "on it"}, headers=headers).status_code == 200
    with psycopg.connect(world.db_url) as conn:
        states = dict(conn.execute("SELECT asset_id, state FROM alarm").fetchall())
    assert states == {TRUCK_A: "acknowledged", TRUCK_B: "open"}
    # A shipper's role acts on no alarm: a role's refusal (403) names no alarm.
    assert _get(client, world, "shipper_a", "/alarms").status_code == 403


def test_a_capture_job_is_404_to_a_reader_who_does_not_see_every_event(
    client: TestClient, world: World
) -> None:
    with psycopg.connect(world.db_url) as conn:
        job = capture.enqueue(conn, b"{}", captured_by="someone")
        conn.commit()
    path = f"/epcis/capture/{job.capture_id}"
    assert _get(client, world, "inspector", path).status_code == 200
    assert _get(client, world, "carrier_a", path).status_code == 404


def test_ledger_verification_is_open_to_every_reader(client: TestClient, world: World) -> None:
    """The chain's verification names seqs and hashes, never an event's content or whose it is: every
    party may check the ledger it is served from."""
    for who in ("carrier_a", "customs", "regulator"):
        response = _get(client, world, who, "/ledger/verify")
        assert response.status_code == 200, response.text
        assert response.json()["ok"] is True


def test_every_read_is_audited_with_key_role_and_party(client: TestClient, world: World) -> None:
    assert _get(client, world, "carrier_a", f"/trace/{LOT_A}").status_code == 200
    assert _get(client, world, "carrier_a", f"/trace/{LOT_B}").status_code == 404
    with psycopg.connect(world.db_url) as conn:
        rows = conn.execute(
            "SELECT k.name, a.role, a.party_id, a.path, a.status"
            " FROM audit_log a JOIN api_key k USING (key_id) WHERE a.path IN (%s, %s) ORDER BY a.audit_id",
            (f"/trace/{LOT_A}", f"/trace/{LOT_B}"),
        ).fetchall()
    assert ("carrier A", "carrier", CARRIER_A, f"/trace/{LOT_A}", 200) in rows
    assert ("carrier A", "carrier", CARRIER_A, f"/trace/{LOT_B}", 404) in rows


def test_a_trace_by_any_identifier_lists_only_the_lots_a_key_may_read(
    client: TestClient, world: World
) -> None:
    response = _get(client, world, "carrier_a", f"/trace/{LOT_A}")
    assert response.json()["query"]["lots"] == [LOT_A]
    # The GTIN's batch SCB1 names carrier B's lot: carrier A's key does not find it by its batch either.
    assert _get(client, world, "carrier_a", "/trace/SCB1").status_code == 404
    assert _get(client, world, "carrier_b", "/trace/SCB1").json()["lot_id"] == LOT_B


def test_the_cli_makes_a_key_of_a_party(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from process_support import as_url
    from typer.testing import CliRunner

    from coldchain.cli import app as cli_app

    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", as_url(world.db_url))
    monkeypatch.setenv("COLDCHAIN_HOME", str(tmp_path))
    runner = CliRunner()
    made = runner.invoke(cli_app, ["apikey", "create", "--role", "carrier", "--party", CARRIER_A])
    assert made.exit_code == 0, made.output
    created = made.stdout.strip().splitlines()[-1]
    import json

    answer = json.loads(created)
    assert (answer["role"], answer["party"]) == ("carrier", CARRIER_A)
    with psycopg.connect(world.db_url) as conn:
        stored = conn.execute(
            "SELECT role, party_id FROM api_key WHERE key_prefix = %s", (answer["prefix"],)
        ).fetchone()
    assert stored == ("carrier", CARRIER_A)
    missing = runner.invoke(cli_app, ["apikey", "create", "--role", "shipper"])
    assert (missing.exit_code, missing.stderr.strip()) == (
        2,
        "a shipper key belongs to a party: give --party <party id>",
    )
    unknown = runner.invoke(cli_app, ["apikey", "create", "--role", "carrier", "--party", "NOPE"])
    assert (unknown.exit_code, unknown.stderr.strip()) == (1, "no party 'NOPE' in the registry")

"""Tests: the web pages under the party scope: a carrier's session finds, traces, reports on and acts on its
own data and gets the not-found page for another carrier's; customs sees the import flow; the public scan
page stays public; every page read is audited with the key's role and party."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from scope_support import CARRIER_A, LOT_A, LOT_B, LOT_IMP, TRUCK_A, TRUCK_B, World, seed_world
from web_support import module_database

from tests.traceability.web.test_web_pages import sign_in
from traceability.api.app import create_app
from traceability.api.options import ApiOptions


@pytest.fixture(scope="module")
def world(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with module_database(pg_server_url, template_db) as db_url:
        yield seed_world(db_url, tmp_path_factory.mktemp("scope-web-keys"))


@pytest.fixture(scope="module")
def browser_client(world: World) -> Iterator[TestClient]:
    app = create_app(world.db_url, options=ApiOptions(ledger_key=world.ledger_key))
    with TestClient(app, follow_redirects=False, headers={"Accept-Language": "en"}) as client:
        yield client


NOT_FOUND = "Nothing was found for this identifier."

# (page, the key whose session reads it, a key whose session may not).
PAGES: list[tuple[str, str, str]] = [
    (f"/ui/trace/{LOT_A}", "carrier_a", "carrier_b"),
    (f"/ui/trace/{LOT_B}", "carrier_b", "carrier_a"),
    (f"/ui/trace/{LOT_IMP}", "customs", "shipper_a"),
    (f"/ui/trace/{LOT_A}", "shipper_a", "customs"),
    (f"/ui/trace/{LOT_A}/report.pdf", "carrier_a", "carrier_b"),
    (f"/ui/trace/{LOT_A}/report.csv", "carrier_a", "customs"),
    (f"/ui/trace/{LOT_IMP}/bundle.json", "customs", "carrier_a"),
]


@pytest.mark.parametrize(("path", "reader", "outsider"), PAGES)
def test_a_session_reads_its_party_s_pages_and_gets_not_found_for_another_s(
    browser_client: TestClient, world: World, path: str, reader: str, outsider: str
) -> None:
    sign_in(browser_client, world.keys[reader])
    assert browser_client.get(path).status_code == 200
    sign_in(browser_client, world.keys[outsider])
    refused = browser_client.get(path)
    assert refused.status_code == 404
    assert NOT_FOUND in refused.text


def test_search_finds_only_what_the_session_may_read(browser_client: TestClient, world: World) -> None:
    sign_in(browser_client, world.keys["carrier_a"])
    mine = browser_client.get("/ui/", params={"q": "SCA1"})
    assert (mine.status_code, mine.headers["location"]) == (303, f"/ui/trace/{quote(LOT_A, safe=':')}")
    theirs = browser_client.get("/ui/", params={"q": "SCB1"})
    assert theirs.status_code == 404
    assert LOT_B not in theirs.text
    sign_in(browser_client, world.keys["carrier_b"])
    assert browser_client.get("/ui/", params={"q": "SCB1"}).status_code == 303


def test_the_alarms_page_shows_and_acts_on_the_session_s_alarms_only(
    browser_client: TestClient, world: World
) -> None:
    csrf = sign_in(browser_client, world.keys["carrier_a"])
    page = browser_client.get("/ui/alarms", params={"state": "all"})
    assert page.status_code == 200
    assert f'id="alarm-{world.alarms[TRUCK_A]}"' in page.text
    assert f'id="alarm-{world.alarms[TRUCK_B]}"' not in page.text
    assert TRUCK_B not in page.text
    other = browser_client.post(f"/ui/alarms/{world.alarms[TRUCK_B]}/ack", data={"csrf": csrf, "note": "x"})
    assert other.status_code == 404
    with psycopg.connect(world.db_url) as conn:
        state = conn.execute(
            "SELECT state FROM alarm WHERE alarm_id = %s", (world.alarms[TRUCK_B],)
        ).fetchone()
    assert state == ("open",)
    sign_in(browser_client, world.keys["operator"])
    page = browser_client.get("/ui/alarms", params={"state": "all"})
    assert f'id="alarm-{world.alarms[TRUCK_B]}"' in page.text


def test_the_ledger_page_is_open_to_every_session(browser_client: TestClient, world: World) -> None:
    sign_in(browser_client, world.keys["carrier_a"])
    assert browser_client.get("/ui/ledger/verify").status_code == 200


def test_the_scan_page_stays_public(browser_client: TestClient, world: World) -> None:
    browser_client.cookies.clear()
    assert browser_client.get(f"/scan/{LOT_B}").status_code == 200


def test_every_page_read_is_audited_with_role_and_party(browser_client: TestClient, world: World) -> None:
    sign_in(browser_client, world.keys["carrier_a"])
    assert browser_client.get(f"/ui/trace/{LOT_B}").status_code == 404
    with psycopg.connect(world.db_url) as conn:
        rows = conn.execute(
            "SELECT role, party_id, method, status FROM audit_log WHERE path = %s", (f"/ui/trace/{LOT_B}",)
        ).fetchall()
    assert ("carrier", CARRIER_A, "GET", 404) in rows

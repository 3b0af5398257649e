"""Tests: the alarms page's filters over many alarms (in the query, before its limit) and its words in
zh-CN, and a page's unusable parameter or form field answered as a translated page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.web import pages

ASSET = "COLDROOM-T1"
# More alarms than the page lists at once, all newer than the one the filters look for.
NEWER = pages.ALARM_LIMIT + 100


@pytest.fixture
def operator_client(db_url: str) -> Iterator[tuple[TestClient, int]]:
    """The app on a database with one old door alarm under ``NEWER`` newer excursions; signed in as an
    operator. Yields the client and the old alarm's id."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO asset (asset_id, kind, name, mode)"
            " VALUES (%s, 'cold_room', 'Cold room T1', 'storage')",
            (ASSET,),
        )
        row = conn.execute(
            "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start)"
            " VALUES (%s, 'p/chilled/door_open', 'door', 'info', 'resolved', 'door open', now())"
            " RETURNING alarm_id",
            (ASSET,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO alarm (asset_id, rule_id, kind, severity, state, reason, condition_start)"
            " SELECT %s, 'p/chilled/range', 'excursion', 'critical', 'resolved', 'out of range', now()"
            " FROM generate_series(1, %s)",
            (ASSET, NEWER),
        )
        key = create_key(conn, "operator", "alarm desk")
        conn.commit()
    with TestClient(create_app(db_url), follow_redirects=False, headers={"Accept-Language": "en"}) as client:
        form = client.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = client.post("/ui/signin", data={"key": key, "csrf": csrf.group(1), "next": "/ui/alarms"})
        assert signed.status_code == 303
        yield client, int(row[0])


def test_filters_find_an_alarm_older_than_the_newest_listed(operator_client: tuple[TestClient, int]) -> None:
    client, old = operator_client
    for params in ({"kind": "door"}, {"severity": "info"}, {"kind": "door", "severity": "info"}):
        page = client.get("/ui/alarms", params={"state": "all", **params})
        assert page.status_code == 200
        assert f'id="alarm-{old}"' in page.text, params
        assert page.text.count('<tr id="alarm-') == 1, params
    nothing = client.get("/ui/alarms", params={"state": "all", "kind": "door", "severity": "critical"})
    assert 'id="no-alarms"' in nothing.text
    everything = client.get("/ui/alarms", params={"state": "all"})
    assert everything.text.count('<tr id="alarm-') == pages.ALARM_LIMIT
    assert '<option value="door">door</option>' in everything.text, "the kind filter offers every kind"


def test_alarm_kinds_are_words_in_zh_cn(operator_client: tuple[TestClient, int]) -> None:
    client, old = operator_client
    page = client.get(
        "/ui/alarms", params={"state": "all", "kind": "door"}, headers={"Accept-Language": "zh-CN"}
    )
    row = page.text.split(f'id="alarm-{old}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>开门</td>" in row
    assert ">door<" not in page.text
    assert '<option value="excursion">温度超限</option>' in page.text


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_unusable_field_on_a_page_is_a_translated_page(
    operator_client: tuple[TestClient, int], lang: str
) -> None:
    client, _old = operator_client
    headers = {"Accept-Language": lang}
    answers = [
        client.post("/ui/alarms/not-a-number/ack", data={"csrf": "x"}, headers=headers),
        client.post("/ui/signin", data={"key": "k" * 500, "csrf": "x"}, headers=headers),
    ]
    for answer in answers:
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["content-language"] == lang
        message = answer.text.split('id="error-message">', 1)[1].split("<", 1)[0]
        if lang == "zh-CN":
            assert message == "无法处理此请求。请检查网址或表单内容后重试。"
        else:
            assert message.startswith("This request could not be read.")
    api = client.get("/alarms", params={"limit": "many"})
    assert api.headers["content-type"].startswith("application/problem+json"), "the API keeps problem+json"

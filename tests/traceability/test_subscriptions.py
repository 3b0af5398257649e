"""Tests: EPCIS query subscriptions end to end: a webhook receiver in the test gets a stream's deliveries
(signed, each with an idempotency key), retried with backoff across a restart, never twice; a port gets
exactly the events of its goods (an EPC pattern: every serial or lot of a GTIN); schedules fire;
unsubscribing and revoking the key stop deliveries; the worker runs beside the ledger worker in Services."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo

from coldchain.embedded import free_port
from coldchain.runtime import Services
from traceability.api.app import create_app
from traceability.api.auth import create_key, revoke_key
from traceability.epcis import builders
from traceability.epcis.digital_link import epc_to_digital_link
from traceability.ledger import chain
from traceability.subscriptions.worker import (
    HELD_NO_READ,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SubscriptionWorker,
)

TOKEN = "13df38d8275b13f05704629e5f1cf3d45d6132d5"
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
GTIN_X, GTIN_Y = "4012345.011111", "4012345.022222"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc

    @property
    def event_ids(self) -> list[str]:
        return [e["eventID"] for e in self.document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]


@dataclass
class Receiver:
    """A webhook receiver: answers 503 to the first ``fail_first`` requests, 204 to the rest."""

    url: str = ""
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_accepted(self, n: int, timeout_s: float = 30.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.accepted) >= n, timeout=timeout_s)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with state.arrived:
                state.requests.append(got)
                ok = len(state.requests) > state.fail_first
                if ok:
                    state.accepted.append(got)
                state.arrived.notify_all()
            self.send_response(204 if ok else 503)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/epcis-callback"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def keys(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        made = {role: create_key(conn, role, f"{role} key") for role in ("inspector", "capture", "admin")}
        made["port"] = create_key(conn, "inspector", "port authority")
        conn.commit()
    return made


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c


def as_key(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


def sgtin(gtin: str, serial: int) -> str:
    return f"urn:epc:id:sgtin:{gtin}.{serial}"


def append(db_url: str, *events: dict[str, Any]) -> list[str]:
    """Append events to the ledger (committed); their eventIDs."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        seqs = [chain.append(conn, e) for e in events]
        rows = conn.execute("SELECT event_id FROM ledger_event WHERE seq = ANY(%s) ORDER BY seq", (seqs,))
        return [str(r[0]) for r in rows.fetchall()]


def shipped(i: int, *epcs: str, biz_step: str = "shipping") -> dict[str, Any]:
    return builders.object_event(
        event_time=T0 + timedelta(minutes=i),
        epcs=list(epcs),
        biz_step=biz_step,
        disposition="in_transit" if biz_step == "shipping" else "in_progress",
        read_point="urn:epc:id:sgln:4012345.00001.1",
    )


def subscribe(
    client: TestClient, key: str, query: dict[str, Any], body: dict[str, Any], name: str = "q"
) -> str:
    made = client.post("/epcis/queries", json={"name": name, "query": query}, headers=as_key(key))
    assert made.status_code == 201, made.text
    sub = client.post(f"/epcis/queries/{name}/subscriptions", json=body, headers=as_key(key))
    assert sub.status_code == 201, sub.text
    sub_id: str = sub.json()["subscriptionID"]
    assert sub.headers["Location"] == f"/epcis/queries/{name}/subscriptions/{sub_id}"
    return sub_id


def pending(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT subscription_id, idempotency_key, attempts, next_attempt_at, held FROM epcis_delivery"
            " ORDER BY delivery_id"
        ).fetchall()


def signed_right(got: Received, token: str = TOKEN) -> bool:
    expected = "sha256=" + hmac.new(token.encode(), got.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(got.headers.get(SIGNATURE_HEADER.lower(), ""), expected)


# -- stream ------------------------------------------------------------------------------------------------


def test_a_stream_delivers_each_new_matching_event_once_signed_with_an_idempotency_key(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    before = append(db_url, shipped(0, sgtin(GTIN_X, 1)))  # recorded before the subscription: not sent
    sub_id = subscribe(
        client,
        keys["inspector"],
        {"eventType": ["ObjectEvent"], "EQ_bizStep": ["shipping"]},
        {"dest": receiver.url, "signatureToken": TOKEN, "stream": True},
    )
    worker = SubscriptionWorker(db_url)
    assert worker.run_once(T0) == 0
    wanted = append(db_url, shipped(1, sgtin(GTIN_X, 2)), shipped(2, sgtin(GTIN_Y, 3)))
    append(db_url, shipped(3, sgtin(GTIN_X, 4), biz_step="receiving"))  # another bizStep: not sent
    assert worker.run_once(T0) == 2  # one delivery made, one attempt
    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got.event_ids == wanted
    assert before[0] not in got.event_ids
    assert signed_right(got)
    assert not signed_right(Received(got.path, got.headers, got.body + b" "))  # the signature covers the body
    doc = got.document
    assert doc["type"] == "EPCISQueryDocument"
    assert doc["epcisBody"]["queryResults"]["subscriptionID"] == sub_id
    assert got.headers[IDEMPOTENCY_HEADER.lower()]
    assert pending(db_url) == []
    assert worker.run_once(T0) == 0
    assert len(receiver.requests) == 1
    later = append(db_url, shipped(4, sgtin(GTIN_X, 5)))
    worker.run_once(T0)
    assert [r.event_ids for r in receiver.requests] == [wanted, later]
    assert len({r.headers[IDEMPOTENCY_HEADER.lower()] for r in receiver.requests}) == 2
    listed = client.get(f"/epcis/queries/q/subscriptions/{sub_id}", headers=as_key(keys["inspector"])).json()
    assert listed["lastNotifiedAt"]
    assert "signatureToken" not in listed


def test_a_failed_delivery_is_retried_with_backoff_across_a_restart_and_never_twice(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    subscribe(
        client,
        keys["inspector"],
        {"MATCH_epc": [sgtin(GTIN_X, 1)]},
        {"dest": receiver.url, "stream": True, "signatureToken": TOKEN},
    )
    wanted = append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    first = SubscriptionWorker(db_url, backoff_s=10.0)
    first.run_once(T0)
    assert len(receiver.requests) == 1
    assert receiver.accepted == []
    [(_, key, attempts, next_at, held)] = pending(db_url)
    assert (attempts, next_at, held) == (1, T0 + timedelta(seconds=10), None)
    assert first.run_once(T0 + timedelta(seconds=9)) == 0  # not due yet
    assert len(receiver.requests) == 1
    first.run_once(T0 + timedelta(seconds=10))  # the second attempt fails too: twice the wait
    assert pending(db_url)[0][2:4] == (2, T0 + timedelta(seconds=30))
    del first  # the worker stops with the delivery pending in the database; another process resumes
    again = SubscriptionWorker(db_url, backoff_s=10.0)
    assert again.run_once(T0 + timedelta(seconds=29)) == 0
    again.run_once(T0 + timedelta(seconds=30))
    assert len(receiver.requests) == 3
    assert len(receiver.accepted) == 1
    assert {r.headers[IDEMPOTENCY_HEADER.lower()] for r in receiver.requests} == {key}
    assert {r.body for r in receiver.requests} == {receiver.accepted[0].body}  # the same signed bytes
    assert receiver.accepted[0].event_ids == wanted
    assert signed_right(receiver.accepted[0])
    assert pending(db_url) == []
    assert again.run_once(T0 + timedelta(hours=1)) == 0
    assert len(receiver.requests) == 3


def test_a_receiver_that_cannot_be_reached_is_retried(
    db_url: str, keys: dict[str, str], client: TestClient
) -> None:
    nobody = f"http://127.0.0.1:{free_port('127.0.0.1')}/in"  # nothing listens there
    subscribe(client, keys["inspector"], {}, {"dest": nobody, "stream": True})
    append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    worker = SubscriptionWorker(db_url)
    assert worker.run_once(T0) == 2
    [(_, _, attempts, next_at, held)] = pending(db_url)
    assert (attempts, next_at, held) == (1, T0 + timedelta(seconds=1), None)
    with psycopg.connect(db_url) as conn:
        assert str(conn.execute("SELECT last_error FROM epcis_delivery").fetchone()[0]).startswith(  # type: ignore[index]
            "ConnectError"
        )


def test_backoff_doubles_up_to_its_ceiling(db_url: str) -> None:
    worker = SubscriptionWorker(db_url, backoff_s=1.0, max_backoff_s=60.0)
    assert [worker.backoff(n).total_seconds() for n in (1, 2, 3, 6, 7, 100)] == [1, 2, 4, 32, 60, 60]


def test_a_delivery_locked_by_another_worker_is_not_sent_again(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    subscribe(client, keys["inspector"], {}, {"dest": receiver.url, "stream": True})
    append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    # A lock wait would be a bug here: the worker gives up on one at once instead of hanging the test.
    worker = SubscriptionWorker(make_conninfo(db_url, options="-c lock_timeout=2000"), backoff_s=1.0)
    worker.run_once(T0)
    assert len(receiver.requests) == 1
    with psycopg.connect(db_url) as other:  # another worker holds it, in the middle of sending it
        other.execute("SELECT delivery_id FROM epcis_delivery FOR UPDATE").fetchall()
        assert worker.run_once(T0 + timedelta(minutes=1)) == 0
        assert len(receiver.requests) == 1
    worker.run_once(T0 + timedelta(minutes=1))
    assert len(receiver.requests) == 2
    assert len(receiver.accepted) == 1


def test_a_port_subscribed_to_the_goods_of_gtin_x_receives_exactly_their_events(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    subscribe(  # every serial of GTIN X: an EPC pattern, not a list of the goods
        client,
        keys["port"],
        {"MATCH_anyEPC": [f"urn:epc:idpat:sgtin:{GTIN_X}.*"]},
        {"dest": receiver.url, "signatureToken": TOKEN, "stream": True},
        name="port-gtin-x",
    )
    ids = append(
        db_url,
        shipped(1, sgtin(GTIN_X, 101), sgtin(GTIN_Y, 1)),
        shipped(2, sgtin(GTIN_Y, 2)),
        shipped(3, str(epc_to_digital_link(sgtin(GTIN_X, 102))), biz_step="receiving"),  # as a Digital Link
        shipped(4, sgtin(GTIN_Y, 101)),  # the same serial, another GTIN
        shipped(5, sgtin(GTIN_X, 7)),
    )
    worker = SubscriptionWorker(db_url, batch_events=2)  # a backlog goes in several deliveries, in order
    for minute in range(4):
        worker.run_once(T0 + timedelta(minutes=minute))
    assert [r.event_ids for r in receiver.requests] == [[ids[0], ids[2]], [ids[4]]]
    assert all(signed_right(r) for r in receiver.requests)


def test_a_port_subscribed_to_the_lots_of_gtin_x_receives_the_events_of_their_quantities(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    subscribe(
        client,
        keys["port"],
        {"MATCH_anyEPCClass": [f"urn:epc:idpat:sgtin:{GTIN_X}.*"]},
        {"dest": receiver.url, "signatureToken": TOKEN, "stream": True},
        name="port-lots-of-gtin-x",
    )

    def lot_shipped(i: int, epc_class: str) -> dict[str, Any]:
        return builders.object_event(
            event_time=T0 + timedelta(minutes=i),
            quantities=[builders.quantity(epc_class, 40.0, "KGM")],
            biz_step="shipping",
            disposition="in_transit",
        )

    ids = append(
        db_url,
        lot_shipped(1, f"urn:epc:class:lgtin:{GTIN_X}.LOT1"),
        lot_shipped(2, f"urn:epc:class:lgtin:{GTIN_Y}.LOT1"),  # the same lot number, another GTIN
        shipped(3, sgtin(GTIN_X, 1)),  # an instance of GTIN X, not a class
    )
    SubscriptionWorker(db_url).run_once(T0)
    assert [r.event_ids for r in receiver.requests] == [[ids[0]]]


def test_a_stored_query_that_no_longer_runs_stops_only_its_own_subscription(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    subscribe(
        client, keys["inspector"], {}, {"dest": receiver.url + "/broken", "stream": True}, name="broken"
    )
    subscribe(client, keys["inspector"], {}, {"dest": receiver.url, "stream": True}, name="fine")
    with psycopg.connect(db_url) as conn:  # a unit the event query does not (or no longer) know
        conn.execute(
            'UPDATE epcis_named_query SET query = \'{"uom": "RANKINE", "GE_value_Temperature": 1}\''
            " WHERE name = 'broken'"
        )
        conn.commit()
    ids = append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    worker = SubscriptionWorker(db_url)
    worker.run_once(T0)
    assert [(r.path, r.event_ids) for r in receiver.requests] == [("/epcis-callback", ids)]
    assert worker.run_once(T0 + timedelta(minutes=1)) == 0


# -- schedule -----------------------------------------------------------------------------------------------


def _next_run(db_url: str, sub_id: str) -> datetime:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT next_run_at FROM epcis_subscription WHERE subscription_id = %s", (sub_id,))
        fire: datetime = row.fetchone()[0]  # type: ignore[index]
    return fire


def test_a_schedule_delivers_the_events_new_at_each_firing(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    sub_id = subscribe(
        client,
        keys["inspector"],
        {"EQ_bizStep": ["shipping"]},
        {"dest": receiver.url, "signatureToken": TOKEN, "schedule": {"minute": "0"}, "reportIfEmpty": True},
    )
    fire = _next_run(db_url, sub_id)
    assert (fire.minute, fire.second) == (0, 0)
    worker = SubscriptionWorker(db_url)
    assert worker.run_once(fire - timedelta(seconds=1)) == 0
    worker.run_once(fire)  # nothing new: an empty report (reportIfEmpty)
    assert [(r.event_ids, signed_right(r)) for r in receiver.requests] == [([], True)]
    ids = append(db_url, shipped(1, sgtin(GTIN_X, 1)), shipped(2, sgtin(GTIN_X, 2)))
    assert worker.run_once(fire + timedelta(minutes=59)) == 0  # not due
    worker.run_once(fire + timedelta(hours=1))
    assert [r.event_ids for r in receiver.requests] == [[], ids]
    assert {r.document["epcisBody"]["queryResults"]["subscriptionID"] for r in receiver.requests} == {sub_id}
    worker.run_once(fire + timedelta(hours=2))
    assert [r.event_ids for r in receiver.requests] == [[], ids, []]  # the next firing: nothing new


def test_a_schedule_without_report_if_empty_sends_nothing_when_nothing_is_new(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    sub_id = subscribe(
        client, keys["inspector"], {}, {"dest": receiver.url, "schedule": {"second": "0/30", "minute": "*"}}
    )
    fire = _next_run(db_url, sub_id)
    assert fire.second in (0, 30)
    worker = SubscriptionWorker(db_url)
    worker.run_once(fire)
    assert receiver.requests == []
    assert _next_run(db_url, sub_id) == fire + timedelta(seconds=30)
    ids = append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    worker.run_once(fire + timedelta(seconds=30))
    assert [r.event_ids for r in receiver.requests] == [ids]


# -- stopping -----------------------------------------------------------------------------------------------


def test_unsubscribing_drops_the_pending_delivery_and_stops_deliveries(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    sub_id = subscribe(client, keys["inspector"], {}, {"dest": receiver.url, "stream": True})
    append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    worker = SubscriptionWorker(db_url)
    worker.run_once(T0)
    assert len(pending(db_url)) == 1
    path = f"/epcis/queries/q/subscriptions/{sub_id}"
    assert client.delete(path, headers=as_key(keys["port"])).status_code == 403  # not its subscription
    assert client.delete(path, headers=as_key(keys["inspector"])).status_code == 204
    assert client.get(path, headers=as_key(keys["inspector"])).status_code == 404
    assert pending(db_url) == []
    append(db_url, shipped(2, sgtin(GTIN_X, 2)))
    assert worker.run_once(T0 + timedelta(hours=1)) == 0
    assert len(receiver.requests) == 1


def test_deleting_the_named_query_removes_its_subscriptions(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    subscribe(client, keys["inspector"], {}, {"dest": receiver.url, "stream": True})
    assert client.delete("/epcis/queries/q", headers=as_key(keys["port"])).status_code == 403
    assert client.delete("/epcis/queries/q", headers=as_key(keys["admin"])).status_code == 204
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM epcis_subscription").fetchone() == (0,)
    append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    assert SubscriptionWorker(db_url).run_once(T0) == 0
    assert receiver.requests == []


def test_a_revoked_keys_subscription_stops_and_its_delivery_is_held(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    failing = subscribe(client, keys["port"], {}, {"dest": receiver.url, "stream": True})
    append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    worker = SubscriptionWorker(db_url)
    worker.run_once(T0)
    assert len(receiver.requests) == 1
    idle = client.post(
        "/epcis/queries/q/subscriptions",
        json={"dest": receiver.url, "stream": True},
        headers=as_key(keys["port"]),
    )
    assert idle.status_code == 201  # nothing pending: it would deliver the next event
    with psycopg.connect(db_url) as conn:
        revoke_key(conn, keys["port"][:12])
        conn.commit()
    append(db_url, shipped(2, sgtin(GTIN_X, 2)))
    assert worker.run_once(T0 + timedelta(hours=1)) == 0
    assert len(receiver.requests) == 1  # the retry is not sent, and no delivery of the new event made
    assert [(sub, attempts, held) for sub, _, attempts, _, held in pending(db_url)] == [
        (failing, 1, HELD_NO_READ)
    ]


# -- in the running house ----------------------------------------------------------------------------------


def test_services_run_the_subscription_worker_beside_the_ledger_worker(
    db_url: str, keys: dict[str, str], receiver: Receiver
) -> None:
    services = Services(db_url, None, stages=("ledger", "api"))
    services.start()
    try:
        assert services.liveness()["subscriptions"]
        with httpx.Client(base_url=services.api_url, headers=as_key(keys["inspector"])) as api:
            made = api.post("/epcis/queries", json={"name": "all", "query": {}})
            assert made.status_code == 201, made.text
            sub = api.post(
                "/epcis/queries/all/subscriptions",
                json={"dest": receiver.url, "signatureToken": TOKEN, "stream": True},
            )
            assert sub.status_code == 201, sub.text
        ids = append(db_url, shipped(1, sgtin(GTIN_X, 1)))
        assert receiver.wait_accepted(1)
        assert receiver.accepted[0].event_ids == ids
        assert signed_right(receiver.accepted[0])
    finally:
        services.stop()


def test_a_delivery_pending_when_the_ledger_stage_stops_is_sent_after_it_starts_again(
    db_url: str, keys: dict[str, str], client: TestClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1_000_000  # down until the test says otherwise
    subscribe(client, keys["inspector"], {}, {"dest": receiver.url, "signatureToken": TOKEN, "stream": True})
    ids = append(db_url, shipped(1, sgtin(GTIN_X, 1)))
    services = Services(db_url, None, stages=("ledger",))
    services.start()
    try:
        with receiver.arrived:
            assert receiver.arrived.wait_for(lambda: len(receiver.requests) >= 1, timeout=30)
    finally:
        services.stop()
    [(_, key, attempts, _, held)] = pending(db_url)
    assert attempts >= 1
    assert held is None
    with receiver.arrived:
        receiver.fail_first = len(receiver.requests)  # the receiver is back
    services = Services(db_url, None, stages=("ledger",))
    services.start()
    try:
        assert receiver.wait_accepted(1)
    finally:
        services.stop()
    assert receiver.accepted[0].event_ids == ids
    assert signed_right(receiver.accepted[0])
    assert {r.headers[IDEMPOTENCY_HEADER.lower()] for r in receiver.requests} == {key}
    assert pending(db_url) == []

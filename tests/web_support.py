"""Tests: the inspector's desk's data: the demo world's chilled lot (truck excursion and gap, from
trace_support), a second lot that came by sea in a reefer container under a B/L and rail waybill, an open
alarm on the truck, a signed checkpoint, and API keys of each role; and the browser tests' chromium and
served app."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from playwright.sync_api import Browser, sync_playwright
from psycopg import sql
from trace_support import LOT, SSCC, S, build_scenario

from coldchain.embedded import free_port, with_database
from rules.alarms import lifecycle
from rules.worker import RulesWorker
from traceability.api.app import create_app
from traceability.api.auth import create_key
from traceability.api.options import ApiOptions
from traceability.epcis import builders, multimodal
from traceability.ledger import chain, checkpoint
from traceability.worker import LedgerWorker

SEA_LOT = "urn:epc:class:lgtin:8850000.012345.TH0301"
# Packed on the same pallet: the container and its documents lead to both lots.
SEA_LOT_2 = "urn:epc:class:lgtin:8850000.012345.TH0302"
SEA_SSCC = "urn:epc:id:sscc:8850000.0000000009"
CONTAINER = "CSQU3054383"
BILL_OF_LADING = "BL-LCB-778"
RAIL_WAYBILL = "WB-QZ-0042"
PORT, BONDED_GATE, MARKET = (
    "urn:epc:id:sgln:6901234.00010.0",
    "urn:epc:id:sgln:6901234.00030.0",
    "urn:epc:id:sgln:6901234.00040.0",
)
LINE, BUYER = "6901234100006", "6901234100037"
# The demo lot as a scanner reads its label: GTIN and batch.
GTIN, BATCH = "06901234123456", "QZ2611A"
SCANNED = f"(01){GTIN}(10){BATCH}"


@dataclass(frozen=True, slots=True)
class Desk:
    db_url: str
    ledger_key: Path
    operator_key: str
    inspector_key: str
    alarm_id: int


def _sea_lot(conn: psycopg.Connection[Any]) -> None:
    """A lot of Thai shrimp by sea in a reefer container (B/L), on by rail (waybill), released from bond."""
    conn.execute(
        "INSERT INTO party (party_id, name, role) VALUES (%s, 'Ocean line', 'carrier'),"
        " (%s, 'Nanning buyer', 'receiver')",
        (LINE, BUYER),
    )
    conn.execute(
        "INSERT INTO location (location_id, name, kind) VALUES (%s, 'Qinzhou port terminal', 'port'),"
        " (%s, 'Bonded zone gate', 'bonded_zone'), (%s, 'Nanning wholesale market', 'market')",
        (PORT, BONDED_GATE, MARKET),
    )
    conn.execute(
        "INSERT INTO asset (asset_id, epc, kind, name, mode) VALUES"
        " ('CONT-CSQU3054383', %s, 'reefer_container', 'Reefer CSQU3054383', 'transport')",
        (multimodal.container_epc(CONTAINER),),
    )
    conn.execute(
        "INSERT INTO lot (lot_id, gtin, batch, product_class, description, origin_country, hs_code,"
        " bonded_status) VALUES"
        " (%s, '08850000123456', 'TH0301', 'chilled', 'Chilled tiger prawn', 'TH', '030636', 'bonded'),"
        " (%s, '08850000123456', 'TH0302', 'chilled', 'Chilled tiger prawn', 'TH', '030636', 'bonded')",
        (SEA_LOT, SEA_LOT_2),
    )
    t0 = S - timedelta(days=3)
    docs = multimodal.biz_transactions(bill_of_lading=BILL_OF_LADING, through_document="TD-2026-1")
    rail_docs = multimodal.biz_transactions(rail_waybill=RAIL_WAYBILL, through_document="TD-2026-1")
    sea = multimodal.conveyance("sea", vessel="IMO9876543", voyage="V031")
    train = multimodal.conveyance("rail", train="X9101")
    events = [
        builders.with_event_id(
            builders.aggregation_event(
                event_time=t0 - timedelta(hours=2),
                action="ADD",
                parent_id=SEA_SSCC,
                child_quantities=[
                    builders.quantity(SEA_LOT, 500, "KGM"),
                    builders.quantity(SEA_LOT_2, 300, "KGM"),
                ],
                biz_step="packing",
            )
        ),
        multimodal.stuffing(
            t=t0 - timedelta(hours=1), container=CONTAINER, units=[SEA_SSCC], location=PORT, transactions=docs
        ),
        multimodal.movement(
            t=t0,
            step="departing",
            epcs=[SEA_SSCC],
            location=PORT,
            conveyance_ext=sea,
            custodian=LINE,
            transactions=docs,
        ),
        multimodal.bonded(
            t=t0 + timedelta(hours=11), lots=[SEA_LOT], status="bonded", line="first", location=BONDED_GATE
        ),
        multimodal.movement(
            t=t0 + timedelta(hours=12),
            step="departing",
            epcs=[SEA_SSCC],
            location=PORT,
            conveyance_ext=train,
            custodian=LINE,
            transactions=rail_docs,
        ),
        multimodal.unstuffing(
            t=t0 + timedelta(hours=20), container=CONTAINER, units=[SEA_SSCC], location=MARKET
        ),
        multimodal.bonded(
            t=t0 + timedelta(hours=30), lots=[SEA_LOT], status="released", line="second", location=BONDED_GATE
        ),
        multimodal.movement(
            t=t0 + timedelta(hours=31),
            step="receiving",
            epcs=[SEA_SSCC],
            location=MARKET,
            conveyance_ext=train,
            custodian=BUYER,
        ),
    ]
    chain.append_many(conn, events)
    conn.commit()


def _truck_alarm(conn: psycopg.Connection[Any]) -> int:
    """The truck's door-open excursion as an open alarm, raised the rules stage's way."""
    found = lifecycle.raise_or_update(
        conn,
        lifecycle.Condition(
            asset_id="TRUCK-GXA-12345",
            rule_id="cn_food/chilled/range",
            kind="excursion",
            severity="critical",
            series_id=None,
            product_class="chilled",
            pack_version="1.0.0",
            reason="out of range for 1800 s",
            condition_start=S + timedelta(hours=3),
            condition_end=S + timedelta(hours=3.5),
            peak_c=8.5,
            trigger_committed_at=None,
        ),
    )
    assert found is not None
    return int(found[1]["alarm_id"])


def seed_desk(db_url: str, key_dir: Path) -> Desk:
    build_scenario(db_url)
    with psycopg.connect(db_url) as conn:
        _sea_lot(conn)
    LedgerWorker(db_url).run_once()
    RulesWorker(db_url).run_once()
    ledger_key = key_dir / "ledger-ed25519.pem"
    with psycopg.connect(db_url) as conn:
        alarm_id = _truck_alarm(conn)
        checkpoint.sign_head(conn, checkpoint.load_or_create_key(ledger_key), now=datetime.now(UTC))
        operator = create_key(conn, "operator", "desk operator")
        inspector = create_key(conn, "inspector", "desk inspector")
        conn.commit()
    return Desk(db_url, ledger_key, operator, inspector, alarm_id)


@contextmanager
def module_database(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A database copied from the migrated template, dropped after (for fixtures wider than a test)."""
    name = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(template_db)))
    try:
        yield with_database(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 20.0


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright (its own browser download cannot work here)."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def serve(db_url: str, ledger_key: Path) -> Iterator[str]:
    """The API's app (pages included) under uvicorn on a free port; yields its base URL."""
    port = free_port()
    app = create_app(db_url, options=ApiOptions(ledger_key=ledger_key))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


__all__ = ["LOT", "SSCC", "Desk", "chromium", "module_database", "seed_desk", "serve"]

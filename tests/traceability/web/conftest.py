"""Tests: the web pages' fixtures: one seeded database per module (the desk's data), the app served on it
by uvicorn, and one chromium for the session."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright
from psycopg import sql
from web_support import Desk, seed_desk

from coldchain.embedded import free_port, with_database
from traceability.api.app import create_app
from traceability.api.options import ApiOptions

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def desk(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A database of the module's own, copied from the migrated template and seeded once."""
    name = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(template_db)))
    try:
        yield seed_desk(with_database(pg_server_url, name), Path(tmp_path_factory.mktemp("keys")))
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Debian chromium for the whole session, driven by Playwright (its own browser download cannot
    work here: the distribution's is used)."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def served(desk: Desk) -> Iterator[str]:
    """The API's app (pages included) under uvicorn on a free port, on the module's database."""
    port = free_port()
    app = create_app(desk.db_url, options=ApiOptions(ledger_key=desk.ledger_key))
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

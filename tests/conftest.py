"""Tests: fixtures that start a private PostgreSQL and a private MQTT broker (never mocks)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

from coldchain import embedded
from coldchain.embedded import EmbeddedBroker, EmbeddedPostgres, ensure_database, with_database
from coldchain.migrate import migrate
from coldchain.settings import BrokerAddress

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Hypothesis' per-example deadline is a wall-clock threshold: on a loaded machine it fails a property by
# timing, not by behaviour. Every property test runs without one.
settings.register_profile("coldchain", deadline=None)
settings.load_profile("coldchain")

MOSQUITTO_MISSING = (
    "no mosquitto binary: the tests need Mosquitto (MQTT 5) for their brokers. Install it with"
    " `apt-get install mosquitto` (make bootstrap does, as root), then run the tests again."
)


def pytest_configure(config: pytest.Config) -> None:
    """Stop at once, with one message, where the broker every MQTT test needs cannot start."""
    if embedded.mosquitto_binary() is None:
        raise pytest.UsageError(MOSQUITTO_MISSING)


def _shared_tmp() -> Path:
    """A directory the embedded servers' own user can reach.

    The embedded PostgreSQL runs as an unprivileged user when the tests run as root, and pytest resets
    its own tmp root to mode 0700 whenever another pytest session starts: so data lives elsewhere."""
    path = Path(tempfile.mkdtemp(prefix="coldchain-test-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def server_tmp() -> Iterator[Path]:
    """A fresh directory for this test's embedded servers (PostgreSQL data, broker store, COLDCHAIN_HOME)."""
    path = _shared_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def checkout_home_untouched() -> Iterator[None]:
    """No test leaves a data directory in the default home (``.coldchain`` under the working directory,
    the checkout under ``make test``): ``make demo`` run next would refuse its database as one the demo
    did not create. A test that runs a command gives it COLDCHAIN_HOME."""
    home = Path.cwd() / ".coldchain"
    existed = home.exists()
    yield
    assert existed or not home.exists(), f"a test made {home}: run its command with COLDCHAIN_HOME"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server the tests may create databases on: COLDCHAIN_TEST_DB_URL or a private one."""
    url = os.environ.get("COLDCHAIN_TEST_DB_URL")
    if url:
        yield url
        return
    root = _shared_tmp()
    pg = EmbeddedPostgres(root / "data")
    pg.start()
    try:
        yield pg.server_url
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated template database; each test's database is a cheap copy of it."""
    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    url = ensure_database(pg_server_url, name)
    migrate(url)
    _seal(pg_server_url, name)
    yield name
    _drop(pg_server_url, name)


def _seal(server_url: str, name: str) -> None:
    """No session connects to the template from now on, and any there is ended: CREATE DATABASE … TEMPLATE
    refuses (ObjectInUse) while one is connected, and on TimescaleDB its background workers connect to
    every database with the extension."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def _drop(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def _template_copy(server_url: str, template: str) -> Iterator[str]:
    """A fresh database copied from the migrated template, dropped on exit."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    try:
        yield with_database(server_url, name)
    finally:
        _drop(server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, fully migrated database of this test's own."""
    with _template_copy(pg_server_url, template_db) as url:
        yield url


@pytest.fixture
def second_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A second fresh, fully migrated database of this test's own (e.g. for an uninterrupted run)."""
    with _template_copy(pg_server_url, template_db) as url:
        yield url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to this test's own database."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    url = ensure_database(pg_server_url, name)
    yield url
    _drop(pg_server_url, name)


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerAddress]:
    """A broker shared by the session: COLDCHAIN_TEST_MQTT_URL (mqtt://host:port, anonymous or
    mqtt://user:password@host:port) or a private Mosquitto on a free port.

    Tests sharing it use their own device ids and client ids so they do not see each other, and clear
    what they retain; the gateway takes no retained messages at subscribe, so other runs' retained
    device messages do not reach a test's database. A reused broker must queue and admit what the
    private one does (deploy/mosquitto/mosquitto.conf: max_queued_messages 100000, max_packet_size
    1114112): with mosquitto's default of 1000 queued messages, the outage tests' bench load is dropped
    while their gateway restarts."""
    url = os.environ.get("COLDCHAIN_TEST_MQTT_URL")
    if url:
        yield BrokerAddress.parse(url)
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("mqtt"))
    broker.start()
    try:
        yield broker.address
    finally:
        broker.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, which the test may stop and restart."""
    broker = EmbeddedBroker(tmp_path / "mqtt")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Debian chromium for the whole session, driven by Playwright (web_support.chromium); one, since
    Playwright's sync API runs one driver per thread."""
    from web_support import chromium

    with chromium() as launched:
        yield launched

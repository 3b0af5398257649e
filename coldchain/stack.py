"""Composition root: the stack: the configured or embedded database and broker, opened and stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType

import psycopg
from pydantic import SecretStr

from coldchain.datadir import DataDir, Servers, StackUnavailableError
from coldchain.embedded import (
    MOSQUITTO_STORE,
    BrokerNeedsMosquittoError,
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    port_is_free,
)
from coldchain.migrate import migrate
from coldchain.settings import BrokerAddress, Settings
from gateway.credentials import ensure_stage_logins, read_stage_logins
from gateway.limits import PACKET_OVERHEAD_BYTES

log = logging.getLogger(__name__)

# Seconds to wait for the database's first answer before saying it is unreachable (libpq's own default
# is to wait for ever).
DB_CONNECT_TIMEOUT_S = 10


@dataclass
class Stack:
    """Where the database and the broker are, and the embedded servers this process owns (if any).

    `logins` holds the stages' own broker passwords when the broker is the embedded one."""

    database_url: str
    broker: BrokerAddress | None
    embedded_pg: EmbeddedPostgres | None = None
    embedded_broker: EmbeddedBroker | None = None
    logins: Mapping[str, str] = field(default_factory=dict)

    def broker_as(self, user: str) -> BrokerAddress | None:
        """The broker with `user`'s login (a stage or the simulator); the configured broker as it is."""
        if self.broker is None or user not in self.logins:
            return self.broker
        return self.broker.model_copy(update={"username": user, "password": SecretStr(self.logins[user])})

    def stage_brokers(self) -> dict[str, BrokerAddress]:
        """Each stage's own login on the embedded broker (empty for a configured broker)."""
        brokers = {user: self.broker_as(user) for user in self.logins}
        return {user: b for user, b in brokers.items() if b is not None}


def _sigterm_to_keyboard_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so every embedded server stops and nothing stray is left."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def open_stack(
    settings: Settings,
    *,
    broker: bool = False,
    apply_migrations: bool = True,
    must_exist: bool = False,
    exclusive: bool = False,
    fresh_broker_store: bool = False,
) -> Iterator[Stack]:
    """The configured database/broker, or private ones under COLDCHAIN_HOME, stopped on exit.

    One process at a time owns the private servers (a lock in COLDCHAIN_HOME); another command attaches
    to them, unless `exclusive` (it refuses then). `must_exist`: a read-only command, which refuses a
    data directory holding no database instead of creating one. `fresh_broker_store`: the embedded
    broker starts without the sessions and queued messages of an earlier run. Failures to open are a
    StackError: one line for the user and its exit code."""
    _sigterm_to_keyboard_interrupt()
    address = settings.broker()
    embedded_db = settings.database_url is None
    embedded_mqtt = broker and address is None
    with contextlib.ExitStack() as stack:
        if not (embedded_db or embedded_mqtt):
            assert settings.database_url is not None
            database_url = settings.database_url.get_secret_value()
            _probe_database(database_url)
            if apply_migrations:
                migrate(database_url)
            yield Stack(database_url, address)
            return
        data = DataDir(settings.home)
        data.check(must_exist=must_exist and embedded_db)
        attached: Servers | None = None
        if not data.try_lock():
            if exclusive:
                raise data.in_use()
            attached = data.attach(broker=embedded_mqtt)
        if attached is None:
            stack.callback(data.release)
            yield _own_servers(
                stack,
                settings,
                data,
                broker=embedded_mqtt,
                apply_migrations=apply_migrations,
                fresh_broker_store=fresh_broker_store,
            )
            return
        # Attached: the owner's servers, which it alone starts and stops.
        if embedded_db:
            if attached.database_url is None:
                raise data.in_use()
            database_url = attached.database_url
        else:
            assert settings.database_url is not None
            database_url = settings.database_url.get_secret_value()
        _probe_database(database_url)
        if apply_migrations:
            migrate(database_url)
        logins: Mapping[str, str] = {}
        if embedded_mqtt:
            assert attached.broker_port is not None
            address = BrokerAddress(host="127.0.0.1", port=attached.broker_port, mqtt5=attached.broker_mqtt5)
            logins = read_stage_logins(data.passwd_file)
        yield Stack(database_url, address, logins=logins)


def _own_servers(
    stack: contextlib.ExitStack,
    settings: Settings,
    data: DataDir,
    *,
    broker: bool,
    apply_migrations: bool,
    fresh_broker_store: bool,
) -> Stack:
    """Start the private servers of the data directory this process has locked, and publish them."""
    pg: EmbeddedPostgres | None = None
    server_url: str | None = None
    if settings.database_url is not None:
        database_url = settings.database_url.get_secret_value()
        _probe_database(database_url)
    else:
        pg = EmbeddedPostgres(data.pgdata)
        try:
            database_url = pg.start()
        except Exception:
            log.debug("embedded PostgreSQL did not start", exc_info=True)
            raise StackUnavailableError(
                f"the embedded PostgreSQL in {data.pgdata} did not start (its log: {data.pgdata / 'log'})"
            ) from None
        stack.callback(pg.stop)
        server_url = pg.server_url
    if apply_migrations:
        migrate(database_url)
    address = settings.broker()
    mqtt: EmbeddedBroker | None = None
    logins: Mapping[str, str] = {}
    if broker:
        passwd, acl = data.passwd_file, data.acl_file
        logins = ensure_stage_logins(passwd, acl)
        if fresh_broker_store:
            (data.mqtt / MOSQUITTO_STORE).unlink(missing_ok=True)
        mqtt = EmbeddedBroker(
            data.mqtt,
            _broker_port(data),
            password_file=passwd,
            acl_file=acl,
            max_packet_bytes=settings.gateway_max_payload_bytes + PACKET_OVERHEAD_BYTES,
        )
        try:
            address = mqtt.start()
        except BrokerNeedsMosquittoError as exc:
            raise StackUnavailableError(str(exc)) from None
        except TimeoutError:
            raise StackUnavailableError(
                f"the embedded broker did not start on 127.0.0.1:{mqtt.port}"
                f" (its log: {data.mqtt / 'mosquitto.log'})"
            ) from None
        stack.callback(mqtt.stop)
        data.keep_broker_port(mqtt.port)
    data.publish(
        Servers(
            pid=os.getpid(),
            database_url=database_url if pg is not None else None,
            server_url=server_url,
            broker_port=mqtt.port if mqtt is not None else None,
            broker_pid=mqtt.pid if mqtt is not None else None,
            broker_mqtt5=address.mqtt5 if address is not None else True,
        )
    )
    return Stack(database_url, address, pg, mqtt, logins)


def _broker_port(data: DataDir) -> int:
    """The port the data directory's broker had before (devices keep it), or a free one, said so."""
    kept = data.kept_broker_port()
    if kept is None:
        return free_port()
    if port_is_free(kept):
        return kept
    port = free_port()
    log.warning(
        "the embedded broker's port %d (kept in %s) is taken by another program: it listens on %d now,"
        " and devices configured for %d must be told",
        kept,
        data.mqtt / "port",
        port,
        kept,
    )
    return port


def _probe_database(database_url: str) -> None:
    """One connection up front: an unreachable database is one clear line, not a traceback later."""
    try:
        with psycopg.connect(database_url, connect_timeout=DB_CONNECT_TIMEOUT_S):
            pass
    except psycopg.Error:
        log.debug("database probe failed", exc_info=True)
        raise StackUnavailableError(
            f"cannot reach the database at {_describe(database_url)} (COLDCHAIN_DATABASE_URL)"
        ) from None


def _describe(database_url: str) -> str:
    """host:port/dbname of a database URL, without its credentials."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(database_url)
    except psycopg.ProgrammingError:
        return "the configured URL"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or ''}"

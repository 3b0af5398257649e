"""Composition root: resolves the database and broker (configured or embedded) and runs the stages."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

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
from gateway.limits import DEFAULT_LIMITS, PACKET_OVERHEAD_BYTES, IngestLimits

if TYPE_CHECKING:
    from traceability.api.options import ApiOptions

log = logging.getLogger(__name__)

STAGES = ("gateway", "rules", "ledger", "api")
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


def mqtt_client(broker: BrokerAddress, client_id: str) -> Any:
    """A paho client connecting in the background (reconnecting with backoff) to the broker."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if broker.mqtt5 else mqtt.MQTTv311,
    )
    if broker.username:
        client.username_pw_set(
            broker.username, broker.password.get_secret_value() if broker.password else None
        )
    if broker.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.connect_async(broker.host, broker.port)
    client.loop_start()
    return client


def _closer(client: Any) -> Callable[[], None]:
    """What stops a paho client of a stage once the stage has stopped: disconnect, then its loop."""

    def close() -> None:
        client.disconnect()
        client.loop_stop()

    return close


class _Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class _Worker:
    """A stage worker (run_forever on a stop event) on its own thread."""

    name: str
    target: object
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None
    after_stop: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        def run() -> None:
            try:
                self.target.run_forever(self.stop_event)  # type: ignore[attr-defined]
            except BaseException as exc:  # the supervisor reports it; the worker must not vanish silently
                self.error = exc
                log.exception("%s worker failed", self.name)

        self.thread = threading.Thread(target=run, name=f"coldchain-{self.name}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        for after in self.after_stop:
            after()


def api_options(settings: Settings) -> ApiOptions:
    """The API's options from the settings: its pool, what capture accepts, and the ledger key it
    verifies checkpoints against (the public half of the key file under COLDCHAIN_HOME)."""
    from traceability.api.options import ApiOptions
    from traceability.epcis.capture import CaptureLimits
    from traceability.ledger.checkpoint import KEY_FILE

    return ApiOptions(
        pool_size=settings.api_pool_size,
        pool_timeout_s=settings.api_pool_timeout_s,
        capture=CaptureLimits(
            document_bytes=settings.capture_max_document_bytes,
            event_bytes=settings.capture_max_event_bytes,
            depth=settings.capture_max_depth,
            list_items=settings.capture_max_list_items,
            future_skew_s=settings.capture_future_skew_s,
            time_floor=settings.capture_time_floor,
        ),
        ledger_key=settings.home / KEY_FILE,
    )


def gateway_limits(settings: Settings) -> IngestLimits:
    """The gateway's limits from the settings."""
    return settings.gateway_limits()


class _ApiServer:
    """The FastAPI app under uvicorn on a thread. ``liveness`` (each stage alive?) is what /health
    reports; its pool and capture limits come from the settings."""

    def __init__(
        self,
        database_url: str,
        host: str,
        port: int,
        *,
        liveness: Callable[[], Mapping[str, bool]] | None = None,
        options: ApiOptions | None = None,
    ) -> None:
        self.database_url, self.host, self.port = database_url, host, port
        self.liveness = liveness
        self.options = options
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        import uvicorn

        from traceability.api.app import create_app

        app = create_app(self.database_url, options=self.options, liveness=self.liveness)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, name="coldchain-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=15)


class Services:
    """Every stage of the house in one process: gateway, rules worker, ledger worker, API."""

    def __init__(
        self,
        database_url: str,
        broker: BrokerAddress | None,
        *,
        stages: tuple[str, ...] = STAGES,
        api_host: str = "127.0.0.1",
        api_port: int = 0,
        gateway_client_id: str = "coldchain-gateway",
        alert_webhooks: Sequence[str] = (),
        alert_webhook_secret: str | None = None,
        spool_dir: Path | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        checkpoint_key: Path | None = None,
        checkpoint_every_s: float = 60.0,
        stage_brokers: Mapping[str, BrokerAddress] | None = None,
        gateway_limits: IngestLimits | None = None,
        api_options: ApiOptions | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.database_url = database_url
        # What the settings say (runtime.gateway_limits / runtime.api_options); None: the defaults.
        self.gateway_limits = gateway_limits
        # With settings, the gateway is configured from them (GatewayConfig.from_settings), as `python -m
        # gateway` is; the database, broker and spool directory are still this runtime's.
        self.settings = settings
        self.api_options = api_options
        self.broker = broker
        # Each stage's own login on the broker (Stack.stage_brokers); a stage not named uses `broker`.
        self.stage_brokers = dict(stage_brokers or {})
        self.stages = stages
        self.api_host = api_host
        self.api_port = api_port or free_port(api_host)
        self.gateway_client_id = gateway_client_id
        self.alert_webhooks = tuple(alert_webhooks)
        self.alert_webhook_secret = alert_webhook_secret
        self.spool_dir = spool_dir
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.checkpoint_key = checkpoint_key
        self.checkpoint_every_s = checkpoint_every_s
        self.gateway: object | None = None
        self.api: _ApiServer | None = None
        self._started: list[_Component] = []

    @property
    def api_url(self) -> str:
        assert self.api is not None, "the api stage is not running"
        return self.api.url

    def _broker_for(self, stage: str) -> BrokerAddress | None:
        return self.stage_brokers.get(stage, self.broker)

    def start(self) -> None:
        try:
            if "rules" in self.stages:
                from rules.alarms import Webhook
                from rules.worker import RulesWorker

                secret = (self.alert_webhook_secret or "").encode()
                alerts_broker = self._broker_for("rules")
                publisher = (
                    mqtt_client(alerts_broker, f"{self.gateway_client_id}-alerts") if alerts_broker else None
                )
                rules_worker = RulesWorker(
                    self.database_url,
                    alert_publisher=publisher,
                    webhooks=[Webhook(url, secret) for url in self.alert_webhooks],
                )
                worker = _Worker("rules", rules_worker)
                if publisher is not None:
                    worker.after_stop.append(_closer(publisher))
                self._start(worker)
            if "ledger" in self.stages:
                from traceability.worker import LedgerWorker

                self._start(_Worker("ledger", LedgerWorker(self.database_url)))
                if self.checkpoint_key is not None:
                    from coldchain.publish import mqtt_sink, webhook_sink
                    from rules.alarms import Webhook
                    from traceability.ledger.checkpoint import CheckpointWorker, Sink

                    # Each checkpoint also goes outside the database as it is made: the log beside the key
                    # (the worker's own), a retained MQTT message, the alert webhooks.
                    sinks: list[Sink] = []
                    ledger_broker = self._broker_for("ledger")
                    cp_client = (
                        mqtt_client(ledger_broker, f"{self.gateway_client_id}-checkpoints")
                        if ledger_broker
                        else None
                    )
                    if cp_client is not None:
                        sinks.append(mqtt_sink(cp_client))
                    if self.alert_webhooks:
                        secret = (self.alert_webhook_secret or "").encode()
                        sinks.append(webhook_sink([Webhook(url, secret) for url in self.alert_webhooks]))
                    checkpoints = CheckpointWorker(
                        self.database_url, self.checkpoint_key, every_s=self.checkpoint_every_s, sinks=sinks
                    )
                    cp_worker = _Worker("checkpoint", checkpoints)
                    if cp_client is not None:
                        cp_worker.after_stop.append(_closer(cp_client))
                    self._start(cp_worker)
            if "gateway" in self.stages:
                from gateway.config import GatewayConfig
                from gateway.pipeline import GatewayService

                gw_broker = self._broker_for("gateway")
                if gw_broker is None:
                    raise RuntimeError("the gateway needs a broker")
                if self.settings is not None:
                    config = GatewayConfig.from_settings(
                        self.settings,
                        database_url=self.database_url,
                        broker=gw_broker,
                        spool_dir=self.spool_dir,
                    )
                else:
                    config = GatewayConfig(
                        database_url=self.database_url,
                        broker=gw_broker,
                        client_id=self.gateway_client_id,
                        # amqtt speaks MQTT 3.1.1: no shared subscriptions there.
                        shared_group="gateways" if gw_broker.mqtt5 else None,
                        # While the database is down, batches are spooled here and acknowledged.
                        spool_dir=self.spool_dir,
                        metrics_port=self.metrics_port or None,
                        metrics_host=self.metrics_host,
                        limits=self.gateway_limits or DEFAULT_LIMITS,
                    )
                gw = GatewayService(config)
                self.gateway = gw
                self._start(gw)
            if "api" in self.stages:
                self.api = _ApiServer(
                    self.database_url,
                    self.api_host,
                    self.api_port,
                    liveness=self.liveness,
                    options=self.api_options,
                )
                self._start(self.api)
        except BaseException:
            self.stop()
            raise

    def _start(self, component: _Component) -> None:
        component.start()
        self._started.append(component)

    def stop(self) -> None:
        # Upstream first: the gateway drains into the database, then the workers finish their rows.
        for component in self._started:
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self._started.clear()

    def liveness(self) -> dict[str, bool]:
        """Each running stage's threads: alive or not (what /health reports). Reads flags only: it is
        called from the API's event loop and must not block."""
        alive: dict[str, bool] = {}
        for component in list(self._started):
            if isinstance(component, _Worker):
                thread = component.thread
                alive[component.name] = thread is not None and thread.is_alive() and component.error is None
            elif component is self.gateway:
                for role, ok in self.gateway.liveness().items():  # type: ignore[attr-defined]
                    alive[f"gateway.{role}"] = ok
            elif component is self.api:
                alive["api"] = True  # it is answering this very question
        return alive

    def failures(self) -> list[str]:
        found = [f"{c.name}: {c.error!r}" for c in self._started if isinstance(c, _Worker) and c.error]
        gateway_error = getattr(self.gateway, "error", None)
        if gateway_error is not None:
            found.append(f"gateway: {gateway_error!r}")
        return found

    def gateway_error(self) -> BaseException | None:
        error: BaseException | None = getattr(self.gateway, "error", None)
        return error

    def wait_settled(self, timeout_s: float = 60.0) -> bool:
        """True once the gateway is idle and both outboxes (ingest_batch, verdict_outbox) are empty."""
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            quiet_rounds = 0
            while time.monotonic() < deadline:
                if self.failures():
                    raise RuntimeError("a stage failed: " + "; ".join(self.failures()))
                idle = True
                if self.gateway is not None:
                    idle = bool(self.gateway.wait_idle(0.5))  # type: ignore[attr-defined]
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM ingest_batch) + (SELECT count(*) FROM verdict_outbox)"
                ).fetchone()
                pending = int(row[0]) if row else 0
                quiet_rounds = quiet_rounds + 1 if idle and pending == 0 else 0
                if quiet_rounds >= 3:  # three quiet looks in a row: nothing left in flight between stages
                    return True
                time.sleep(0.2)
        return False

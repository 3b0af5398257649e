"""Composition root: resolves the database and broker (configured or embedded) and runs the stages."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import psycopg

from coldchain.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from coldchain.migrate import migrate
from coldchain.settings import BrokerAddress, Settings

log = logging.getLogger(__name__)

STAGES = ("gateway", "rules", "ledger", "api")


@dataclass
class Stack:
    """Where the database and the broker are, and the embedded servers this process owns (if any)."""

    database_url: str
    broker: BrokerAddress | None
    embedded_pg: EmbeddedPostgres | None = None
    embedded_broker: EmbeddedBroker | None = None


def _sigterm_to_keyboard_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so every embedded server stops and nothing stray is left."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def open_stack(settings: Settings, *, broker: bool = False, apply_migrations: bool = True) -> Iterator[Stack]:
    """The configured database/broker, or private ones under COLDCHAIN_HOME, stopped on exit."""
    _sigterm_to_keyboard_interrupt()
    with contextlib.ExitStack() as stack:
        pg: EmbeddedPostgres | None = None
        if settings.database_url is not None:
            database_url = settings.database_url.get_secret_value()
        else:
            pg = EmbeddedPostgres(settings.home / "pgdata")
            database_url = pg.start()
            stack.callback(pg.stop)
        if apply_migrations:
            migrate(database_url)
        address = settings.broker()
        mqtt: EmbeddedBroker | None = None
        if broker and address is None:
            mqtt = EmbeddedBroker(settings.home / "mqtt")
            address = mqtt.start()
            stack.callback(mqtt.stop)
        yield Stack(database_url, address, pg, mqtt)


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


class _ApiServer:
    """The FastAPI app under uvicorn on a thread."""

    def __init__(self, database_url: str, host: str, port: int) -> None:
        self.database_url, self.host, self.port = database_url, host, port
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        import uvicorn

        from traceability.api import create_app

        config = uvicorn.Config(
            create_app(self.database_url), host=self.host, port=self.port, log_level="warning", lifespan="on"
        )
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
    ) -> None:
        self.database_url = database_url
        self.broker = broker
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

    def start(self) -> None:
        try:
            if "rules" in self.stages:
                from rules.alarms import Webhook
                from rules.worker import RulesWorker

                secret = (self.alert_webhook_secret or "").encode()
                publisher = (
                    mqtt_client(self.broker, f"{self.gateway_client_id}-alerts") if self.broker else None
                )
                rules_worker = RulesWorker(
                    self.database_url,
                    alert_publisher=publisher,
                    webhooks=[Webhook(url, secret) for url in self.alert_webhooks],
                )
                worker = _Worker("rules", rules_worker)
                if publisher is not None:

                    def close_publisher(client: Any = publisher) -> None:
                        client.disconnect()
                        client.loop_stop()

                    worker.after_stop.append(close_publisher)
                self._start(worker)
            if "ledger" in self.stages:
                from traceability.worker import LedgerWorker

                self._start(_Worker("ledger", LedgerWorker(self.database_url)))
                if self.checkpoint_key is not None:
                    from traceability.checkpoint import CheckpointWorker

                    checkpoints = CheckpointWorker(
                        self.database_url, self.checkpoint_key, every_s=self.checkpoint_every_s
                    )
                    self._start(_Worker("checkpoint", checkpoints))
            if "gateway" in self.stages:
                from gateway.service import GatewayService

                if self.broker is None:
                    raise RuntimeError("the gateway needs a broker")
                gw = GatewayService(
                    self.database_url,
                    self.broker.host,
                    self.broker.port,
                    username=self.broker.username,
                    password=self.broker.password.get_secret_value() if self.broker.password else None,
                    client_id=self.gateway_client_id,
                    # amqtt speaks MQTT 3.1.1: no shared subscriptions there.
                    mqtt5=self.broker.mqtt5,
                    shared_group="gateways" if self.broker.mqtt5 else None,
                    # While the database is down, batches are spooled here and acknowledged.
                    spool_dir=self.spool_dir,
                    metrics_port=self.metrics_port or None,
                    metrics_host=self.metrics_host,
                )
                self.gateway = gw
                self._start(gw)
            if "api" in self.stages:
                self.api = _ApiServer(self.database_url, self.api_host, self.api_port)
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

"""Composition root: the stages in one process: each started on its thread, supervised, stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from coldchain.embedded import free_port
from coldchain.settings import BrokerAddress, Settings
from gateway.limits import DEFAULT_LIMITS, IngestLimits

if TYPE_CHECKING:
    from traceability.api.options import ApiOptions

log = logging.getLogger(__name__)

STAGES = ("gateway", "rules", "ledger", "api")


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
        map_tile_url=settings.map_tile_url,
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
                self._serve_metrics("rules", rules_worker.metrics.registry, worker)
                if self.settings is not None and self.settings.alarm_duties_file is not None:
                    self._start_duties(self.settings, alerts_broker, secret)
                else:
                    log.warning(
                        "no alarm duties file (COLDCHAIN_ALARM_DUTIES_FILE): alarms reach no designated"
                        " people, which the drug GSP requires for drug classes"
                    )
            if "ledger" in self.stages:
                from traceability.metrics import VERIFY_EVERY_S, LedgerMetrics
                from traceability.subscriptions.worker import SubscriptionWorker
                from traceability.worker import LedgerWorker

                every = self.settings.ledger_verify_every_s if self.settings is not None else VERIFY_EVERY_S
                metrics = LedgerMetrics(
                    self.database_url, ledger_key=self.checkpoint_key, verify_every_s=every
                )
                ledger = _Worker("ledger", LedgerWorker(self.database_url, metrics=metrics))
                self._start(ledger)
                if self._serve_metrics("ledger", metrics.registry, ledger):
                    # The chain verified on a timer, for coldchain_ledger_verify_ok (only when served).
                    self._start(_Worker("ledger-verify", metrics))
                from traceability.capture_worker import CaptureWorker
                from traceability.epcis.capture import DEFAULT_LIMITS as CAPTURE_LIMITS

                # The capture jobs POST /epcis/capture queues, under the same limits as the API's.
                limits = self.api_options.capture if self.api_options is not None else CAPTURE_LIMITS
                capture_worker = CaptureWorker(self.database_url, limits, check_process=True)
                self._start(_Worker("capture", capture_worker))
                # EPCIS query subscriptions: their webhook deliveries, from the events the ledger appends.
                self._start(_Worker("subscriptions", SubscriptionWorker(self.database_url)))
                from traceability.scorecards.facts import ShipmentFactWorker

                # The scorecards' shipment facts: each finished shipment judged once its data has settled.
                self._start(_Worker("shipment-facts", ShipmentFactWorker(self.database_url)))
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

    def _serve_metrics(self, stage: str, registry: Any, worker: _Worker) -> bool:
        """Serve the stage's metrics on the port its settings give (none without settings, or at port 0),
        until its worker stops; whether they are served."""
        s = self.settings
        if s is None:
            return False
        host, port = {
            "rules": (s.rules_metrics_host, s.rules_metrics_port),
            "ledger": (s.ledger_metrics_host, s.ledger_metrics_port),
        }[stage]
        if not port:
            return False
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, host, registry=registry)

        def close() -> None:
            server.shutdown()
            server.server_close()

        worker.after_stop.append(close)
        return True

    def _start_duties(self, settings: Settings, broker: BrokerAddress | None, secret: bytes) -> None:
        """The alarm escalator (rules.alarms.escalation): a worker of its own beside the rules worker."""
        from rules.alarms.escalation import DutyEscalator, Senders, SmtpConfig

        smtp = None
        if settings.smtp_host is not None:
            smtp = SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                user=settings.smtp_user,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                starttls=settings.smtp_starttls,
            )
        client = mqtt_client(broker, f"{self.gateway_client_id}-duty") if broker else None
        senders = Senders(smtp=smtp, mqtt=client, webhook_secret=secret)
        worker = _Worker("duties", DutyEscalator(self.database_url, settings.duties(), senders))
        if client is not None:
            worker.after_stop.append(_closer(client))
        self._start(worker)

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
        """True once the gateway is idle, the outboxes (ingest_batch, verdict_outbox, geofence_outbox) and
        the rollups' queue (rollup_pending) are empty and, when the rules stage runs here, it has judged
        the custody changes of every ledger entry (``custody_watermark`` at the ledger's head: the lots
        whose legs the last entries moved are judged after the outboxes empty)."""
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
                    " + (SELECT count(*) FROM geofence_outbox) + (SELECT count(*) FROM rollup_pending)"
                    " + (SELECT count(*) FROM custody_watermark WHERE %s"
                    "    AND judged_seq < (SELECT coalesce(max(seq), 0) FROM ledger_event))",
                    ("rules" in self.stages,),
                ).fetchone()
                pending = int(row[0]) if row else 0
                quiet_rounds = quiet_rounds + 1 if idle and pending == 0 else 0
                if quiet_rounds >= 3:  # three quiet looks in a row: nothing left in flight between stages
                    return True
                time.sleep(0.2)
        return False

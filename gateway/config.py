"""Stage 1 (ingest): the gateway's settings (COLDCHAIN_* variables) and its one frozen GatewayConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.limits import (
    DEAD_LETTER_PREFIX_BYTES,
    DEFAULT_LIMITS,
    MAX_PAYLOAD_BYTES,
    SEQ_JUMP_MAX,
    IngestLimits,
)


class BrokerAddress(BaseModel):
    """Where an MQTT broker listens, and the credentials to use there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    # MQTT 5 (shared subscriptions, session expiry) unless the broker only speaks 3.1.1 (amqtt).
    mqtt5: bool = True

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL scheme must be mqtt:// or mqtts://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("broker URL has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
            tls=tls,
        )

    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


class GatewaySettings(BaseSettings):
    """The settings the gateway reads; coldchain.settings.Settings extends them with every other stage's."""

    model_config = SettingsConfigDict(env_prefix="COLDCHAIN_", frozen=True, extra="ignore")

    database_url: SecretStr | None = None
    broker_url: str | None = None
    # A file holding the broker password (a mounted secret, one line): the password never sits on argv
    # and need not sit in the broker URL.
    broker_password_file: Path | None = None
    # Prometheus /metrics of the gateway (0 = off); 9108 sits beside the usual exporter ports.
    gateway_metrics_port: int = Field(default=9108, ge=0, le=65535)
    gateway_metrics_host: str = "127.0.0.1"
    # Each gateway replica needs its own client id (the broker keeps one session per id).
    gateway_client_id: str = Field(default="coldchain-gateway", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # Replicas in one shared-subscription group share the load; "" subscribes plainly (one gateway).
    gateway_shared_group: str = Field(default="gateways", pattern=r"^[A-Za-z0-9._-]{0,64}$")
    # While the database is down, `python -m gateway` spools here (unset: it waits instead);
    # `coldchain run` spools under COLDCHAIN_HOME/spool.
    gateway_spool_dir: Path | None = None
    # Messages per transaction, and writer threads (one database connection each).
    gateway_max_batch: int = Field(default=500, ge=1, le=100_000)
    gateway_writers: int = Field(default=2, ge=1, le=64)
    # ---- ingest limits (defaults and their reasons in gateway/limits.py)
    # Payloads larger than this are dead-lettered unread (payload_too_large); 256 MiB is MQTT's own cap.
    gateway_max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=1, le=268_435_455)
    # A dead letter keeps this many leading bytes of its payload, with the whole length and sha256.
    gateway_dead_letter_prefix_bytes: int = Field(default=DEAD_LETTER_PREFIX_BYTES, ge=0)
    # A (boot, seq) jump beyond this many readings is a device anomaly, not missing readings.
    gateway_seq_jump_max: int = Field(default=SEQ_JUMP_MAX, ge=1)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, v: str | None) -> str | None:
        if v is not None:
            BrokerAddress.parse(v)
        return v

    def broker(self) -> BrokerAddress | None:
        """The broker of broker_url, its password read from broker_password_file when that is set.

        Raises OSError or UnicodeDecodeError when the password file cannot be read."""
        if not self.broker_url:
            return None
        address = BrokerAddress.parse(self.broker_url)
        if self.broker_password_file is not None:
            password = self.broker_password_file.read_text(encoding="utf-8").rstrip("\r\n")
            address = address.model_copy(update={"password": SecretStr(password)})
        return address

    def gateway_limits(self) -> IngestLimits:
        """The ingest limits these settings give."""
        return IngestLimits(
            max_payload_bytes=self.gateway_max_payload_bytes,
            dead_letter_prefix_bytes=self.gateway_dead_letter_prefix_bytes,
            seq_jump_max=self.gateway_seq_jump_max,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """Everything one gateway needs, fixed before it starts (build it with from_settings)."""

    database_url: str
    broker: BrokerAddress
    client_id: str = "coldchain-gateway"
    # None: a plain subscription (MQTT 3.1.1 brokers such as amqtt have no shared subscriptions).
    shared_group: str | None = "gateways"
    max_batch: int = 500  # messages per transaction
    writers: int = 2  # writer threads, each with its own database connection
    max_wait_s: float = 0.05  # how long a batch waits to fill once its first message is in
    queue_size: int = 10_000
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    spool_dir: Path | None = None  # None: no spool; the writers wait for the database (backpressure)
    spool_max_bytes: int = 1 << 30
    metrics_port: int | None = None  # None: no /metrics server (0: any free port)
    metrics_host: str = "127.0.0.1"
    limits: IngestLimits = DEFAULT_LIMITS

    @classmethod
    def from_settings(
        cls,
        settings: GatewaySettings,
        *,
        database_url: str | None = None,
        broker: BrokerAddress | None = None,
        spool_dir: Path | None = None,
    ) -> GatewayConfig:
        """The config the settings give; `database_url`, `broker` and `spool_dir` stand in for the
        settings' own (e.g. the embedded database and broker of `coldchain run`)."""
        if database_url is None:
            if settings.database_url is None:
                raise ValueError("the gateway needs a database: set COLDCHAIN_DATABASE_URL")
            database_url = settings.database_url.get_secret_value()
        if broker is None:
            broker = settings.broker()
            if broker is None:
                raise ValueError("the gateway needs a broker: set COLDCHAIN_BROKER_URL")
        group = settings.gateway_shared_group
        return cls(
            database_url=database_url,
            broker=broker,
            client_id=settings.gateway_client_id,
            shared_group=group if group and broker.mqtt5 else None,
            max_batch=settings.gateway_max_batch,
            writers=settings.gateway_writers,
            spool_dir=spool_dir if spool_dir is not None else settings.gateway_spool_dir,
            metrics_port=settings.gateway_metrics_port or None,
            metrics_host=settings.gateway_metrics_host,
            limits=settings.gateway_limits(),
        )

"""Composition root: typed, frozen settings read from COLDCHAIN_* environment variables."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from gateway.limits import DEAD_LETTER_PREFIX_BYTES, MAX_PAYLOAD_BYTES, SEQ_JUMP_MAX
from traceability import limits as tl


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


class Settings(BaseSettings):
    """Every setting of the system. Unset database/broker URLs mean: start private embedded ones."""

    model_config = SettingsConfigDict(env_prefix="COLDCHAIN_", frozen=True, extra="forbid")

    database_url: SecretStr | None = None
    broker_url: str | None = None
    home: Path = Path(".coldchain")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # console: readable lines (the default); json: one JSON object a line, for log collectors.
    log_format: Literal["console", "json"] = "console"
    # Alarm webhooks: JSON list of URLs, e.g. ["https://ops.example/hooks/cold"], each POST signed with
    # HMAC-SHA256 of the body under the secret (header X-Coldchain-Signature).
    # NoDecode: the validator below parses the JSON, so malformed text is a validation error naming the key.
    alert_webhooks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_webhook_secret: SecretStr | None = None
    # Prometheus /metrics of the gateway (0 = off); 9108 sits beside the usual exporter ports.
    gateway_metrics_port: int = Field(default=9108, ge=0, le=65535)
    gateway_metrics_host: str = "127.0.0.1"
    # Each gateway replica needs its own client id (the broker keeps one session per id).
    gateway_client_id: str = Field(default="coldchain-gateway", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # ---- gateway: ingest limits (defaults and their reasons in gateway/limits.py)
    # Payloads larger than this are dead-lettered unread (payload_too_large); 256 MiB is MQTT's own cap.
    gateway_max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=1, le=268_435_455)
    # A dead letter keeps this many leading bytes of its payload, with the whole length and sha256.
    gateway_dead_letter_prefix_bytes: int = Field(default=DEAD_LETTER_PREFIX_BYTES, ge=0)
    # A (boot, seq) jump beyond this many readings is a device anomaly, not missing readings.
    gateway_seq_jump_max: int = Field(default=SEQ_JUMP_MAX, ge=1)

    # ---- API and capture: limits (defaults and their reasons in traceability/limits.py)
    # Requests served at once, one database connection each; the others wait, then get a 503.
    api_pool_size: int = Field(default=tl.API_POOL_SIZE, ge=1, le=tl.API_POOL_SIZE_MAX)
    api_pool_timeout_s: float = Field(
        default=tl.API_POOL_TIMEOUT_S, gt=0, le=tl.API_POOL_TIMEOUT_S_MAX, allow_inf_nan=False
    )
    # Capture refuses larger documents and events (413), deeper nesting and longer lists (400).
    capture_max_document_bytes: int = Field(default=tl.CAPTURE_DOCUMENT_BYTES, ge=1)
    capture_max_event_bytes: int = Field(default=tl.CAPTURE_EVENT_BYTES, ge=1)
    capture_max_depth: int = Field(default=tl.CAPTURE_DEPTH, ge=tl.CAPTURE_DEPTH_MIN, le=tl.EVENT_MAX_DEPTH)
    capture_max_list_items: int = Field(default=tl.CAPTURE_LIST_ITEMS, ge=1)
    # Capture refuses event times later than now plus this skew, or before the floor.
    capture_future_skew_s: float = Field(
        default=tl.CAPTURE_FUTURE_SKEW_S, ge=0, le=tl.FUTURE_TOLERANCE_S, allow_inf_nan=False
    )
    capture_time_floor: AwareDatetime = tl.CAPTURE_TIME_FLOOR

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

    @field_validator("alert_webhooks", mode="before")
    @classmethod
    def _parse_webhooks(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        try:
            return json.loads(v)
        except ValueError:
            raise ValueError(f"must be a JSON list of URLs, e.g. {_WEBHOOKS_EXAMPLE}") from None

    @field_validator("alert_webhooks")
    @classmethod
    def _check_webhooks(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must be http(s): {url!r}")
        return v

    def broker(self) -> BrokerAddress | None:
        return BrokerAddress.parse(self.broker_url) if self.broker_url else None


_WEBHOOKS_EXAMPLE = '["https://ops.example/hooks/cold"]'


class SettingsError(Exception):
    """Settings could not be loaded; the message (one line) names every bad key path."""


# pydantic-settings names the field of a value it could not decode (JSON of a complex field) only in
# the text of its error: 'error parsing value for field "x" from source "EnvSettingsSource"'.
_SOURCE_FIELD = re.compile(r'field "([^"]+)"')


def _invalid(problems: list[str]) -> SettingsError:
    return SettingsError("invalid settings: " + "; ".join(problems))


# Variables of the test harness, not of the system: tests read them directly.
_NOT_SETTINGS = ("COLDCHAIN_TEST_",)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """COLDCHAIN_* variables that name no setting (a typo would otherwise silently mean 'embedded')."""
    known = {"COLDCHAIN_" + name.upper() for name in Settings.model_fields}
    return sorted(
        k
        for k in environ
        if k.startswith("COLDCHAIN_") and k not in known and not k.startswith(_NOT_SETTINGS)
    )


def load_settings(**overrides: object) -> Settings:
    unknown = unknown_variables(os.environ)
    if unknown:
        raise _invalid([f"{k}: no such setting" for k in unknown])
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(root)"
            env = "COLDCHAIN_" + path.split(".")[0].upper()
            lines.append(f"{path} ({env}): {err['msg']}")
        raise _invalid(lines) from None
    except SourceError as exc:
        m = _SOURCE_FIELD.search(str(exc))
        name = m.group(1) if m else "(root)"
        raise _invalid([f"{name} (COLDCHAIN_{name.upper()}): must be JSON of the setting's type"]) from None

"""Composition root: typed, frozen settings read from COLDCHAIN_* environment variables."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

# The broker address type is the gateway's (gateway.config); the system's settings use it as theirs.
from gateway.config import BrokerAddress as BrokerAddress
from gateway.config import GatewaySettings
from traceability import limits as tl

if TYPE_CHECKING:
    from rules.alarms.duties import Duties

# Five years and two leap days: the shortest raw-reading retention the settings accept.
RETENTION_READING_MIN_DAYS = 5 * 365 + 2


class Settings(GatewaySettings):
    """Every setting of the system: the gateway's own (gateway.config.GatewaySettings) and the others.

    Unset database/broker URLs mean: start private embedded ones."""

    model_config = SettingsConfigDict(env_prefix="COLDCHAIN_", frozen=True, extra="forbid")

    home: Path = Path(".coldchain")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Prometheus /metrics of the rules and ledger workers (0 = off), beside the gateway's 9108; the API
    # serves its own on its port. The ledger worker verifies the whole chain every ledger_verify_every_s.
    rules_metrics_port: int = Field(default=9109, ge=0, le=65535)
    rules_metrics_host: str = "127.0.0.1"
    ledger_metrics_port: int = Field(default=9110, ge=0, le=65535)
    ledger_metrics_host: str = "127.0.0.1"
    ledger_verify_every_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # console: readable lines (the default); json: one JSON object a line, for log collectors.
    log_format: Literal["console", "json"] = "console"
    # Alarm webhooks: JSON list of URLs, e.g. ["https://ops.example/hooks/cold"], each POST signed with
    # HMAC-SHA256 of the body under the secret (header X-Coldchain-Signature).
    # NoDecode: the validator below parses the JSON, so malformed text is a validation error naming the key.
    alert_webhooks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_webhook_secret: SecretStr | None = None
    # Alarm duties (rules/alarms/duties.py): the designated people and, per class, the levels an alarm goes
    # to when it opens and each time it stays unacknowledged past its severity's time. Checked at load: a
    # drug class must alarm at least three designated people (drug GSP). Unset: no designated people.
    alarm_duties_file: Path | None = None
    # The mail relay for the duties' e-mail recipients (plain SMTP, STARTTLS when smtp_starttls).
    smtp_host: str | None = Field(default=None, validate_default=True)
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="coldchain@localhost", pattern=r"^[^@\s]+@[^@\s]+$")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False

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
    # The web pages' map tile URL template (e.g. https://tiles.example/{z}/{x}/{y}.png); unset: no tiles are
    # loaded (the pages load nothing from elsewhere).
    map_tile_url: str | None = None

    # ---- Retention (TimescaleDB retention policies; unset = keep forever, the default). Set by
    # `coldchain db migrate`. Raw readings are the evidence: GSP and the vaccine rules keep temperature
    # records at least five years after the goods' expiry, so a raw-reading retention under five years
    # (RETENTION_READING_MIN_DAYS) is refused; the rollups may be kept for less.
    retention_reading_days: int | None = Field(default=None, ge=RETENTION_READING_MIN_DAYS)
    retention_reading_1m_days: int | None = Field(default=None, ge=1)
    retention_reading_1h_days: int | None = Field(default=None, ge=1)
    retention_reading_1d_days: int | None = Field(default=None, ge=1)

    @field_validator("alarm_duties_file")
    @classmethod
    def _check_duties(cls, v: Path | None) -> Path | None:
        if v is not None:
            from rules.alarms.duties import DutiesError, load_duties
            from rules.packs import load_packs

            try:
                load_duties(v, load_packs())
            except DutiesError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("smtp_host")
    @classmethod
    def _check_smtp(cls, v: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("alarm_duties_file")
        if v is None and path is not None:
            from rules.alarms.duties import load_duties
            from rules.packs import load_packs

            if load_duties(path, load_packs()).needs_smtp:
                raise ValueError("the alarm duties name e-mail recipients: set the mail relay's host")
        return v or None

    def duties(self) -> Duties:
        """The alarm duties file, loaded and checked (ValueError when none is set)."""
        from rules.alarms.duties import load_duties
        from rules.packs import load_packs

        if self.alarm_duties_file is None:
            raise ValueError("no alarm duties file set (COLDCHAIN_ALARM_DUTIES_FILE)")
        return load_duties(self.alarm_duties_file, load_packs())

    @field_validator("map_tile_url")
    @classmethod
    def _check_tile_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"the map tile URL must be http(s): {v!r}")
        return v or None

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


_WEBHOOKS_EXAMPLE = '["https://ops.example/hooks/cold"]'


class SettingsError(Exception):
    """Settings could not be loaded; the message (one line) names every bad key path."""


# pydantic-settings names the field of a value it could not decode (JSON of a complex field) only in
# the text of its error: 'error parsing value for field "x" from source "EnvSettingsSource"'.
_SOURCE_FIELD = re.compile(r'field "([^"]+)"')


def _invalid(problems: list[str]) -> SettingsError:
    return SettingsError("invalid settings: " + "; ".join(problems))


# Variables of the test harness (tests read them directly) and of Grafana's provisioning files
# (dashboards/grafana/provisioning), not of the system.
_NOT_SETTINGS = ("COLDCHAIN_TEST_", "COLDCHAIN_GRAFANA_")


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

"""Composition root: what every CLI command shares: settings loading and the final JSON line."""

from __future__ import annotations

import json

import typer

from coldchain.logs import configure_logging
from coldchain.settings import Settings, SettingsError, load_settings


def cli_settings() -> Settings:
    """Settings for a command; an invalid one stops the process with its key path (exit 2)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    return settings


def emit_json(obj: object) -> None:
    """The machine-readable answer: one JSON object on the last line of stdout."""
    typer.echo(json.dumps(obj, default=str, ensure_ascii=False))

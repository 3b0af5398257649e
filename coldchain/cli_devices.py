"""Composition root: `coldchain devices ...` commands (device registry and broker credentials)."""

from __future__ import annotations

import typer

devices_app = typer.Typer(help="Devices: registry and broker credentials.", no_args_is_help=True)

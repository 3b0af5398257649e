"""Composition root: `coldchain rules ...` commands (rule packs, offline logger-file checks)."""

from __future__ import annotations

import typer

rules_app = typer.Typer(help="Rule packs and offline checks.", no_args_is_help=True)

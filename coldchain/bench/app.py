"""Composition root: the `coldchain bench` command group; each benchmark module registers itself here."""

from __future__ import annotations

import typer

bench_app = typer.Typer(
    help="Benchmarks: one JSON object as the last line, with our figure and the peer/ceiling measured "
    "in the same run.",
    no_args_is_help=True,
)

"""Composition root: the `coldchain` command line, one module per command group (the app in `root`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def __getattr__(name: str) -> typer.Typer:
    # `coldchain.cli:app` (the console script) builds the app on first use, so that a module under
    # coldchain.cli (the exit codes, say) can be imported without the whole command tree.
    if name == "app":
        from coldchain.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Composition root: `coldchain bench ...`, whose benchmarks (coldchain.bench) load only when it runs."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup


class _Benchmarks(TyperGroup):
    """The benchmark commands, read from coldchain.bench on first use: listing or running one of them
    imports the benchmarks; `coldchain --help` and every other command do not."""

    def _loaded(self) -> TyperGroup:
        from coldchain.bench import bench_app

        group = typer.main.get_group(bench_app)
        assert isinstance(group, TyperGroup)
        return group

    def list_commands(self, ctx: Any) -> list[str]:
        return self._loaded().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return self._loaded().get_command(ctx, cmd_name)


bench_app = typer.Typer(
    cls=_Benchmarks,
    help="Benchmarks: one JSON object as the last line, with our figure and the peer/ceiling measured "
    "in the same run.",
    no_args_is_help=True,
)

"""Composition root: `coldchain sim ...` commands (the simulated devices of the demo world)."""

from __future__ import annotations

from typing import Annotated

import typer

from coldchain.cli.common import cli_settings, emit_json

sim_app = typer.Typer(help="Simulated devices.", no_args_is_help=True)


@sim_app.command("run")
def sim_run(
    speedup: Annotated[float, typer.Option(help="Scenario seconds per wall-clock second.")] = 60.0,
) -> None:
    """Register the demo world and play its devices against the broker."""
    from coldchain.demo import play_scenario
    from coldchain.seed import seed_world
    from coldchain.stack import open_stack

    settings = cli_settings()
    with open_stack(settings, broker=True) as stack:
        simulator = stack.broker_as("simulator")
        assert simulator is not None
        start_ms = seed_world(stack.database_url)
        report = play_scenario(simulator, start_ms=start_ms, speedup=speedup, progress=typer.echo)
    emit_json(report)

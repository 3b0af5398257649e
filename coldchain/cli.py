"""Composition root: the `coldchain` command line (Typer)."""

from __future__ import annotations

import json
import threading
from typing import Annotated

import psycopg
import typer

from coldchain.logs import configure_logging
from coldchain.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Cold-chain telemetry and traceability. With no COLDCHAIN_DATABASE_URL / COLDCHAIN_BROKER_URL "
    "set, every command uses a private PostgreSQL and broker kept under COLDCHAIN_HOME (./.coldchain).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="The hash-chained EPCIS ledger.", no_args_is_help=True)
sim_app = typer.Typer(help="Simulated devices.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(sim_app, name="sim")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    return settings


def _emit_json(obj: object) -> None:
    """The machine-readable answer: one JSON object on the last line of stdout."""
    typer.echo(json.dumps(obj, default=str, ensure_ascii=False))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every stage's pending migrations (idempotent)."""
    from coldchain.migrate import migrate
    from coldchain.runtime import open_stack

    settings = _settings()
    with open_stack(settings, apply_migrations=False) as stack:
        applied = migrate(stack.database_url)
    typer.echo(f"applied {len(applied)} migration(s)" + "".join(f"\n  {k}" for k in applied))


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option("--serve", help="Keep the API and broker up afterwards.")] = False,
    speedup: Annotated[float, typer.Option(help="Scenario seconds per wall-clock second.")] = 900.0,
) -> None:
    """Run the built-in scenario end to end: Qinzhou bonded cold store -> reefer truck -> Nanning market."""
    from coldchain.demo import run_demo_command

    settings = _settings()
    raise typer.Exit(run_demo_command(settings, serve=serve, speedup=speedup))


@app.command("run")
def run(
    stages: Annotated[
        list[str] | None, typer.Argument(help="gateway, rules, ledger, api, or all (default).")
    ] = None,
) -> None:
    """Run stages of the house until Ctrl-C / SIGTERM (each compose service runs one)."""
    from coldchain.runtime import STAGES, Services, open_stack

    chosen = tuple(STAGES) if not stages or "all" in stages else tuple(stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        typer.echo(f"unknown stage(s): {', '.join(unknown)} (choose from {', '.join(STAGES)}, all)", err=True)
        raise typer.Exit(2)
    settings = _settings()
    with open_stack(settings, broker="gateway" in chosen) as stack:
        services = Services(
            stack.database_url,
            stack.broker,
            stages=chosen,
            api_host=settings.api_host,
            api_port=settings.api_port,
        )
        services.start()
        typer.echo(f"running {', '.join(chosen)}" + (f"; API on {services.api_url}" if services.api else ""))
        if stack.broker is not None:
            typer.echo(f"broker: {stack.broker.url()}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            typer.echo("stopping")
        finally:
            services.stop()


@app.command("trace")
def trace(
    lot_id: Annotated[str, typer.Argument(help="Lot id (LGTIN class URI).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """A lot's trace chain: custody legs, the temperature each saw, excursions and breaks."""
    from coldchain.report import format_trace
    from coldchain.runtime import open_stack
    from traceability.trace import trace_lot

    settings = _settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        result = trace_lot(conn, lot_id)
    if result is None:
        typer.echo(f"no lot {lot_id!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        _emit_json(result)
    else:
        typer.echo(format_trace(result))


@ledger_app.command("verify")
def ledger_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the whole hash chain; name the first bad sequence number."""
    from coldchain.runtime import open_stack
    from traceability.ledger import verify

    settings = _settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        result = verify(conn)
    if as_json:
        _emit_json({"ok": result.ok, "events": result.events, "first_bad_seq": result.first_bad_seq})
    else:
        typer.echo(
            f"ledger intact: {result.events} events"
            if result.ok
            else f"ledger BROKEN at seq {result.first_bad_seq} ({result.events} events)"
        )
    raise typer.Exit(0 if result.ok else 1)


@sim_app.command("run")
def sim_run(
    speedup: Annotated[float, typer.Option(help="Scenario seconds per wall-clock second.")] = 60.0,
) -> None:
    """Register the demo world and play its devices against the broker."""
    from coldchain.demo import play_scenario
    from coldchain.runtime import open_stack
    from coldchain.seed import seed_world

    settings = _settings()
    with open_stack(settings, broker=True) as stack:
        assert stack.broker is not None
        start_ms = seed_world(stack.database_url)
        report = play_scenario(stack.broker, start_ms=start_ms, speedup=speedup, progress=typer.echo)
    _emit_json(report)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

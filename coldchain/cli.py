"""Composition root: the `coldchain` command line (Typer)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from coldchain.clicommon import ExitCode, cli_settings, emit_json, fail
from coldchain.datadir import DataDir, DataDirError, StackError
from coldchain.settings import Settings, load_settings

log = logging.getLogger(__name__)


class _Commands(TyperGroup):
    """Every command: a stack that cannot be opened (data directory, database, broker) is one line on
    stderr and its exit code, whichever command opened it; any other unexpected exception is one line
    naming its type (INTERNAL), its traceback logged at debug level only: no exception text reaches a
    user."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click: its own Context type is private
        try:
            return self._invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            fail(
                f"internal error ({type(exc).__name__}); COLDCHAIN_LOG_LEVEL=debug shows where",
                ExitCode.INTERNAL,
            )

    def _invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except StackError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
        except NotADirectoryError:
            # A file under COLDCHAIN_HOME (a key, a spool) met a home that is a file: the home is the error.
            home = DataDir(load_settings().home)
            try:
                home.check(must_exist=False)
            except DataDirError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(exc.exit_code) from None
            raise


app = typer.Typer(
    cls=_Commands,
    help="Cold-chain telemetry and traceability. With no COLDCHAIN_DATABASE_URL / COLDCHAIN_BROKER_URL "
    "set, every command uses a private PostgreSQL and broker kept under COLDCHAIN_HOME (./.coldchain).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sim_app = typer.Typer(help="Simulated devices.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sim_app, name="sim")


def _settings() -> Settings:
    return cli_settings()


def _emit_json(obj: object) -> None:
    emit_json(obj)


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
    from coldchain.runtime import STAGES, Services, api_options, gateway_limits, open_stack
    from gateway.mqtt import GatewayAuthError
    from traceability.ledger.checkpoint import KEY_FILE as LEDGER_KEY_FILE

    chosen = tuple(STAGES) if not stages or "all" in stages else tuple(stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        typer.echo(f"unknown stage(s): {', '.join(unknown)} (choose from {', '.join(STAGES)}, all)", err=True)
        raise typer.Exit(ExitCode.USAGE)
    settings = _settings()
    # The gateway reads from the broker; the rules stage publishes alarms on it, the ledger checkpoints.
    needs_broker = bool({"gateway", "rules", "ledger"} & set(chosen))
    with open_stack(settings, broker=needs_broker, exclusive=True) as stack:
        services = Services(
            stack.database_url,
            stack.broker,
            stage_brokers=stack.stage_brokers(),
            stages=chosen,
            api_host=settings.api_host,
            api_port=settings.api_port,
            gateway_client_id=settings.gateway_client_id,
            alert_webhooks=settings.alert_webhooks,
            alert_webhook_secret=(
                settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else None
            ),
            spool_dir=settings.home / "spool",
            metrics_port=settings.gateway_metrics_port,
            metrics_host=settings.gateway_metrics_host,
            checkpoint_key=settings.home / LEDGER_KEY_FILE,
            gateway_limits=gateway_limits(settings),
            api_options=api_options(settings),
            settings=settings,
        )
        try:
            services.start()
        except GatewayAuthError as exc:
            typer.echo(f"the broker refused the gateway's credentials: {exc}", err=True)
            raise typer.Exit(ExitCode.UNAVAILABLE) from None
        typer.echo(f"running {', '.join(chosen)}" + (f"; API on {services.api_url}" if services.api else ""))
        if stack.broker is not None:
            typer.echo(f"broker: {stack.broker.url()}")
        if "gateway" in chosen and settings.gateway_metrics_port:
            typer.echo(
                f"metrics: http://{settings.gateway_metrics_host}:{settings.gateway_metrics_port}/metrics"
            )
        code = ExitCode.OK
        try:
            # The supervisor: a stage that fails ends the process (non-zero) instead of idling on.
            while not services.failures():
                time.sleep(0.5)
            typer.echo("a stage failed: " + "; ".join(services.failures()), err=True)
            auth = isinstance(services.gateway_error(), GatewayAuthError)
            code = ExitCode.UNAVAILABLE if auth else ExitCode.FAILED
        except KeyboardInterrupt:
            typer.echo("stopping")
        finally:
            services.stop()
        if code:
            raise typer.Exit(code)


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
        simulator = stack.broker_as("simulator")
        assert simulator is not None
        start_ms = seed_world(stack.database_url)
        report = play_scenario(simulator, start_ms=start_ms, speedup=speedup, progress=typer.echo)
    _emit_json(report)


# Each area's commands live in a module of its own.
from coldchain import cli_devices, cli_ledger, cli_rules  # noqa: E402
from coldchain.bench import bench_app  # noqa: E402

app.add_typer(cli_devices.devices_app, name="devices")
app.add_typer(cli_rules.rules_app, name="rules")
app.add_typer(cli_ledger.ledger_app, name="ledger")
app.command("trace")(cli_ledger.trace)
app.add_typer(bench_app, name="bench")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

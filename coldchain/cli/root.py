"""Composition root: the `coldchain` Typer app: every command group wired in, one-line errors for all."""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from coldchain.cli import (
    apikey,
    bench,
    db,
    devices,
    geofence,
    grafana,
    ledger,
    report,
    rules,
    run,
    scorecard,
    shipment,
    sim,
)
from coldchain.cli.common import ExitCode, fail

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
        from coldchain.datadir import DataDir, DataDirError, StackError

        try:
            return super().invoke(ctx)
        except StackError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
        except NotADirectoryError:
            from coldchain.settings import load_settings

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
app.command("demo")(run.demo)
app.command("run")(run.run)
app.command("trace")(ledger.trace)
app.add_typer(db.db_app, name="db")
app.add_typer(sim.sim_app, name="sim")
app.add_typer(devices.devices_app, name="devices")
app.add_typer(geofence.geofence_app, name="geofence")
app.add_typer(rules.rules_app, name="rules")
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(apikey.api_key_app, name="apikey")
ledger.ledger_app.add_typer(apikey.api_key_app, name="api-key")
app.add_typer(report.report_app, name="report")
app.add_typer(shipment.shipment_app, name="shipment")
app.add_typer(scorecard.scorecard_app, name="scorecard")
app.add_typer(bench.bench_app, name="bench")
app.add_typer(grafana.grafana_app, name="grafana")


def main() -> None:  # pragma: no cover - console entry point
    app()

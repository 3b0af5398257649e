"""Composition root: `coldchain demo` and `coldchain run`, the commands that start the stages."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from coldchain.cli.common import ExitCode, cli_settings


def demo(
    serve: Annotated[bool, typer.Option("--serve", help="Keep the API and broker up afterwards.")] = False,
    speedup: Annotated[float, typer.Option(help="Scenario seconds per wall-clock second.")] = 900.0,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Drop the embedded database first even when the demo did not create it (its data is lost).",
        ),
    ] = False,
    scenario: Annotated[
        str,
        typer.Option(
            help="default: Qinzhou cold store -> Nanning market; port: durian and frozen seafood through"
            " Qinzhou port's import flow (inspection, bonded store, releases, sea-rail train and truck).",
        ),
    ] = "default",
) -> None:
    """Run a built-in scenario end to end: Qinzhou cold store -> Nanning market, or the port import flow."""
    from coldchain.demo import SCENARIOS, run_demo_command

    if scenario not in SCENARIOS:
        typer.echo(f"unknown scenario {scenario!r}: choose from {', '.join(SCENARIOS)}", err=True)
        raise typer.Exit(ExitCode.USAGE)
    settings = cli_settings()
    raise typer.Exit(run_demo_command(settings, serve=serve, speedup=speedup, reset=reset, scenario=scenario))


def run(
    stages: Annotated[
        list[str] | None, typer.Argument(help="gateway, rules, ledger, api, or all (default).")
    ] = None,
) -> None:
    """Run stages of the house until Ctrl-C / SIGTERM (each compose service runs one)."""
    from coldchain.runtime import STAGES, Services, api_options, gateway_limits
    from coldchain.stack import open_stack
    from gateway.mqtt import GatewayAuthError
    from traceability.ledger.checkpoint import KEY_FILE as LEDGER_KEY_FILE

    chosen = tuple(STAGES) if not stages or "all" in stages else tuple(stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        typer.echo(f"unknown stage(s): {', '.join(unknown)} (choose from {', '.join(STAGES)}, all)", err=True)
        raise typer.Exit(ExitCode.USAGE)
    settings = cli_settings()
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
        code = ExitCode.OK
        try:
            # From the first stage started on, a Ctrl-C or SIGTERM (however early) stops them all.
            try:
                services.start()
            except GatewayAuthError as exc:
                typer.echo(f"the broker refused the gateway's credentials: {exc}", err=True)
                raise typer.Exit(ExitCode.UNAVAILABLE) from None
            from traceability.capture_worker import settle_heap

            settle_heap()  # the process has started: its startup heap leaves the collector's generations
            api = f"; API on {services.api_url}" if services.api else ""
            typer.echo(f"running {', '.join(chosen)}{api}")
            if stack.broker is not None:
                typer.echo(f"broker: {stack.broker.url()}")
            if "gateway" in chosen and settings.gateway_metrics_port:
                typer.echo(
                    f"metrics: http://{settings.gateway_metrics_host}:{settings.gateway_metrics_port}/metrics"
                )
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

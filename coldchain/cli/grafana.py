"""Composition root: `coldchain grafana push`: the dashboards, datasources and alert rules into an
existing Grafana (dashboards/push.py), for sites without file provisioning."""

from __future__ import annotations

from typing import Annotated

import typer

from coldchain.cli.common import ExitCode, emit_json, fail

grafana_app = typer.Typer(
    help="An existing Grafana: push the provisioning files into it.", no_args_is_help=True
)


@grafana_app.command("push")
def grafana_push(
    url: Annotated[
        str,
        typer.Option(
            "--url", envvar="GRAFANA_URL", help="Grafana's base URL, e.g. https://grafana.example.com/"
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GRAFANA_TOKEN",
            help="A service-account token (role Admin) of that Grafana; GRAFANA_TOKEN keeps it out of ps.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read Grafana and print what would change; write nothing.")
    ] = False,
) -> None:
    """Put the folder, datasources, dashboards, contact points, alert rules and notification policies of
    dashboards/grafana/ into the Grafana at --url. Idempotent: only what differs from the files is written,
    so a second push changes nothing. Datasource files take ${VAR} from the environment, as Grafana's."""
    from dashboards.push import PushError, push, render, summary

    try:
        changes = push(url, token, dry_run=dry_run)
    except PushError as exc:
        code = {"input": ExitCode.USAGE, "unavailable": ExitCode.UNAVAILABLE, "refused": ExitCode.FAILED}
        fail(str(exc), code[exc.kind])
    text = render(changes, dry_run=dry_run)
    if text:
        typer.echo(text)
    emit_json(summary(changes, dry_run=dry_run))

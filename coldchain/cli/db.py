"""Composition root: `coldchain db ...` commands (the schema of every stage)."""

from __future__ import annotations

import typer

from coldchain.cli.common import cli_settings

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every stage's pending migrations (idempotent)."""
    from coldchain.migrate import migrate
    from coldchain.retention import apply_retention
    from coldchain.stack import open_stack

    settings = cli_settings()
    skipped: list[str] = []
    with open_stack(settings, apply_migrations=False) as stack:
        applied = migrate(stack.database_url, skipped=skipped)
        retention = apply_retention(stack.database_url, settings)
    typer.echo(f"applied {len(applied)} migration(s)" + "".join(f"\n  {k}" for k in applied))
    if skipped:
        typer.echo(
            f"skipped {len(skipped)} TimescaleDB-only migration(s): the server has no timescaledb extension"
            + "".join(f"\n  {k}" for k in skipped)
        )
    if retention:
        typer.echo("retention:" + "".join(f"\n  {line}" for line in retention))


@db_app.command("rollups")
def db_rollups() -> None:
    """Recompute every readings rollup (reading_1m, _1h, _1d) from the raw rows, e.g. after a bulk import
    or a restore; the rules worker (plain PostgreSQL) or TimescaleDB's policies keep them otherwise."""
    from coldchain.stack import open_stack
    from dashboards.rollups import refresh

    with open_stack(cli_settings()) as stack:
        refresh(stack.database_url)
    typer.echo("rollups rebuilt from the raw readings")

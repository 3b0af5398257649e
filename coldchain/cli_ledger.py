"""Composition root: `coldchain ledger ...` and `coldchain trace` commands."""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer

from coldchain.clicommon import cli_settings, emit_json

ledger_app = typer.Typer(help="The hash-chained EPCIS ledger.", no_args_is_help=True)


def trace(
    lot_id: Annotated[str, typer.Argument(help="Lot id (LGTIN class URI).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """A lot's trace chain: custody legs, the temperature each saw, excursions and breaks."""
    from coldchain.report import format_trace
    from coldchain.runtime import open_stack
    from traceability.trace import trace_lot

    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        result = trace_lot(conn, lot_id)
    if result is None:
        typer.echo(f"no lot {lot_id!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        emit_json(result)
    else:
        typer.echo(format_trace(result))


@ledger_app.command("verify")
def ledger_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the whole hash chain; name the first bad sequence number."""
    from coldchain.runtime import open_stack
    from traceability.ledger import verify

    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        result = verify(conn)
    if as_json:
        emit_json({"ok": result.ok, "events": result.events, "first_bad_seq": result.first_bad_seq})
    else:
        typer.echo(
            f"ledger intact: {result.events} events"
            if result.ok
            else f"ledger BROKEN at seq {result.first_bad_seq} ({result.events} events)"
        )
    raise typer.Exit(0 if result.ok else 1)

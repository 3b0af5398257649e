"""Composition root: `coldchain ledger ...` and `coldchain trace` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from coldchain.clicommon import cli_settings, emit_json

ledger_app = typer.Typer(help="The hash-chained EPCIS ledger.", no_args_is_help=True)


def trace(
    lot_id: Annotated[
        str,
        typer.Argument(
            help="Lot id (LGTIN class URI) or code, EPC, container number, B/L or waybill number."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """A lot's trace chain: custody legs, the temperature each saw, excursions and breaks."""
    from coldchain.report import format_trace
    from coldchain.runtime import open_stack
    from traceability.trace import trace as trace_any

    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        result = trace_any(conn, lot_id)
    if result is None:
        typer.echo(f"no lot {lot_id!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        emit_json(result)
    else:
        typer.echo(format_trace(result))


@ledger_app.command("verify")
def ledger_verify(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also re-derive every event's GS1 CBV 2.0 hash and compare every row's columns (slow).",
        ),
    ] = False,
) -> None:
    """Check the whole hash chain (every event's bytes, every link, the signed checkpoint); name the first
    bad sequence number."""
    from coldchain.runtime import open_stack
    from traceability.ledger import verify

    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        result = verify(conn, deep=deep)
    if as_json:
        emit_json({"ok": result.ok, "events": result.events, "first_bad_seq": result.first_bad_seq})
    else:
        typer.echo(
            f"ledger intact: {result.events} events"
            if result.ok
            else f"ledger BROKEN at seq {result.first_bad_seq} ({result.events} events)"
        )
    raise typer.Exit(0 if result.ok else 1)


def _key_path(home: Path) -> Path:
    from traceability.checkpoint import KEY_FILE

    return home / KEY_FILE


@ledger_app.command("import")
def ledger_import(
    file: Annotated[
        Path, typer.Argument(help="An EPCIS 2.0 JSON(-LD) document.", exists=True, dir_okay=False)
    ],
) -> None:
    """Capture an EPCIS document from a file, all or nothing (as POST /epcis/capture)."""
    import json

    from coldchain.runtime import open_stack
    from traceability.capture import capture

    settings = cli_settings()
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: not JSON: {exc}", err=True)
        raise typer.Exit(1) from None
    with open_stack(settings) as stack, psycopg.connect(stack.database_url, autocommit=True) as conn:
        job = capture(conn, doc, captured_by=f"cli:{file.name}")
    emit_json(job.as_dict())
    raise typer.Exit(0 if job.success else 1)


@ledger_app.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign the current chain head with the ledger key (COLDCHAIN_HOME/keys/ledger-ed25519.pem)."""
    from coldchain.runtime import open_stack
    from traceability.checkpoint import load_or_create_key, sign_head

    settings = cli_settings()
    key = load_or_create_key(_key_path(settings.home))
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        cp = sign_head(conn, key)
        conn.commit()
    if cp is None:
        typer.echo("empty ledger: nothing to sign", err=True)
        raise typer.Exit(1)
    emit_json(cp.as_dict())


@ledger_app.command("export")
def ledger_export(
    lot: Annotated[str, typer.Option("--lot", help="Lot id (LGTIN class URI).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle file to write.")],
) -> None:
    """Write a lot's evidence bundle: its events, the chain segment proving them, a signed checkpoint.
    Signs a fresh checkpoint of the head first."""
    from coldchain.runtime import open_stack
    from traceability.bundle import BundleError, export_lot
    from traceability.checkpoint import load_or_create_key, sign_head

    settings = cli_settings()
    key = load_or_create_key(_key_path(settings.home))
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        cp = sign_head(conn, key)
        conn.commit()
        try:
            data = export_lot(conn, lot, cp)
        except BundleError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    output.write_bytes(data)
    emit_json(
        {
            "lot_id": lot,
            "file": str(output),
            "bytes": len(data),
            "checkpoint_seq": None if cp is None else cp.seq,
        }
    )


@ledger_app.command("verify-bundle")
def ledger_verify_bundle(
    file: Annotated[Path, typer.Argument(help="A bundle written by `coldchain ledger export`.", exists=True)],
    public_key: Annotated[
        str | None, typer.Option("--public-key", help="Pin the signer's Ed25519 public key (hex).")
    ] = None,
) -> None:
    """Verify a bundle offline (no database): event hashes, chain links, checkpoint signature."""
    from traceability.bundle import verify_bundle

    result = verify_bundle(file.read_bytes(), pinned_public_key=public_key)
    emit_json(result.as_dict())
    raise typer.Exit(0 if result.ok else 1)


@ledger_app.command("declare-error")
def ledger_declare_error(
    event_id: Annotated[str, typer.Argument(help="eventID of the event declared wrong.")],
    reason: Annotated[
        str, typer.Option(help="CBV error reason (incorrect_data, did_not_occur).")
    ] = "incorrect_data",
    corrective: Annotated[list[str] | None, typer.Option(help="eventID of a corrective event.")] = None,
) -> None:
    """Append an EPCIS errorDeclaration for an event (the original stays in the chain)."""
    from coldchain.runtime import open_stack
    from traceability.ledger import declare_error

    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        try:
            seq = declare_error(conn, event_id, reason=reason, corrective_event_ids=corrective or ())
        except LookupError:
            typer.echo(f"no event {event_id!r}", err=True)
            raise typer.Exit(1) from None
        conn.commit()
    emit_json({"event_id": event_id, "seq": seq})


@ledger_app.command("rederive")
def ledger_rederive(
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing: say whether the derived tables are what the ledger gives."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
) -> None:
    """Rebuild containment, custody legs, lineage, bonded status, transactions and subjects from the ledger
    with today's registry (appends wait meanwhile); with --check, exit 1 when they differ from it."""
    from coldchain.runtime import open_stack
    from traceability.rederive import rederive

    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url, autocommit=True) as conn:
        result = rederive(conn, apply=not check)
    if as_json:
        emit_json(result.as_dict())
    else:
        for t in result.tables:
            typer.echo(
                f"{t.table}: {t.before} rows before, {t.after} derived"
                f" ({t.missing} missing, {t.extra} not derived from the ledger)"
            )
        verdict = "as the ledger gives" if result.consistent else "DIFFERENT from what the ledger gives"
        action = "rebuilt" if result.applied else "left as they were"
        typer.echo(f"{result.events} events replayed; the derived tables were {verdict}; {action}")
    raise typer.Exit(1 if check and not result.consistent else 0)


api_key_app = typer.Typer(help="API keys (roles: inspector, operator, capture, admin).", no_args_is_help=True)
ledger_app.add_typer(api_key_app, name="api-key")


@api_key_app.command("create")
def api_key_create(
    role: Annotated[str, typer.Option("--role", help="inspector, operator, capture or admin.")],
    name: Annotated[str, typer.Option("--name", help="Who holds the key.")],
) -> None:
    """Create an API key; the key is printed once (only its hash is stored)."""
    from coldchain.runtime import open_stack
    from traceability.auth import ROLES, create_key

    if role not in ROLES:
        typer.echo(f"unknown role {role!r}: one of {', '.join(sorted(ROLES))}", err=True)
        raise typer.Exit(2)
    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        secret = create_key(conn, role, name)
        conn.commit()
    emit_json({"name": name, "role": role, "api_key": secret})

"""Composition root: `coldchain apikey ...` (also `coldchain ledger api-key ...`): the trace API's keys."""

from __future__ import annotations

from typing import Annotated

import typer

from coldchain.cli.common import ExitCode, cli_settings, emit_json, fail

api_key_app = typer.Typer(
    help="API keys (roles: inspector, regulator, customs, carrier, shipper, operator, capture, admin), each "
    "of a party (required for carrier and shipper keys: they read that party's data only).",
    no_args_is_help=True,
)


@api_key_app.command("create")
def api_key_create(
    role: Annotated[
        str,
        typer.Option(
            "--role", help="inspector, regulator, customs, carrier, shipper, operator, capture or admin."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Who holds the key.")] = "",
    party: Annotated[
        str | None,
        typer.Option("--party", help="The key's registry party (required for carrier and shipper keys)."),
    ] = None,
) -> None:
    """Create an API key; the key is printed once (only its hash is stored)."""
    import psycopg

    from coldchain.stack import open_stack
    from traceability.api.auth import PARTY_ROLES, ROLES, SHOWN_CHARS, KeyPartyError, create_key

    if role not in ROLES:
        typer.echo(f"unknown role {role!r}: one of {', '.join(sorted(ROLES))}", err=True)
        raise typer.Exit(2)
    if role in PARTY_ROLES and not party:
        typer.echo(f"a {role} key belongs to a party: give --party <party id>", err=True)
        raise typer.Exit(2)
    name = name or (f"{role} {party}" if party else role)
    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        try:
            secret = create_key(conn, role, name, party)
        except KeyPartyError as exc:
            fail(str(exc), ExitCode.FAILED)
        conn.commit()
    emit_json({"name": name, "role": role, "party": party, "api_key": secret, "prefix": secret[:SHOWN_CHARS]})


@api_key_app.command("revoke")
def api_key_revoke(
    key: Annotated[
        str, typer.Argument(help="The key's id, or its prefix (cck_ and at least 4 more characters).")
    ],
) -> None:
    """Revoke an API key: from then on the API answers it 401."""
    import psycopg

    from coldchain.stack import open_stack
    from traceability.api.auth import KeyRevocationError, revoke_key

    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        try:
            revoked = revoke_key(conn, key)
        except KeyRevocationError as exc:
            fail(str(exc), ExitCode.FAILED)
        conn.commit()
    emit_json({"key_id": revoked.key_id, "name": revoked.name, "role": revoked.role, "revoked": True})

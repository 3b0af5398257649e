"""Composition root: `coldchain shipment create|list|show|close` (shipments in the registry, their state)."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coldchain.cli.common import ExitCode, cli_settings, emit_json, fail

if TYPE_CHECKING:
    import psycopg

shipment_app = typer.Typer(help="Shipments: register, list, show and close.", no_args_is_help=True)

# The console holds the database's own credentials: it reads every party's shipments.
CONSOLE = {"role": "admin", "party": None}
# The largest shipment file read: far above any real one (a thousand lots is a few hundred kB).
MAX_FILE_BYTES = 4 * 1024 * 1024


def _read(path: Path) -> Any:
    """The shipment file's content: TOML when it ends in .toml, else JSON; one line and USAGE when not."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        fail(f"{path}: cannot read the shipment file: {exc.strerror or exc}")
    if len(raw) > MAX_FILE_BYTES:
        fail(f"{path}: larger than {MAX_FILE_BYTES} bytes (not a shipment file?)")
    try:
        text = raw.decode("utf-8")
        return tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except UnicodeDecodeError as exc:
        fail(f"{path}: byte {exc.start} (from 0) is not UTF-8 text")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        fail(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {exc}")


def _connect() -> Any:
    """The stack's database (opened for the command), as a context manager yielding a connection."""
    import contextlib

    import psycopg

    from coldchain.stack import open_stack

    @contextlib.contextmanager
    def connected() -> Any:
        with (
            open_stack(cli_settings(), must_exist=True) as stack,
            psycopg.connect(stack.database_url) as conn,
        ):
            yield conn

    return connected()


def _shown(conn: psycopg.Connection[Any], shipment_id: str) -> dict[str, Any]:
    from traceability.api.shipment_schemas import ShipmentOut
    from traceability.shipments import shipment_view

    view = shipment_view(conn, shipment_id, CONSOLE)
    if view is None:
        fail(f"no shipment {shipment_id!r}", ExitCode.FAILED)
    shown: dict[str, Any] = ShipmentOut.of_view(view).model_dump(mode="json")
    return shown


@shipment_app.command("create")
def create(
    path: Annotated[
        Path,
        typer.Argument(
            help="A JSON or TOML (.toml) file: the fields of POST /shipments (shipment_id, through_document, "
            "legs, stops, lots, profile, ...)."
        ),
    ],
) -> None:
    """Register a shipment from a file; print it (JSON) with its state."""
    from pydantic import ValidationError

    from registry.shipments import ShipmentError
    from traceability.api.shipment_schemas import ShipmentIn
    from traceability.shipments import register

    data = _read(path)
    try:
        body = ShipmentIn.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"{path}: {errors}")
    with _connect() as conn:
        try:
            register(conn, body.record("cli"), CONSOLE)
        except ShipmentError as exc:
            fail(f"shipment {body.shipment_id} refused: {exc}", ExitCode.FAILED)
        conn.commit()
        emit_json(_shown(conn, body.shipment_id))


@shipment_app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option(help="Only shipments in this state: planned, in_transit, arrived, ...")
    ] = None,
    lot: Annotated[str | None, typer.Option(help="Only shipments carrying this lot.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="The most shipments listed.")] = 100,
) -> None:
    """The shipments, newest first, each with its state (one JSON object: {"shipments": [...]})."""
    from traceability.api.shipment_schemas import ShipmentSummaryOut
    from traceability.shipments import STATES, list_shipments

    if state is not None and state not in STATES:
        fail(f"unknown state {state!r}: one of {', '.join(STATES)}")
    with _connect() as conn:
        found = list_shipments(conn, CONSOLE, state=state, lot=lot, limit=limit)
    emit_json({"shipments": [ShipmentSummaryOut.of(s).model_dump(mode="json") for s in found]})


@shipment_app.command("show")
def show(shipment_id: Annotated[str, typer.Argument(help="The shipment's id.")]) -> None:
    """One shipment (JSON): documents, parties, legs, stops, lots, profiles, state and when reached."""
    with _connect() as conn:
        emit_json(_shown(conn, shipment_id))


@shipment_app.command("close")
def close(
    shipment_id: Annotated[str, typer.Argument(help="The shipment's id.")],
    at: Annotated[
        dt.datetime | None,
        typer.Option(help="When it closed (ISO 8601, UTC when no offset is given); now when left out."),
    ] = None,
) -> None:
    """Close a shipment (its last state); a shipment closes once."""
    from registry.shipments import ShipmentError
    from traceability.shipments import close as close_shipment

    when = dt.datetime.now(dt.UTC) if at is None else (at if at.tzinfo else at.replace(tzinfo=dt.UTC))
    with _connect() as conn:
        try:
            closed = close_shipment(conn, shipment_id, when, CONSOLE)
        except ShipmentError as exc:
            fail(str(exc), ExitCode.FAILED)
        if closed is None:
            fail(f"no shipment {shipment_id!r}", ExitCode.FAILED)
        conn.commit()
        emit_json(_shown(conn, shipment_id))


@shipment_app.command("profile")
def profile(
    shipment_id: Annotated[str, typer.Argument(help="The shipment's id.")],
    source: Annotated[
        str, typer.Option(help="The shipper's specification it comes from (document, clause).")
    ],
    low_c: Annotated[float | None, typer.Option("--low-c", help="Lowest temperature allowed (°C).")] = None,
    high_c: Annotated[
        float | None, typer.Option("--high-c", help="Highest temperature allowed (°C).")
    ] = None,
    max_gap_s: Annotated[
        float | None, typer.Option("--max-gap-s", help="Longest recording interval allowed (s).")
    ] = None,
) -> None:
    """Add the next version of a shipment's alarm profile: refused when looser than its class."""
    from registry.models import ShipmentProfile
    from registry.shipments import ShipmentError
    from traceability.shipments import add_profile

    with _connect() as conn:
        wanted = ShipmentProfile(0, source, low_c, high_c, max_gap_s)
        try:
            version = add_profile(conn, shipment_id, wanted, CONSOLE)
        except ShipmentError as exc:
            fail(f"profile refused: {exc}", ExitCode.FAILED)
        if version is None:
            fail(f"no shipment {shipment_id!r}", ExitCode.FAILED)
        conn.commit()
        emit_json(_shown(conn, shipment_id))

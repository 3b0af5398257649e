"""Composition root: `coldchain ledger ...` and `coldchain trace` (verify, import, export, checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coldchain.cli.common import ExitCode, cli_settings, emit_json, fail

if TYPE_CHECKING:
    import psycopg

    from traceability.ledger.checkpoint import Checkpoint
    from traceability.ledger.verify import VerifyResult

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
    import psycopg

    from coldchain.report import format_trace
    from coldchain.stack import open_stack
    from traceability.trace import trace as trace_any
    from traceability.trace_model import to_json

    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        result = trace_any(conn, lot_id)
    if result is None:
        typer.echo(f"no lot {lot_id!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        emit_json(to_json(result))
    else:
        typer.echo(format_trace(result))


# The largest file a ledger command reads (a document, a bundle, a checkpoint log): far above any this
# system writes, so that a device file or a runaway input is refused instead of filling memory.
MAX_INPUT_BYTES = 512 * 1024 * 1024


def _read_input(path: Path, what: str) -> bytes:
    """The bytes of an input file, or one line on stderr and USAGE (unreadable, or too large)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        fail(f"{path}: cannot read the {what}: {exc.strerror or exc}")
    if len(data) > MAX_INPUT_BYTES:
        fail(f"{path}: the {what} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB")
    return data


def _pinned(spec: str | None, home: Path) -> str | None:
    """The public key to verify against: ``spec`` (hex or a key file), else the ledger's own key file
    under COLDCHAIN_HOME, else None. A ``spec`` that is neither is one line on stderr and USAGE."""
    from traceability.ledger.checkpoint import CheckpointFormatError, configured_key, pinned_key

    try:
        return pinned_key(spec) if spec is not None else configured_key(home)
    except CheckpointFormatError as exc:
        fail(f"--public-key: {exc}" if spec is not None else str(exc))


def _kept(files: list[Path]) -> list[tuple[str, Checkpoint]]:
    """The checkpoints of the files given with --checkpoint, each labelled with its file and line."""
    from traceability.ledger.checkpoint import CheckpointFormatError, parse_kept
    from traceability.ledger.jsonfile import FILE_MAX_DEPTH, JsonInputError, too_deep

    kept: list[tuple[str, Checkpoint]] = []
    for path in files:
        data = _read_input(path, "checkpoint file")
        try:
            if too_deep(data, FILE_MAX_DEPTH):
                raise JsonInputError(f"JSON nested more than {FILE_MAX_DEPTH} levels deep")
            cps = parse_kept(data.decode("utf-8"), name=str(path))
        except (CheckpointFormatError, JsonInputError) as exc:
            fail(f"{path}: {exc}" if isinstance(exc, JsonInputError) else str(exc))
        except UnicodeDecodeError as exc:
            fail(f"{path}: not UTF-8 (byte {exc.start})")
        kept.extend((f"kept checkpoint {path}#{n}", cp) for n, cp in enumerate(cps, 1))
    return kept


PUBLIC_KEY_HELP = (
    "The signer's Ed25519 public key to verify against: 64 hex digits, or a file with them, a PEM public"
    " key or the PEM private key. Default: the ledger's key file under COLDCHAIN_HOME."
)


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
    public_key: Annotated[str | None, typer.Option("--public-key", help=PUBLIC_KEY_HELP)] = None,
    kept_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint someone kept (its JSON, or a checkpoint log of them, one a line); repeatable.",
        ),
    ] = None,
) -> None:
    """Check the whole hash chain (every event's bytes, every link) and every signed checkpoint, stored
    or kept, against the pinned public key; name the first bad sequence number. The checkpoint log beside
    the ledger's key file under COLDCHAIN_HOME is always checked too. Exit 0 only when nothing is wrong
    and the key vouches for the chain."""
    import psycopg

    from coldchain.stack import open_stack
    from traceability.ledger.checkpoint import CheckpointFormatError, own_log
    from traceability.ledger.verify import verify

    settings = cli_settings()
    pinned = _pinned(public_key, settings.home)
    kept = _kept(kept_files or [])
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        # Read once the data directory is known to be one (its errors come first).
        try:
            kept += own_log(key_path(settings.home))
        except CheckpointFormatError as exc:
            fail(str(exc))
        result = verify(conn, deep=deep, public_key=pinned, kept=kept)
    if as_json:
        emit_json(result.as_dict())
    else:
        for line in _verdict(result):
            typer.echo(line)
    raise typer.Exit(ExitCode.OK if result.anchored else ExitCode.FAILED)


def _verdict(result: VerifyResult) -> list[str]:
    """What ``ledger verify`` prints: the verdict, then each problem on a line of its own."""
    if not result.ok:
        verdict = (
            f"BROKEN at seq {result.first_bad_seq}" if result.first_bad_seq is not None else "NOT VERIFIED"
        )
        return [f"ledger {verdict} ({result.events} events)", *(f"  {p}" for p in result.problems)]
    if not result.pinned:
        return [
            f"ledger NOT VERIFIED: {result.events} events chained intact, but no public key is pinned"
            " (--public-key, or the ledger's key file) and no checkpoint vouches for them"
        ]
    if not result.anchored:
        return [
            f"ledger NOT VERIFIED: {result.events} events chained intact, but no checkpoint signed by the"
            " pinned key vouches for them (coldchain ledger checkpoint signs one)"
        ]
    tail = result.events - (result.signed_seq or 0)
    unsigned = f"; the {tail} newer entries are not signed yet" if tail else ""
    return [
        f"ledger intact: {result.events} events, signed through seq {result.signed_seq}"
        f" ({result.checkpoints} checkpoints checked){unsigned}"
    ]


def key_path(home: Path) -> Path:
    """The ledger key's file under ``home``."""
    from traceability.ledger.checkpoint import KEY_FILE

    return home / KEY_FILE


def sign(conn: psycopg.Connection[Any], key_file: Path, *, if_moved: bool = False) -> Checkpoint | None:
    """Sign the head with the key in ``key_file`` (``if_moved``: only when it moved past the newest
    checkpoint), commit, and append the checkpoint to the log beside it; None when nothing was signed."""
    from traceability.ledger.checkpoint import (
        append_to_log,
        load_or_create_key,
        log_beside,
        sign_head,
        sign_if_moved,
    )

    key = load_or_create_key(key_file)
    cp = sign_if_moved(conn, key) if if_moved else sign_head(conn, key)
    conn.commit()
    if cp is not None:
        append_to_log(log_beside(key_file), cp)
    return cp


@ledger_app.command("import")
def ledger_import(
    file: Annotated[
        Path, typer.Argument(help="An EPCIS 2.0 JSON(-LD) document.", exists=True, dir_okay=False)
    ],
) -> None:
    """Capture an EPCIS document (EPCISDocument or EPCISQueryDocument) from a file, all or nothing, under
    capture's limits (the COLDCHAIN_CAPTURE_* settings): the same checks and the same transaction as the
    capture worker gives a job of POST /epcis/capture, here and now."""
    import psycopg

    from coldchain.runtime import api_options
    from coldchain.stack import open_stack
    from traceability.epcis.capture import capture_bytes

    settings = cli_settings()
    limits = api_options(settings).capture
    try:
        with file.open("rb") as f:
            raw = f.read(limits.document_bytes + 1)  # one byte more tells a document over the limit
    except OSError as exc:
        fail(f"{file}: cannot read the document: {exc.strerror or exc}")
    with open_stack(settings) as stack, psycopg.connect(stack.database_url, autocommit=True) as conn:
        job = capture_bytes(conn, raw, captured_by=f"cli:{file.name}", limits=limits)
    if job.unreadable:  # the file is no document capture can read: one line, the job recorded
        reasons = "; ".join(e["message"] for e in job.errors)
        fail(f"{file}: {reasons} (refused: capture job {job.capture_id})")
    emit_json(job.as_dict())
    raise typer.Exit(ExitCode.OK if job.success else ExitCode.FAILED)


@ledger_app.command("checkpoint")
def ledger_checkpoint() -> None:
    """Sign the current chain head with the ledger key (COLDCHAIN_HOME/keys/ledger-ed25519.pem) and append
    the checkpoint to the checkpoint log beside it."""
    import psycopg

    from coldchain.stack import open_stack

    settings = cli_settings()
    with open_stack(settings) as stack, psycopg.connect(stack.database_url) as conn:
        cp = sign(conn, key_path(settings.home))
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
    import psycopg

    from coldchain.stack import open_stack
    from traceability.ledger.bundle import BundleError, export_lot

    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        cp = sign(conn, key_path(settings.home))
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
    public_key: Annotated[str | None, typer.Option("--public-key", help=PUBLIC_KEY_HELP)] = None,
) -> None:
    """Verify a bundle offline (no database): event hashes, chain links, the checkpoint's signature under
    the pinned key (a bundle never vouches for itself)."""
    from traceability.ledger.bundle import verify_bundle
    from traceability.ledger.jsonfile import FILE_MAX_DEPTH, JsonInputError, too_deep

    pinned = _pinned(public_key, cli_settings().home)
    data = _read_input(file, "bundle")
    try:
        if too_deep(data, FILE_MAX_DEPTH):
            fail(f"{file}: JSON nested more than {FILE_MAX_DEPTH} levels deep: not a bundle")
    except JsonInputError as exc:
        fail(f"{file}: {exc}")
    result = verify_bundle(data, pinned_public_key=pinned)
    emit_json(result.as_dict())
    raise typer.Exit(ExitCode.OK if result.ok else ExitCode.FAILED)


@ledger_app.command("declare-error")
def ledger_declare_error(
    event_id: Annotated[str, typer.Argument(help="eventID of the event declared wrong.")],
    reason: Annotated[
        str, typer.Option(help="CBV error reason (incorrect_data, did_not_occur).")
    ] = "incorrect_data",
    corrective: Annotated[list[str] | None, typer.Option(help="eventID of a corrective event.")] = None,
) -> None:
    """Append an EPCIS errorDeclaration for an event (the original stays in the chain)."""
    import psycopg

    from coldchain.stack import open_stack
    from traceability.ledger.chain import declare_error

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
    import psycopg

    from coldchain.stack import open_stack
    from traceability.ledger.rederive import rederive

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

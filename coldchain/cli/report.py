"""Composition root: `coldchain report lot ...`: a lot's evidence report (PDF, XLSX or CSV) and its
companion bundle, written beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coldchain.cli.common import ExitCode, cli_settings, emit_json, fail

report_app = typer.Typer(
    help="Evidence reports of a lot, with their companion bundles.", no_args_is_help=True
)


@report_app.command("lot")
def report_lot(
    lot_id: Annotated[
        str,
        typer.Argument(
            help="Lot id (LGTIN class URI) or code, EPC, container number, B/L or waybill number."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Report file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="pdf, xlsx or csv.")] = "pdf",
    lang: Annotated[str, typer.Option("--lang", help="zh-CN or en.")] = "zh-CN",
    tz_name: Annotated[
        str | None,
        typer.Option(
            "--tz", help="IANA time zone of the local times (default: Asia/Shanghai for zh-CN, else UTC)."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Base URL of the web app, for the PDF's QR code (default: the API's)."
        ),
    ] = None,
) -> None:
    """Write a lot's chain-of-custody and temperature-compliance report, and its evidence bundle beside it
    (FILE.bundle.json), after signing the ledger head if it moved past the newest checkpoint. `coldchain
    ledger verify-bundle FILE.bundle.json` proves the report's events offline."""
    import psycopg

    from coldchain.cli.ledger import key_path, sign
    from coldchain.stack import open_stack
    from traceability.i18n import LANGS, zone
    from traceability.reports.build import FORMATS, REPORT_LEG_READINGS, read_report, render
    from traceability.reports.proof import ReportError, bundle_name
    from traceability.web.paths import trace_page_url

    if fmt not in FORMATS:
        fail(f"--format: one of {', '.join(FORMATS)}, not {fmt!r}")
    if lang not in LANGS:
        fail(f"--lang: one of {', '.join(LANGS)}, not {lang!r}")
    chosen = next(x for x in LANGS if x == lang)
    tz = zone(tz_name, chosen)
    if tz_name is not None and tz.key != tz_name:
        fail(f"--tz: unknown time zone {tz_name!r}")
    settings = cli_settings()
    base = base_url or f"http://{settings.api_host}:{settings.api_port}"
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        # A fresh checkpoint only when the head moved: else the newest one proves the report, and the same
        # report asked twice names the same bundle.
        cp = sign(conn, key_path(settings.home), if_moved=True)
        try:
            report = read_report(
                conn,
                lot_id,
                lang=chosen,
                tz=tz,
                legs=REPORT_LEG_READINGS,
                trace_url=trace_page_url(base, lot_id),
                base_url=base,
                cp=cp,
                with_readings=fmt != "pdf",
            )
        except ReportError as exc:
            fail(str(exc), ExitCode.FAILED)
        if report is None:
            fail(f"no lot {lot_id!r}", ExitCode.FAILED)
        data = render(report, next(f for f in FORMATS if f == fmt))
    companion = Path(bundle_name(str(output)))
    try:
        output.write_bytes(data)
        companion.write_bytes(report.bundle)
    except OSError as exc:
        fail(f"{output}: cannot write the report: {exc.strerror or exc}")
    typer.echo(f"report written to {output}; its evidence bundle to {companion}", err=True)
    emit_json(
        {
            "lot_id": report.trace.lot_id,
            "file": str(output),
            "format": fmt,
            "bytes": len(data),
            "bundle": str(companion),
            "bundle_sha256": report.proof.bundle_sha256,
            "events": report.proof.event_rows,
            "head_seq": report.proof.head_seq,
            "head_hash": report.proof.head_hash,
        }
    )

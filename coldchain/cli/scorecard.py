"""Composition root: `coldchain scorecard`: the regulator's scorecards of a period (a table, --json, or a
PDF/XLSX report), one subject's drill-down rows, `coldchain scorecard exempt` to grant an exemption and
`coldchain scorecard judge` to judge the settled shipments' facts now."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coldchain.cli.common import ExitCode, cli_settings, emit_json, fail

if TYPE_CHECKING:
    from traceability.scorecards.model import Scoreboard
    from traceability.scorecards.period import Period

scorecard_app = typer.Typer(
    help="The regulator's scorecards: ratios per carrier, device, asset, site or shipper over a period.",
    invoke_without_command=True,
)


def _period(label: str | None) -> Period:
    from traceability.scorecards.period import PeriodError, parse_period, quarter_of

    if label is None:
        return quarter_of(datetime.now(UTC))
    try:
        return parse_period(label)
    except PeriodError as exc:
        fail(f"--period: {exc}")


def _table(board: Scoreboard) -> str:
    from traceability.i18n import gettext_for
    from traceability.reports.scorecard import ratio_text
    from traceability.scorecards.model import INDICATORS

    _ = gettext_for("en")
    head = ["rank", "subject", "score", "prev", *[s.key for s in INDICATORS]]
    lines = ["\t".join(head)]
    for c in board.cards:
        cells = [
            "-" if c.rank is None else str(c.rank),
            c.subject_id,
            "-" if c.score is None else f"{c.score:.2f}",
            "-" if c.previous_score is None else f"{c.previous_score:.2f}",
            *[ratio_text(c.indicators[s.key], _) for s in INDICATORS],
        ]
        lines.append("\t".join(cells))
    return "\n".join(lines)


@scorecard_app.callback()
def scorecard(
    ctx: typer.Context,
    period: Annotated[
        str | None,
        typer.Option(
            help="2026Q4 (a calendar quarter), 2026-11 or 2026-10-01/2026-12-31; default: this quarter."
        ),
    ] = None,
    subject: Annotated[str, typer.Option(help="carrier, device, asset, site or shipper.")] = "carrier",
    as_json: Annotated[bool, typer.Option("--json", help="The whole scoreboard as one JSON object.")] = False,
    drill: Annotated[
        str | None, typer.Option(help="One subject's id: print the rows behind its indicators.")
    ] = None,
    indicator: Annotated[str | None, typer.Option(help="With --drill: only this indicator's rows.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write a report file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="The report's format: pdf or xlsx.")] = "pdf",
    lang: Annotated[str, typer.Option("--lang", help="The report's language: zh-CN or en.")] = "zh-CN",
) -> None:
    """Compute the period's scorecards from the rollups: each indicator's numerator, denominator,
    exemptions and ratio, the weighted score, the ranking and the trend against the previous period."""
    if ctx.invoked_subcommand is not None:
        return
    import psycopg

    from coldchain.stack import open_stack
    from traceability.i18n import LANGS, zone
    from traceability.reports.scorecard import render_scorecard
    from traceability.scorecards import compute, export
    from traceability.scorecards.model import SUBJECTS

    p = _period(period)
    if subject not in SUBJECTS:
        fail(f"--subject: one of {', '.join(SUBJECTS)}, not {subject!r}")
    if fmt not in ("pdf", "xlsx"):
        fail(f"--format: pdf or xlsx, not {fmt!r}")
    if lang not in LANGS:
        fail(f"--lang: one of {', '.join(LANGS)}, not {lang!r}")
    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        try:
            if drill is not None:
                card = compute.card(conn, p, subject, drill)
                rows = compute.drill_all(conn, p, subject, [drill])[drill]
                keep = {k: export.rows_list(v) for k, v in rows.items() if indicator in (None, k)}
                if indicator is not None and not keep:
                    fail(f"--indicator: no indicator {indicator!r}")
                emit_json(
                    {"period": p.label, "subject": subject, "card": export.card_dict(card), "rows": keep}
                )
                return
            board = compute.scoreboard(conn, p, subject)
        except compute.UnknownSubjectError as exc:
            fail(str(exc), ExitCode.FAILED)
        except compute.ScorecardError as exc:
            fail(str(exc))
        if output is not None:
            chosen = next(x for x in LANGS if x == lang)
            data = render_scorecard(
                conn, board, "pdf" if fmt == "pdf" else "xlsx", lang=chosen, tz=zone(None, chosen)
            )
            try:
                output.write_bytes(data)
            except OSError as exc:
                fail(f"{output}: cannot write the report: {exc.strerror or exc}")
            typer.echo(f"report written to {output}", err=True)
    if as_json:
        emit_json(export.board_dict(board))
    elif output is None:
        typer.echo(_table(board))


@scorecard_app.command("exempt")
def exempt(
    indicator: Annotated[str, typer.Option(help="The indicator key it exempts from, or '*' for every one.")],
    subject: Annotated[str, typer.Option(help="carrier, device, asset, site or shipper.")],
    subject_id: Annotated[str, typer.Option("--id", help="The subject's id.")],
    start: Annotated[datetime, typer.Option(help="Start (ISO 8601; UTC when no offset is given).")],
    end: Annotated[datetime, typer.Option(help="End (ISO 8601; UTC when no offset is given).")],
    reason: Annotated[str, typer.Option(help="Why, e.g. 'declared offline sea leg'.")],
    granted_by: Annotated[str, typer.Option(help="Who grants it.")],
) -> None:
    """Grant an exemption: the subject's time in [start, end) is left out of the indicator, and listed."""
    import psycopg

    from coldchain.stack import open_stack
    from traceability.scorecards.compute import ScorecardError, grant_exemption
    from traceability.scorecards.model import Exemption

    def utc(t: datetime) -> datetime:
        return t if t.tzinfo is not None else t.replace(tzinfo=UTC)

    e = Exemption(indicator, subject, subject_id, utc(start), utc(end), reason, granted_by, datetime.now(UTC))
    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        try:
            grant_exemption(conn, e)
        except ScorecardError as exc:
            fail(str(exc))
        conn.commit()
    emit_json({"exempted": indicator, "subject": subject, "id": subject_id, "from": e.start, "to": e.end})


@scorecard_app.command("judge")
def judge(
    at: Annotated[
        datetime | None,
        typer.Option(help="The time it is (ISO 8601; UTC when no offset is given); default: the server's."),
    ] = None,
) -> None:
    """Judge every settled shipment without a fact into shipment_fact now, as the shipment-facts worker
    does once a minute (after a bulk import, or where no ledger stage runs)."""
    from coldchain.stack import open_stack
    from traceability.scorecards.facts import judge_once

    when = None if at is None else at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    settings = cli_settings()
    marks = judged = 0
    with open_stack(settings, must_exist=True) as stack:
        while True:
            done = judge_once(stack.database_url, at=when)
            marks, judged = marks + done.marks, judged + done.shipments
            if not done.shipments:
                break
    emit_json({"marks_taken": marks, "shipments_judged": judged})

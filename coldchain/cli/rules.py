"""Composition root: `coldchain rules ...` commands (rule packs, offline logger-file checks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from coldchain.cli.common import ExitCode, emit_json, fail

if TYPE_CHECKING:
    from rules.packs import ClassRef, PackSet

rules_app = typer.Typer(help="Rule packs and offline checks.", no_args_is_help=True)

PacksDir = Annotated[
    Path | None, typer.Option("--packs-dir", help="Folder of rule packs (default: the shipped packs).")
]


def _load(packs_dir: Path | None) -> PackSet:
    from rules.packs import PackError, load_packs

    try:
        return load_packs(packs_dir)
    except PackError as exc:
        fail(str(exc), ExitCode.USAGE)


def _class_json(ref: ClassRef) -> dict[str, Any]:
    import msgspec

    return {
        "pack_id": ref.pack_id,
        "pack_version": ref.pack_version,
        "product_class": ref.code,
        **msgspec.to_builtins(ref.rules.model_dump(mode="json")),
    }


@rules_app.command("packs")
def packs(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object as the last line.")] = False,
    packs_dir: PacksDir = None,
) -> None:
    """List the loaded rule packs, their classes and limits, with sources."""
    ps = _load(packs_dir)
    if json_out:
        emit_json(
            {
                "packs": [
                    {"id": p.id, "version": p.version, "title": p.title, "classes": sorted(p.classes)}
                    for p in ps.packs.values()
                ],
                "classes": [_class_json(ref) for ref in ps.classes()],
            }
        )
        return
    for p in ps.packs.values():
        typer.echo(f"{p.id} {p.version}: {p.title}")
        for code in sorted(p.classes):
            r = p.classes[code]
            lo = "−∞" if r.low_c is None else f"{r.low_c:g}"
            hi = "+∞" if r.high_c is None else f"{r.high_c:g}"
            extra = [f"min {r.min_duration.seconds}s"]
            extra.append(f"interval storage {r.max_interval.storage.seconds}s")
            extra.append(f"transport {r.max_interval.transport.seconds}s")
            if r.max_interval.out_of_range is not None:
                extra.append(f"out-of-range {r.max_interval.out_of_range.seconds}s")
            if r.hysteresis is not None:
                extra.append(f"hysteresis {r.hysteresis.value:g}°C")
            if r.mkt is not None:
                extra.append(f"MKT ≤ {r.mkt.limit_c:g}°C/{r.mkt.window_s}s")
            if r.band is not None:
                extra.append(f"band [{r.band.low_c}, {r.band.high_c}]")
            if r.shelf_life is not None:
                extra.append(f"shelf life {r.shelf_life.model}")
            typer.echo(f"  {code:<16} [{lo}, {hi}] °C  {', '.join(extra)}  — {r.source}")


def _check_limits() -> str:
    """The epilog of `rules check`: the limits under which a file is refused, from rules.logfile."""
    from rules.logfile import MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_ROWS, VALUE_RANGES, YEARS

    return (
        "The file is refused whole (exit 2, naming the line) when it is not UTF-8 CSV text, is larger than "
        f"{MAX_FILE_BYTES} bytes, has more than {MAX_ROWS} rows or a line longer than {MAX_LINE_BYTES} "
        f"bytes, or holds a time outside {YEARS[0]}..{YEARS[1]}, an infinite value or one outside what a "
        f"probe can read (temp_c {VALUE_RANGES['temp_c'][0]:g}..{VALUE_RANGES['temp_c'][1]:g} °C, "
        f"rh {VALUE_RANGES['rh'][0]:g}..{VALUE_RANGES['rh'][1]:g} %"
        ", as the gateway refuses from live devices; absolute zero is outside): a broken sensor, a "
        "wrong unit or a corrupt export, on which no verdict is given. An empty or nan value is a dropout."
    )


class _CheckCommand(TyperCommand):
    """`rules check`, whose help quotes the rule stage's limits: read when the help is shown, so that
    listing the commands loads no rule engine."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from rules import engine

        self.epilog = _check_limits()
        for param in self.params:
            if param.name == "accuracy_c":
                param.help = f"Device accuracy in °C, 0..{engine.MAX_ACCURACY_C:g} (default: the class's)."  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


@rules_app.command("check", cls=_CheckCommand)
def check(
    file: Annotated[Path, typer.Argument(help="Logger export CSV: header time,temp_c[,rh].")],
    product_class: Annotated[str, typer.Option("--class", help="Product class code, e.g. chilled.")],
    mode: Annotated[
        str, typer.Option(help="storage | transport (sets the recording interval).")
    ] = "transport",
    pack: Annotated[str | None, typer.Option(help="Only accept the class from this pack id.")] = None,
    accuracy_c: Annotated[
        float | None,
        typer.Option(
            "--accuracy",
            help="Device accuracy in °C (default: the class's).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object as the last line.")] = False,
    packs_dir: PacksDir = None,
) -> None:
    """Evaluate a data-logger file against a class without any database; print the verdict."""
    from rules import engine
    from rules.logfile import LogFileError, check_report, read_logger_csv

    if mode not in ("storage", "transport"):
        fail(f"--mode must be storage or transport, not {mode!r}", ExitCode.USAGE)
    if accuracy_c is not None:
        try:
            engine.check_accuracy(accuracy_c)
        except ValueError as exc:
            fail(f"--accuracy: {exc}", ExitCode.USAGE)
    ps = _load(packs_dir)
    ref = ps.lookup(product_class)
    if ref is None or (pack is not None and ref.pack_id != pack):
        where = f" in pack {pack!r}" if pack else ""
        known = ", ".join(c.code for c in ps.classes())
        fail(f"unknown class {product_class!r}{where}; known: {known}", ExitCode.USAGE)
    try:
        data = read_logger_csv(file)
    except LogFileError as exc:
        fail(f"{file}: {exc}", ExitCode.USAGE)
    ev = engine.evaluate_series(
        data.t_ms, data.temp_c, ref, "storage" if mode == "storage" else "transport", accuracy_c=accuracy_c
    )
    report = check_report(ev)
    if json_out:
        emit_json(report)
        return
    typer.echo(f"{file}: {ev.verdict.upper()} ({ref.pack_id} {ref.pack_version}, class {ref.code}, {mode})")
    for why in ev.reasons:
        typer.echo(f"  - {why}")
    typer.echo(
        f"  readings {ev.readings}, min {report['min_c']}, max {report['max_c']}, mean {report['mean_c']}, "
        f"MKT {report['mkt_c']}, out of range {ev.time_out_of_range_s:.0f} s"
    )


@rules_app.command("quarantine")
def quarantine(
    requeue: Annotated[
        int | None,
        typer.Option("--requeue", help="Send this quarantined batch back to the rules worker (cause fixed)."),
    ] = None,
) -> None:
    """The telemetry batches taken off the rules queue because judging them raised, with their errors; with
    --requeue, send one back. Last line: one JSON object."""
    import psycopg

    from coldchain.cli.common import cli_settings
    from coldchain.stack import open_stack
    from rules.models import iso_utc
    from rules.worker import queue

    settings = cli_settings()
    with open_stack(settings, must_exist=True) as stack, psycopg.connect(stack.database_url) as conn:
        if requeue is not None:
            if not queue.requeue(conn, requeue):
                fail(f"no quarantined batch {requeue}", ExitCode.FAILED)
            conn.commit()
            emit_json({"requeued": requeue})
            return
        held = queue.quarantined(conn)
    for q in held:
        span = f"{iso_utc(q.t_min)}..{iso_utc(q.t_max)}"
        typer.echo(f"batch {q.batch_id}: series {q.series_ids}, {span}: {q.error}")
    emit_json(
        {
            "quarantined": [
                {
                    "batch_id": q.batch_id,
                    "series_ids": q.series_ids,
                    "t_min": iso_utc(q.t_min),
                    "t_max": iso_utc(q.t_max),
                    "error": q.error,
                    "quarantined_at": iso_utc(q.quarantined_at),
                }
                for q in held
            ]
        }
    )

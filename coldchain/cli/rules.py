"""Composition root: `coldchain rules ...` commands (rule packs, offline logger-file checks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from coldchain.cli.common import ExitCode, emit_json, fail

if TYPE_CHECKING:
    from rules.packs import ClassRef, ClassRules, PackSet

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
    """List the loaded rule packs and every class, each limit with the clause it comes from."""
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
            typer.echo(f"  {code}: {p.classes[code].description}")
            for what, source in _limit_lines(p.classes[code]):
                typer.echo(f"    {what} — {source}")


def _c(x: float | None, inclusive: bool, side: str) -> str:
    if x is None:
        return "−∞" if side == "low" else "+∞"
    return f"{x:g}" if inclusive else f"{x:g} (exclusive)"


def _limit_lines(r: ClassRules) -> list[tuple[str, str]]:
    """Every limit of a class as (what, its source): the range, then each table in pack order."""
    lo, hi = _c(r.low_c, r.low_inclusive, "low"), _c(r.high_c, r.high_inclusive, "high")
    out = [
        (f"range [{lo}, {hi}] °C", r.source),
        (f"minimum duration {r.min_duration.seconds} s", r.min_duration.source),
    ]
    mi = r.max_interval
    for mode, lim in (
        ("storage", mi.storage),
        ("transport", mi.transport),
        ("road", mi.road),
        ("rail", mi.rail),
        ("sea", mi.sea),
        ("out of range", mi.out_of_range),
    ):
        if lim is not None:
            out.append((f"recording interval {mode} ≤ {lim.seconds} s", lim.source))
    if r.hysteresis is not None:
        out.append((f"hysteresis {r.hysteresis.value:g} °C", r.hysteresis.source))
    if r.allowances is not None and r.allowances.single_event is not None:
        se = r.allowances.single_event
        out.append((f"single-event allowance {se.seconds} s", se.source))
    if r.allowances is not None and r.allowances.cumulative is not None:
        cu = r.allowances.cumulative
        out.append((f"cumulative allowance {cu.seconds} s in {cu.window_s} s", cu.source))
    if r.band is not None:
        b = r.band
        blo, bhi = _c(b.low_c, b.low_inclusive, "low"), _c(b.high_c, b.high_inclusive, "high")
        out.append((f"band [{blo}, {bhi}] °C (outside: broken)", b.source))
        if b.spike is not None:
            out.append(
                (f"transient spikes ≤ {b.spike.high_c:g} °C for ≤ {b.spike.seconds} s", b.spike.source)
            )
    for t in r.triggers:
        op = "≥" if t.side == "high" else "≤"
        span = "" if t.kind == "instant" else f" for {t.seconds} s"
        window = f" in {t.window_s} s" if t.window_s is not None else ""
        out.append(
            (f"trigger {t.name}: {t.kind} {op} {t.threshold_c:g} °C{span}{window} → {t.verdict}", t.source)
        )
    if r.mkt is not None:
        out.append((f"MKT ≤ {r.mkt.limit_c:g} °C over {r.mkt.window_s} s", r.mkt.source))
    if r.door_open is not None:
        out.append((f"door open ≤ {r.door_open.seconds} s", r.door_open.source))
    if r.power_loss is not None:
        out.append((f"power loss ≤ {r.power_loss.seconds} s", r.power_loss.source))
    if r.defrost is not None:
        d = r.defrost
        out.append((f"defrost suspension ≤ {d.max_s} s, ≤ +{d.max_rise_c:g} °C", d.source))
    if r.faults is not None:
        f = r.faults
        rate = f"{f.max_rate_c_per_min:g} °C/min"
        what = f"sensor faults: flatline {f.flatline_s} s, spike {f.spike_c:g} °C, {rate}"
        out.append((what, f.source))
    if r.accuracy is not None:
        out.append((f"default accuracy ±{r.accuracy.value:g} °C", r.accuracy.source))
    if r.humidity is not None:
        h = r.humidity
        hlo = "−" if h.low_pct is None else f"{h.low_pct:g}"
        hhi = "−" if h.high_pct is None else f"{h.high_pct:g}"
        held = "" if h.modes is None else f" in {', '.join(h.modes)}"
        out.append((f"humidity [{hlo}, {hhi}] %RH{held}", h.source))
    if r.shelf_life is not None:
        sl = r.shelf_life
        out.append((f"shelf life {sl.model}, {sl.ref_life_h:g} h at {sl.ref_c:g} °C", sl.source))
    return out


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
        str, typer.Option(help="storage | transport | road | rail | sea (sets the recording interval).")
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
    from rules.packs import MODES

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", ExitCode.USAGE)
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
        data.t_ms,
        data.temp_c,
        ref,
        next(m for m in MODES if m == mode),
        accuracy_c=accuracy_c,
        humidity=None if data.rh is None else (data.t_ms, data.rh),
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

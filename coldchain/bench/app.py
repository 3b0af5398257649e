"""Composition root: the `coldchain bench` command group; each benchmark module registers itself here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

bench_app = typer.Typer(
    help="Benchmarks: one JSON object as the last line, with our figure and the peer/ceiling measured "
    "in the same run.",
    no_args_is_help=True,
)


def steal_meter(stat: Path = Path("/proc/stat")) -> Callable[[], float | None]:
    """Start measuring the CPU time the hypervisor took from this machine (``steal`` in ``/proc/stat``);
    the returned function gives its share, in percent, of all CPU time since (None where there is no
    ``/proc/stat``). Every benchmark reports it: on a shared host it says how much a run was held back."""

    def sample() -> tuple[int, int] | None:
        try:
            fields = stat.read_text().split("\n", 1)[0].split()
        except OSError:
            return None
        if len(fields) < 9 or fields[0] != "cpu":
            return None
        ticks = [int(f) for f in fields[1:9]]  # user nice system idle iowait irq softirq steal
        return ticks[7], sum(ticks)

    start = sample()

    def share() -> float | None:
        end = sample()
        if start is None or end is None or end[1] <= start[1]:
            return None
        return round(100 * (end[0] - start[0]) / (end[1] - start[1]), 1)

    return share

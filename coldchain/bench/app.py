"""Composition root: the `coldchain bench` command group; each benchmark module registers itself here."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated database of the benchmark's own on the server (`prefix_<random>`), dropped afterwards
    whatever happens: a benchmark never touches existing data."""
    import psycopg
    from psycopg import sql

    from coldchain.embedded import with_database
    from coldchain.migrate import migrate

    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    name = sql.Identifier(db)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    try:
        url = with_database(server_url, db)
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


# The benchmark commands; `coldchain bench` (coldchain.cli.bench) reads them from here when it runs.
bench_app = typer.Typer(no_args_is_help=True)


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


def _cpu_once(clock: Callable[[], float]) -> float:
    """Milliseconds (by `clock`, in seconds) for a fixed piece of compute (SHA-256 of 1 KB, a small dict to
    sorted JSON, interpreter loops), 20 000 times over, in this thread."""
    block = bytes(range(256)) * 4
    started = clock()
    acc = 0
    for i in range(20_000):
        acc ^= hashlib.sha256(block + i.to_bytes(4, "little")).digest()[0]
        acc += len(json.dumps({"k": i, "v": [i, i + 1], "s": "x" * (i % 7)}, sort_keys=True))
    elapsed = (clock() - started) * 1000
    return elapsed if acc >= 0 else -elapsed  # acc keeps the work from being optimised away


class _Memory:
    """A fixed piece of memory-bound work: four copies of 32 MB, and 200 000 lookups at random in a dict of
    a million entries (mostly cache misses). The copies go into a buffer allocated and touched once: a new
    32 MB object each time would time the allocator's page faults as well, and those depend on what the
    process allocated before (measured: the first probe of a run ≈ 50 % slower than the last)."""

    def __init__(self) -> None:
        rng = random.Random(7)
        self.buffer = bytearray(rng.randbytes(32 << 20))
        self.copy = bytearray(len(self.buffer))
        self.copy[:] = self.buffer
        self.table = {i: i for i in range(1_000_000)}
        self.keys = [rng.randrange(1_000_000) for _ in range(200_000)]

    def once(self, clock: Callable[[], float]) -> float:
        started = clock()
        for _ in range(4):
            self.copy[:] = self.buffer
        table = self.table
        acc = 0
        for k in self.keys:
            acc += table[k]
        elapsed = (clock() - started) * 1000
        return elapsed if acc >= 0 else -elapsed


# The server settings a database figure depends on most, reported beside it (``database_probe``).
DATABASE_SETTINGS = ("server_version", "shared_buffers", "max_wal_size", "synchronous_commit", "fsync")


def database_probe(url: str) -> dict[str, str]:
    """The database server's version and the settings of ``DATABASE_SETTINGS``, as it reports them: a
    benchmark's database figures are those of this server so configured."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", (list(DATABASE_SETTINGS),)
        ).fetchall()
    return {str(name): str(value) for name, value in rows}


def host_probe(clock: Callable[[], float] = time.perf_counter) -> Callable[[], dict[str, dict[str, float]]]:
    """Time fixed compute and memory workloads now; the returned function times them again and gives both
    (best of three each, ms). Every benchmark reports them: on a shared host the same work can take twice
    as long from one hour to the next (seen here with memory: copies and cache misses slowed down while
    ``cpu_steal_pct`` stayed at 0), so figures of different runs can be read against these. `clock` (in
    seconds) times each run of a workload."""
    memory = _Memory()

    def sample() -> dict[str, float]:
        return {
            "cpu_ms": round(min(_cpu_once(clock) for _ in range(3)), 1),
            "memory_ms": round(min(memory.once(clock) for _ in range(3)), 1),
        }

    start = sample()

    def again() -> dict[str, dict[str, float]]:
        return {"start": start, "end": sample()}

    return again

"""Composition root: `coldchain bench NAME --json` benchmarks, each measuring us against a peer or ceiling."""

from __future__ import annotations

from coldchain.bench import dashboards as _dashboards  # noqa: F401  (registers `bench dashboards`)
from coldchain.bench import ingest as _ingest  # noqa: F401  (registers `bench ingest`)
from coldchain.bench import rules as _rules  # noqa: F401  (registers `bench rules`)
from coldchain.bench import scorecard as _scorecard  # noqa: F401  (registers `bench scorecard`)
from coldchain.bench import trace as _trace  # noqa: F401  (registers `bench trace`)
from coldchain.bench.app import bench_app

__all__ = ["bench_app"]

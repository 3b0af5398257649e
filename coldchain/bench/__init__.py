"""Composition root: `coldchain bench NAME --json` benchmarks, each measuring us against a peer or ceiling."""

from __future__ import annotations

from coldchain.bench.app import bench_app

__all__ = ["bench_app"]

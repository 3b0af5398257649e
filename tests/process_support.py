"""Tests: the server processes (PostgreSQL, Mosquitto) still running out of a directory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import psutil


def servers_under(path: Path, names: Iterable[str] = ("postgres", "mosquitto")) -> list[str]:
    """`name: command line` of each running process named in `names` whose command line mentions `path`."""
    wanted = set(names)
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmd and proc.info["name"] in wanted:
            found.append(f"{proc.info['name']}: {cmd}")
    return found

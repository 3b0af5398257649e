"""Composition root: stdlib and structlog lines share one renderer: readable by default, JSON on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Configures logging as every command does (from the settings), then logs one line of each kind.
PROBE = """
import logging, structlog
from coldchain.cli.common import cli_settings
cli_settings()
logging.getLogger("probe.stdlib").warning("stdlib says %s", "hello")
structlog.get_logger("probe.structlog").warning("structlog says hello", lot="L-1")
logging.getLogger("probe.stdlib").debug("below the level")
"""


def run_probe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return subprocess.run(
        [sys.executable, *(args or ("-c", PROBE))],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def test_json_format_is_one_object_per_line_for_both_kinds() -> None:
    done = run_probe(COLDCHAIN_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(lines) == 2
    stdlib, struct = lines
    assert stdlib["event"] == "stdlib says hello"
    assert stdlib["logger"] == "probe.stdlib"
    assert struct["event"] == "structlog says hello"
    assert struct["logger"] == "probe.structlog"
    assert struct["lot"] == "L-1"
    for line in lines:
        assert line["level"] == "warning"
        assert line["timestamp"].endswith("Z")


def test_console_format_is_the_default_and_the_same_for_both_kinds() -> None:
    done = run_probe()
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2
    stdlib, struct = lines
    assert "[warning  ] stdlib says hello" in stdlib
    assert "[probe.stdlib]" in stdlib
    assert "[warning  ] structlog says hello" in struct
    assert "[probe.structlog]" in struct
    assert "lot=L-1" in struct
    for line in lines:
        assert not line.startswith("{")


@pytest.mark.parametrize("value", ["xml", "JSON "])
def test_an_unknown_format_stops_with_its_key_path(value: str) -> None:
    done = run_probe("-m", "coldchain.cli", "trace", "L-1", COLDCHAIN_LOG_FORMAT=value)
    assert done.returncode == 2
    assert "log_format (COLDCHAIN_LOG_FORMAT)" in done.stderr
    assert "Traceback" not in done.stderr

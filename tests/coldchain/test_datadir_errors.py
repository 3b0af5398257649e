"""Tests: a data directory that is missing or a file, or a database that is unreachable, is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coldchain.cli.common import ExitCode

# Commands that only read: they must not create a data directory where there is none.
READ_ONLY = [
    ("trace", "urn:epc:class:lgtin:0000000.000000.NONE"),
    ("ledger", "verify"),
    ("ledger", "verify", "--deep"),
]
# Commands that open the stack, each given valid arguments.
OPENING = [
    *READ_ONLY,
    ("db", "migrate"),
    ("ledger", "checkpoint"),
    ("devices", "add", "dev-1", "--kind", "temp_logger"),
]


def _coldchain(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_refuse_a_missing_data_directory(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = tmp_path / "mistyped"
    result = _coldchain(*args, COLDCHAIN_HOME=str(home))
    assert result.returncode == ExitCode.DATA_DIR, result.stdout + result.stderr
    assert str(home) in _one_line(result)
    assert not home.exists(), "nothing is created where nothing was"


@pytest.mark.parametrize("args", OPENING, ids=" ".join)
def test_a_home_that_is_a_file_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory\n")
    result = _coldchain(*args, COLDCHAIN_HOME=str(home))
    assert result.returncode == ExitCode.DATA_DIR, result.stdout + result.stderr
    assert "is not a directory" in _one_line(result)
    assert home.read_text() == "not a directory\n"


@pytest.mark.parametrize("args", OPENING, ids=" ".join)
def test_an_unreachable_database_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = _coldchain(
        *args, COLDCHAIN_HOME=str(tmp_path / "home"), COLDCHAIN_DATABASE_URL="postgresql://127.0.0.1:1/x"
    )
    assert result.returncode == ExitCode.UNAVAILABLE, result.stdout + result.stderr
    assert "cannot reach the database at 127.0.0.1:1/x" in _one_line(result)

"""Composition root: no library warning reaches a user (platformdirs' XDG_RUNTIME_DIR one above all)."""

from __future__ import annotations

from pathlib import Path

import pytest
from process_support import coldchain


@pytest.fixture(autouse=True)
def no_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """As under su, cron, docker or ssh without a login session; warnings shown as Python shows them."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("PYTHONWARNINGS", "default")


def assert_no_warning(stderr: str) -> None:
    assert "XDG_RUNTIME_DIR" not in stderr
    assert "Warning" not in stderr


def test_help_carries_no_warning() -> None:
    done = coldchain("--help")
    assert done.returncode == 0
    assert_no_warning(done.stderr)


def test_a_command_starting_the_embedded_database_carries_no_warning(server_tmp: Path) -> None:
    """The embedded PostgreSQL is where platformdirs is asked for the runtime directory."""
    done = coldchain("db", "migrate", env={"COLDCHAIN_HOME": str(server_tmp / "home")})
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout
    assert_no_warning(done.stderr)

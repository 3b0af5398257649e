"""Tests: without a mosquitto binary the suite stops at once, with one message saying how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A plugin that hides the binary, loaded before the suite's conftest asks for it.
NO_MOSQUITTO = """
import coldchain.embedded

coldchain.embedded.mosquitto_binary = lambda: None
"""


def test_the_suite_stops_with_one_message_without_mosquitto(tmp_path: Path) -> None:
    (tmp_path / "no_mosquitto.py").write_text(NO_MOSQUITTO)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no_mosquitto",
            "-q",
            "-p",
            "no:randomly",
            str(root / "tests" / "coldchain" / "test_cli_help.py"),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "apt-get install mosquitto" in done.stdout + done.stderr
    assert "passed" not in done.stdout
    assert (done.stdout + done.stderr).count("no mosquitto binary") == 1

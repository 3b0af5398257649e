"""Tests: the stage boundaries of the design hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_every_module_opens_with_its_stage_and_job() -> None:
    missing = []
    for pkg in ("registry", "coldchain", "gateway", "rules", "traceability", "firmware_sim", "dashboards"):
        for path in (ROOT / pkg).rglob("*.py"):
            first = path.read_text(encoding="utf-8").lstrip().splitlines()[:1]
            if not first or not first[0].startswith('"""'):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []

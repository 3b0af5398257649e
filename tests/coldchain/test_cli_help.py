"""Composition root: `coldchain --help` loads no heavy module (numba, pandas, fastapi, the stages)."""

from __future__ import annotations

import json
import subprocess
import sys

# Modules whose import costs seconds (or starts nothing but costs memory): only the commands load them.
HEAVY = ("numba", "pandas", "numpy", "fastapi", "uvicorn", "paho", "psycopg_pool", "coldchain.bench")

PROBE = """
import json, sys
from coldchain.cli import app
try:
    app(["--help"])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_help_imports_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Commands" in done.stdout
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    stages = sorted(m for m in loaded if m.split(".")[0] in ("gateway", "rules", "traceability"))
    assert heavy == []
    assert stages == []

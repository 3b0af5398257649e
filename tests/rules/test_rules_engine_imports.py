"""Tests: the rule engine's interface loads its numba modules on first use, not when a pure module of the
package (the import flow's step names) is imported by another stage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rules import engine
from rules.engine import breaks, checked, profile


def _modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    shown = "import sys; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", f"{statement}; {shown}"], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import rules.engine.flow",  # the step names the ledger derives import steps with
        "import traceability.ledger.derive",
        "import traceability.capture_worker",  # what each capture checking process starts with
    ],
)
def test_the_ledger_and_a_pure_module_of_the_engine_load_no_numba(statement: str) -> None:
    held = _modules_after(statement)
    assert "rules.engine" in held
    assert "numba" not in held
    assert "rules.kernels" not in held


def test_the_engine_loads_its_kernels_when_a_name_is_first_used() -> None:
    held = _modules_after("from rules import engine; engine.evaluate_series")
    assert {"numba", "rules.kernels", "rules.engine.profile"} <= held


def test_every_name_of_the_engine_is_its_module_s_own() -> None:
    homes = (breaks, checked, profile)
    for name in engine.__all__:
        found = getattr(engine, name)
        owners = [m for m in homes if getattr(m, name, None) is found]
        assert owners, name


def test_a_name_the_engine_does_not_have_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'evaluate_serie'"):
        _ = engine.evaluate_serie  # type: ignore[attr-defined]
    assert not hasattr(engine, "kernels_multi")

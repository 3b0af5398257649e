"""Composition root: `coldchain geofence set` stores a circle or a GeoJSON polygon and refuses what is no
fence (exit code, one line on stderr), against a real PostgreSQL database of the test's own."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from process_support import as_url, coldchain

import registry.store as registry
from coldchain.cli.common import ExitCode
from registry.models import Location
from registry.shipments import geofences

Run = Callable[..., subprocess.CompletedProcess[str]]
PORT = "urn:epc:id:sgln:6901234.00010.0"
RING = [[108.70, 21.80], [108.72, 21.80], [108.72, 21.82], [108.70, 21.82]]


@pytest.fixture
def run(tmp_path: Path, db_url: str) -> Run:
    with psycopg.connect(db_url) as conn:
        registry.add_locations(conn, [Location(PORT, "Qinzhou terminal", "port")])

    def go(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"COLDCHAIN_HOME": str(tmp_path / "home"), "COLDCHAIN_DATABASE_URL": as_url(db_url)}
        return coldchain("geofence", "set", *args, env=env)

    return go


def _fences(db_url: str) -> list[Any]:
    with psycopg.connect(db_url) as conn:
        return list(geofences(conn))


def _one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_set_a_circle_then_a_geojson_polygon(run: Run, db_url: str, tmp_path: Path) -> None:
    done = run(PORT, "--circle", "21.68", "108.6", "500", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert (answer["shape"], answer["radius_m"], answer["center_lat"]) == ("circle", 500.0, 21.68)
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[*RING, RING[0]]]}}
    path = tmp_path / "yard.geojson"
    path.write_text(json.dumps(feature))
    done = run(PORT, "--polygon", str(path))
    assert done.returncode == 0, done.stderr
    assert "polygon of 4 vertices" in done.stdout
    [fence] = _fences(db_url)
    assert fence.polygon == tuple(tuple(p) for p in RING)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json", "not JSON"),
        ('{"type": "Point", "coordinates": [1, 2]}', "Polygon"),
        ("[[0, 0], [1, 1], [1]]", "number pairs"),
        ("[[0, 0], [2, 2], [2, 0], [0, 1]]", "cross"),
    ],
)
def test_a_polygon_that_is_no_fence_is_refused(
    run: Run, db_url: str, tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    _one_line_error(run(PORT, "--polygon", str(path)), fragment)
    assert _fences(db_url) == []


def test_refusals(run: Run, db_url: str, tmp_path: Path) -> None:
    _one_line_error(run(PORT), "either --circle")
    _one_line_error(run(PORT, "--circle", "91", "108", "500"), "WGS 84")
    _one_line_error(run(PORT, "--circle", "21", "108", "0"), "radius_m")
    _one_line_error(run("urn:epc:id:sgln:6901234.99999.0", "--circle", "21", "108", "50"), "no location")
    _one_line_error(run(PORT, "--polygon", str(tmp_path / "missing.json")), "cannot read")
    assert _fences(db_url) == []

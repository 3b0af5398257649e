"""Tests for `coldchain rules packs` and `coldchain rules check` (offline logger files, no database)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from coldchain.cli import app
from rules import engine, logfile
from rules.logfile import LogFileError, check_report, read_logger_csv
from rules.packs import load_packs

runner = CliRunner()

CHECK_KEYS = {
    "verdict",
    "excursions",
    "gaps",
    "time_out_of_range_s",
    "mkt_c",
    "min_c",
    "max_c",
    "mean_c",
    "remaining_shelf_life_h",
    "pack_version",
}


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check(*args: str) -> tuple[int, dict[str, object]]:
    res = runner.invoke(app, ["rules", "check", *args, "--json"])
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "{}"
    return res.exit_code, json.loads(last) if res.exit_code == 0 else {}


def minutes_csv(values: list[str], *, start_ms: int = 1_767_225_600_000, step_min: int = 1) -> list[str]:
    return ["time,temp_c"] + [f"{start_ms + i * step_min * 60_000},{v}" for i, v in enumerate(values)]


def test_packs_lists_classes_and_limits() -> None:
    res = runner.invoke(app, ["rules", "packs", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    codes = {c["product_class"]: c for c in doc["classes"]}
    assert {"frozen", "chilled", "pharma_2_8", "usp_crt"} <= set(codes)
    assert codes["pharma_2_8"]["max_interval"]["out_of_range"]["seconds"] == 120
    assert codes["usp_crt"]["mkt"]["limit_c"] == 25.0
    assert {p["id"] for p in doc["packs"]} >= {"cn_food", "cn_drug_gsp", "vaccines", "usp", "who_pqs"}
    text = runner.invoke(app, ["rules", "packs"])
    assert text.exit_code == 0
    assert "pharma_2_8" in text.stdout
    assert "GB/T 24616-2019" in text.stdout


# Every class the issue names, by code: the listing must show each one.
REQUIRED_CLASSES = {
    *("chilled", "frozen", "seafood_frozen", "tuna_ultralow", "milk_pasteurised"),
    *("durian", "mango", "banana", "dragon_fruit", "longan", "mangosteen"),
    *("pharma_2_8", "pharma_cold", "pharma_cool", "pharma_room", "pharma_ultralow"),
    *("vaccine_2_8", "vaccine_frozen", "usp_crt", "usp_cct", "usp_freezer"),
    *("pqs_2_8", "pqs_indicator_type1", "pqs_indicator_type2"),
}


def _sources(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [v for k, v in obj.items() if k == "source"] + [x for v in obj.values() for x in _sources(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _sources(v)]
    return []


def test_packs_text_lists_every_class_with_each_limit_and_its_clause() -> None:
    packs = load_packs()
    assert {ref.code for ref in packs.classes()} >= REQUIRED_CLASSES
    res = runner.invoke(app, ["rules", "packs"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    for ref in packs.classes():
        head = lines.index(f"  {ref.code}: {ref.rules.description}")
        body: list[str] = []
        for line in lines[head + 1 :]:
            if not line.startswith("    "):
                break
            body.append(line)
        # One line per limit, each ending in the limit's own source (the clause and its words).
        sources = _sources(ref.rules.model_dump())
        assert len(body) == len(sources), ref.code
        assert all(line.strip().partition(" — ")[0] for line in body), ref.code
        assert sorted(line.strip().partition(" — ")[2] for line in body) == sorted(sources), ref.code
    assert "    band [0 (exclusive), +∞] °C (outside: broken) — Freeze-sensitive" in res.stdout
    assert "transient spikes ≤ 40 °C for ≤ 86400 s — USP <659>" in res.stdout
    assert "recording interval road ≤ 600 s — GB 29753-2013" in res.stdout
    assert "humidity [35, 75] %RH in storage — Drug GSP" in res.stdout


def test_check_iso_file_with_excursion_gap_and_dropout(tmp_path: Path) -> None:
    lines = ["time,temp_c,rh"]
    lines += [f"2026-01-01T00:{m:02d}:00Z,{5.0},60" for m in range(0, 10)]
    lines += [f"2026-01-01T00:{m:02d}:00Z,{9.5},60" for m in range(10, 16)]
    lines += ["2026-01-01T00:16:00Z,,60"]  # a dropout
    lines += [f"2026-01-01T00:{m:02d}:00Z,{5.0},60" for m in range(17, 30)]
    lines += ["2026-01-01T01:30:00+00:00,5.0,60"]  # 60 min later: beyond 30 min in storage
    code, out = check(str(write(tmp_path, "logger.csv", lines)), "--class", "pharma_2_8", "--mode", "storage")
    assert code == 0
    assert set(out) >= CHECK_KEYS
    assert out["verdict"] == "broken"
    assert out["excursions"] == [
        {
            "start": "2026-01-01T00:10:00.000Z",
            "end": "2026-01-01T00:15:00.000Z",
            "duration_s": 300.0,
            "peak_c": 9.5,
            "rule_id": "cn_drug_gsp/pharma_2_8/range",
            "certain": True,
        }
    ]
    assert out["gaps"] == [
        {
            "start": "2026-01-01T00:29:00.000Z",
            "end": "2026-01-01T01:30:00.000Z",
            "duration_s": 3660.0,
            "allowed_s": 1800.0,
            "rule_id": "cn_drug_gsp/pharma_2_8/gap",
        }
    ]
    # 9.5 °C held from 00:10 to the next valid reading 00:17 (the dropout carries no evidence).
    assert out["time_out_of_range_s"] == 420.0
    assert (out["min_c"], out["max_c"], out["remaining_shelf_life_h"]) == (5.0, 9.5, None)
    assert out["pack_version"] == load_packs()["pharma_2_8"].pack_version
    assert isinstance(out["mkt_c"], float)


def test_check_epoch_ms_pass_excursion_and_modes(tmp_path: Path) -> None:
    ok = write(tmp_path, "ok.csv", minutes_csv(["2.0"] * 30))
    code, out = check(str(ok), "--class", "chilled")
    assert (code, out["verdict"], out["excursions"], out["gaps"]) == (0, "pass", [], [])
    assert isinstance(out["remaining_shelf_life_h"], float)
    assert 239.0 < out["remaining_shelf_life_h"] < 240.0

    hot = write(tmp_path, "hot.csv", minutes_csv(["2.0"] * 5 + ["9.0"] * 20 + ["2.0"] * 5))
    code, out = check(str(hot), "--class", "chilled", "--pack", "cn_food")
    assert (code, out["verdict"]) == (0, "excursion")

    sparse = write(tmp_path, "sparse.csv", minutes_csv(["-20.0"] * 4, step_min=20))
    assert check(str(sparse), "--class", "frozen", "--mode", "storage")[1]["verdict"] == "pass"
    assert check(str(sparse), "--class", "frozen", "--mode", "transport")[1]["verdict"] == "broken"

    crt = write(tmp_path, "crt.csv", minutes_csv(["22.0"] * 60 + ["27.0"] * 10 + ["22.0"] * 60))
    code, out = check(str(crt), "--class", "usp_crt", "--mode", "storage")
    assert (code, out["verdict"]) == (0, "excursion")
    assert out["mkt_c"] < 25.0  # type: ignore[operator]


def test_check_unsorted_rows_are_put_in_device_time_order(tmp_path: Path) -> None:
    rows = minutes_csv(["2.0"] * 10)
    shuffled = [rows[0], *reversed(rows[1:])]
    code, out = check(str(write(tmp_path, "rev.csv", shuffled)), "--class", "chilled")
    assert (code, out["verdict"], out["gaps"]) == (0, "pass", [])


def test_check_refuses_bad_input(tmp_path: Path) -> None:
    bad_header = write(tmp_path, "h.csv", ["when,temp", "0,1"])
    res = runner.invoke(app, ["rules", "check", str(bad_header), "--class", "chilled", "--json"])
    assert res.exit_code == 2
    assert "header must contain time and temp_c" in res.output
    bad_time = write(tmp_path, "t.csv", ["time,temp_c", "yesterday,1.0"])
    res = runner.invoke(app, ["rules", "check", str(bad_time), "--class", "chilled"])
    assert res.exit_code == 2
    assert "line 2" in res.output
    ok = write(tmp_path, "ok.csv", minutes_csv(["2.0"] * 3))
    assert runner.invoke(app, ["rules", "check", str(ok), "--class", "rambutan"]).exit_code == 2
    assert (
        runner.invoke(app, ["rules", "check", str(ok), "--class", "chilled", "--pack", "usp"]).exit_code == 2
    )
    assert (
        runner.invoke(app, ["rules", "check", str(ok), "--class", "chilled", "--mode", "air"]).exit_code == 2
    )


def test_check_empty_file_is_broken(tmp_path: Path) -> None:
    code, out = check(str(write(tmp_path, "e.csv", ["time,temp_c"])), "--class", "chilled")
    assert (code, out["verdict"], out["mkt_c"], out["min_c"]) == (0, "broken", None, None)


# --- hostile input: every file is a verdict or a LogFileError, never another exception -------------

_T0_MS = 1_767_225_600_000
_CHILLED = load_packs().lookup("chilled")


def _judge_or_refuse(path: Path) -> None:
    """read_logger_csv either refuses with a one-line LogFileError, or gives a series the engine judges."""
    try:
        data = read_logger_csv(path)
    except LogFileError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "\n" not in message
        assert message.startswith(("line ", "cannot read"))
        return
    assert _CHILLED is not None
    ev = engine.evaluate_series(data.t_ms, data.temp_c, _CHILLED, "transport")
    assert ev.mkt_c is None or math.isfinite(ev.mkt_c)
    assert ev.remaining_shelf_life_h is None or not math.isnan(ev.remaining_shelf_life_h)
    check_report(ev)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_any_bytes_are_judged_or_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "any.csv"
    path.write_bytes(content)
    _judge_or_refuse(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=200).map(lambda b: b"time,temp_c,rh\n" + b),
    st.lists(
        st.tuples(
            st.one_of(st.integers(-(2**70), 2**70), st.integers(_T0_MS, _T0_MS + 86_400_000)),
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-150, 200)),
            st.one_of(st.just(""), st.floats(-10, 110).map(repr)),
        ),
        max_size=40,
    ),
)
def test_any_numbers_are_judged_or_refused(
    tmp_path: Path, noise: bytes, rows: list[tuple[int, float, str]]
) -> None:
    path = tmp_path / "numbers.csv"
    body = "".join(f"{t},{v!r},{rh}\n" for t, v, rh in rows).encode()
    path.write_bytes(b"time,temp_c,rh\n" + body)
    _judge_or_refuse(path)
    path.write_bytes(noise + b"\n" + body)
    _judge_or_refuse(path)


def test_engine_refuses_a_temperature_no_probe_can_read() -> None:
    assert _CHILLED is not None
    t = np.array([_T0_MS, _T0_MS + 60_000, _T0_MS + 120_000], dtype=np.int64)
    for bad in (-273.15, 1e20, math.inf, -math.inf, -100.5):
        v = np.array([2.0, bad, 2.0])
        with pytest.raises(ValueError, match=r"reading 1: .* lies outside -100\.\.150"):
            engine.evaluate_series(t, v, _CHILLED, "transport")
    for edge in (-100.0, 150.0, math.nan):
        ev = engine.evaluate_series(t, np.array([2.0, edge, 2.0]), _CHILLED, "transport")
        assert ev.mkt_c is not None
        assert math.isfinite(ev.mkt_c)


def test_engine_accuracy_range() -> None:
    for ok in (0.0, 0.5, engine.MAX_ACCURACY_C):
        assert engine.check_accuracy(ok) == ok
    for bad in (-0.1, math.nan, math.inf, engine.MAX_ACCURACY_C + 0.1):
        with pytest.raises(ValueError, match=r"within 0\.\.10 °C"):
            engine.check_accuracy(bad)


def test_check_reads_lines_with_a_bom_crlf_blank_lines_and_short_rows(tmp_path: Path) -> None:
    body = "\r\n".join(["time,temp_c", f"{_T0_MS},2.0", "", f"{_T0_MS + 60_000}", f"{_T0_MS + 120_000},2.5"])
    path = tmp_path / "win.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode() + b"\r\n")
    data = read_logger_csv(path)
    assert data.t_ms.tolist() == [_T0_MS, _T0_MS + 60_000, _T0_MS + 120_000]
    assert math.isnan(data.temp_c[1])
    assert data.temp_c[2] == 2.5
    bad = tmp_path / "bad.csv"
    bad.write_text("time,temp_c\n\n" + f"{_T0_MS},2\n" + f"{_T0_MS},x\n", encoding="utf-8")
    with pytest.raises(LogFileError, match=r"^line 4: temp_c 'x' is not a number$"):
        read_logger_csv(bad)


def test_file_and_row_bounds_refuse_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped bounds (256 MiB, 5 000 000 rows) are lowered so the case fits a unit test.
    path = write(tmp_path, "long.csv", minutes_csv(["2.0"] * 50))
    monkeypatch.setattr(logfile, "MAX_ROWS", 49)
    with pytest.raises(LogFileError, match=r"^line 51: more than 49 rows$"):
        read_logger_csv(path)
    monkeypatch.setattr(logfile, "MAX_ROWS", 50)
    assert read_logger_csv(path).t_ms.shape == (50,)
    monkeypatch.setattr(logfile, "MAX_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(LogFileError, match=r"^line 51: the file is larger than \d+ bytes$"):
        read_logger_csv(path)
    monkeypatch.setattr(logfile, "MAX_FILE_BYTES", path.stat().st_size)
    assert read_logger_csv(path).t_ms.shape == (50,)

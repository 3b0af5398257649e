"""Tests: a bad input file, option or setting ends a `coldchain` command with one line and its exit code."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.cli.common import ExitCode, one_line
from rules.logfile import MAX_LINE_BYTES

COLDCHAIN = str(Path(sys.executable).with_name("coldchain"))
runner = CliRunner()

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def assert_one_line_error(code: int, stdout: str, stderr: str, expected: ExitCode, *fragments: str) -> None:
    """The command failed with `expected`, and said why in exactly one stderr line, without a traceback."""
    assert code == expected, (code, stdout, stderr)
    assert "Traceback" not in stderr + stdout
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # The timeout is a deadline for a hung command, not a measurement: each case ends in seconds.
    return subprocess.run(
        [COLDCHAIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rules_check(path: Path | str, *extra: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["rules", "check", str(path), "--class", "chilled", *extra])
    # CliRunner catches what would be a traceback: only a clean exit leaves no exception behind.
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.stdout, res.stderr


def csv_file(tmp_path: Path, rows: list[str], name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text("time,temp_c\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# --- rules check: files that are not logger exports ------------------------------------------------


def test_binary_executable_is_refused_in_one_line() -> None:
    proc = run_cli("rules", "check", "/bin/ls", "--class", "chilled")
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, ExitCode.USAGE, "/bin/ls: line 1")


def test_dev_zero_is_refused_without_reading_it_all() -> None:
    proc = run_cli("rules", "check", "/dev/zero", "--class", "chilled")
    assert_one_line_error(
        proc.returncode, proc.stdout, proc.stderr, ExitCode.USAGE, f"longer than {MAX_LINE_BYTES} bytes"
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (random.Random(11).randbytes(4096), "(a binary file, not a CSV export)"),
        (b"time,temp_c\n" + bytes(range(128, 256)), "line 2: byte 0x80 at column 1 is not UTF-8"),
        (b"time,temp_c\n1767225600000,2\xff\n", "line 2: byte 0xff at column 16 is not UTF-8"),
        (b"time,temp_c\n1767225600000,\x002\n", "line 2: holds a NUL byte"),
        (b"\x00" * 100, "line 1: holds a NUL byte"),
        (b"", "line 1: header must contain time and temp_c"),
        (b"\n\n", "line 1: header must contain time and temp_c"),
        (b"time,temp_c\n" + b"9" * (MAX_LINE_BYTES + 10) + b"\n", f"line 2: longer than {MAX_LINE_BYTES}"),
        (b'time,temp_c\n"2026-01-01T00:00:00Z,2\n', "line 2: not a valid CSV row"),
    ],
    ids=["random", "all-bytes", "bad-utf8", "nul-in-row", "nul-header", "empty", "blank", "long", "quote"],
)
def test_file_that_is_not_csv_text_is_refused(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    code, out, err = rules_check(path)
    assert_one_line_error(code, out, err, ExitCode.USAGE, f"{path}: ", fragment)


def test_unreadable_paths_are_refused(tmp_path: Path) -> None:
    code, out, err = rules_check(tmp_path / "missing.csv")
    assert_one_line_error(code, out, err, ExitCode.USAGE, "cannot read: No such file or directory")
    code, out, err = rules_check(tmp_path)
    assert_one_line_error(code, out, err, ExitCode.USAGE, "cannot read: Is a directory")
    locked = csv_file(tmp_path, [f"{T0_MS},2"], name="locked.csv")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # root reads anything: the case then cannot arise
            return
        code, out, err = rules_check(locked)
        assert_one_line_error(code, out, err, ExitCode.USAGE, "cannot read: Permission denied")
    finally:
        locked.chmod(0o600)


def test_file_name_with_a_line_break_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.csv"
    path.write_bytes(b"\xff")
    code, out, err = rules_check(path)
    assert_one_line_error(code, out, err, ExitCode.USAGE, "two\\nlines.csv")


# --- rules check: readings no probe can give -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["1e20", "-273.15", "-1e20", "-300", "150.01", "-100.5", "inf", "-inf", "Infinity", "1e400"],
)
def test_impossible_temperature_refuses_the_file_naming_the_line(tmp_path: Path, value: str) -> None:
    path = csv_file(tmp_path, [f"{T0_MS},2.0", f"{T0_MS + 60_000},{value}", f"{T0_MS + 120_000},2.0"])
    code, out, err = rules_check(path)
    assert_one_line_error(code, out, err, ExitCode.USAGE, "line 3: temp_c", "outside -100..150")


@pytest.mark.parametrize("value", ["-100", "150", "nan", "NaN", ""])
def test_extreme_but_possible_values_and_dropouts_are_judged(tmp_path: Path, value: str) -> None:
    path = csv_file(tmp_path, [f"{T0_MS + i * 60_000},{value if i == 5 else '2.0'}" for i in range(10)])
    code, out, err = rules_check(path)
    assert code == ExitCode.OK, err
    assert "Traceback" not in out + err


def test_impossible_humidity_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rh.csv"
    path.write_text(f"time,temp_c,rh\n{T0_MS},2.0,60\n{T0_MS + 60_000},2.0,140\n", encoding="utf-8")
    code, out, err = rules_check(path)
    assert_one_line_error(code, out, err, ExitCode.USAGE, "line 3: rh", "outside 0..100")


@pytest.mark.parametrize(
    ("time", "fragment"),
    [
        ("99999999999999999999999", "lies outside 2000..2100"),
        ("-1", "lies outside 2000..2100"),
        ("9999-12-31T23:59:59Z", "lies outside 2000..2100"),
        ("1970-01-01T00:00:00", "lies outside 2000..2100"),
        ("²", "is neither ISO 8601 nor epoch milliseconds"),
        ("--5", "is neither ISO 8601 nor epoch milliseconds"),
    ],
)
def test_impossible_time_refuses_the_file(tmp_path: Path, time: str, fragment: str) -> None:
    path = csv_file(tmp_path, [f"{T0_MS},2.0", f"{time},2.0"])
    code, out, err = rules_check(path)
    assert_one_line_error(code, out, err, ExitCode.USAGE, "line 3: time", fragment)


# --- rules check: options ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "-0.01", "nan", "inf", "-inf", "1e400", "10.5"])
def test_accuracy_outside_its_range_is_refused(tmp_path: Path, value: str) -> None:
    path = csv_file(tmp_path, [f"{T0_MS},2.0"])
    code, out, err = rules_check(path, f"--accuracy={value}")
    assert_one_line_error(code, out, err, ExitCode.USAGE, "--accuracy", "within 0..10 °C")


@pytest.mark.parametrize("value", ["0", "0.5", "10"])
def test_accuracy_within_its_range_is_used(tmp_path: Path, value: str) -> None:
    path = csv_file(tmp_path, [f"{T0_MS},2.0"])
    code, _, err = rules_check(path, f"--accuracy={value}")
    assert code == ExitCode.OK, err


def test_rule_pack_folder_problems_are_one_line(tmp_path: Path) -> None:
    log = csv_file(tmp_path, [f"{T0_MS},2.0"])
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "bin.toml").write_bytes(b"format = 1\n\xff\xfe")
    code, out, err = rules_check(log, "--packs-dir", str(packs))
    assert_one_line_error(code, out, err, ExitCode.USAGE, "bin.toml: byte 11 (from 0) is not UTF-8")
    (packs / "bin.toml").write_text('format = 1\nid = "bin"\n', encoding="utf-8")  # many errors at once
    code, out, err = rules_check(log, "--packs-dir", str(packs))
    assert_one_line_error(
        code, out, err, ExitCode.USAGE, "bin.toml: version: Field required; bin.toml: title"
    )
    (packs / "bin.toml").unlink()
    (packs / "zero.toml").symlink_to("/dev/zero")
    code, out, err = rules_check(log, "--packs-dir", str(packs))
    assert_one_line_error(code, out, err, ExitCode.USAGE, "zero.toml: larger than")


# --- settings, for every command that reads them -----------------------------------------------------

SETTINGS_COMMANDS = [
    ["db", "migrate"],
    ["demo"],
    ["run", "api"],
    ["sim", "run"],
    ["trace", "lot-1"],
    ["devices", "add", "dev-1", "--kind", "temp_logger"],
    ["ledger", "verify"],
    ["ledger", "checkpoint"],
    ["ledger", "api-key", "create", "--role", "inspector", "--name", "x"],
]


def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> dict[str, str]:
    """Only the given COLDCHAIN_* settings (the test harness's own variables stay), and a fresh home."""
    for key in list(os.environ):
        if key.startswith("COLDCHAIN_") and not key.startswith("COLDCHAIN_TEST_"):
            monkeypatch.delenv(key)
    return {"COLDCHAIN_HOME": str(tmp_path / "home"), **values}


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    res = runner.invoke(app, args, env=env)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.stdout, res.stderr


def test_malformed_webhook_list_stops_the_process_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    env |= {"COLDCHAIN_HOME": str(tmp_path / "home"), "COLDCHAIN_ALERT_WEBHOOKS": "notjson"}
    proc = run_cli("db", "migrate", env=env, cwd=tmp_path)
    assert_one_line_error(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        ExitCode.USAGE,
        "invalid settings: alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS): ",
        "JSON list of URLs",
    )
    assert not (tmp_path / "home").exists(), "nothing was started or created"


@pytest.mark.parametrize("command", SETTINGS_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_malformed_webhook_list_stops_every_command_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    env = clean_env(monkeypatch, tmp_path, COLDCHAIN_ALERT_WEBHOOKS="notjson")
    code, out, err = invoke(command, env)
    assert_one_line_error(
        code, out, err, ExitCode.USAGE, "invalid settings: alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS): "
    )
    assert not (tmp_path / "home").exists(), "nothing was started or created"


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ({"COLDCHAIN_ALERT_WEBHOOKS": '{"a": 1}'}, ["alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS)"]),
        ({"COLDCHAIN_ALERT_WEBHOOKS": "[1]"}, ["alert_webhooks.0 (COLDCHAIN_ALERT_WEBHOOKS)"]),
        ({"COLDCHAIN_ALERT_WEBHOOKS": '["ftp://x"]'}, ["must be http(s)"]),
        ({"COLDCHAIN_API_PORT": "abc"}, ["api_port (COLDCHAIN_API_PORT)"]),
        ({"COLDCHAIN_GATEWAY_METRICS_PORT": "-1"}, ["gateway_metrics_port (COLDCHAIN_GATEWAY_METRICS_PORT)"]),
        ({"COLDCHAIN_GATEWAY_CLIENT_ID": "a b\nc"}, ["gateway_client_id (COLDCHAIN_GATEWAY_CLIENT_ID)"]),
        ({"COLDCHAIN_DATABASE_URL": "mysql://x"}, ["database_url (COLDCHAIN_DATABASE_URL)"]),
        (
            {"COLDCHAIN_API_PORT": "abc", "COLDCHAIN_ALERT_WEBHOOKS": "notjson"},
            ["api_port (COLDCHAIN_API_PORT)", "; alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS)"],
        ),
        (
            {"COLDCHAIN_DATABASE_ULR": "x", "COLDCHAIN_BROKR_URL": "y"},
            ["COLDCHAIN_BROKR_URL: no such setting; "],
        ),
    ],
    ids=["object", "list-of-int", "scheme", "port", "metrics", "client-id", "db-url", "two", "unknown"],
)
def test_bad_settings_are_one_line_naming_each_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str], fragments: list[str]
) -> None:
    code, out, err = invoke(["db", "migrate"], clean_env(monkeypatch, tmp_path, **values))
    assert_one_line_error(code, out, err, ExitCode.USAGE, "invalid settings: ", *fragments)


def test_one_line_escapes_every_control_character() -> None:
    assert one_line("a\nb\r\tc\x00\x1b[31m é ∞") == "a\\nb\\r\\tc\\x00\\x1b[31m é ∞"


# --- any command: an unknown class for the bench, and a fault of the program itself ------------------


def test_bench_of_an_unknown_class_is_refused_in_one_line() -> None:
    res = run_cli("bench", "rules", "--class", "no_such_class", "--quick")
    assert_one_line_error(res.returncode, res.stdout, res.stderr, ExitCode.USAGE, "no_such_class", "chilled")


def test_bench_of_a_class_without_the_whole_rule_set_is_refused_in_one_line() -> None:
    """A class the bench's rule set does not fit (durian: no sensor faults or shelf life) is a usage
    error naming what is missing and the classes that fit, not an internal error."""
    res = run_cli("bench", "rules", "--class", "durian", "--quick")
    assert_one_line_error(
        res.returncode, res.stdout, res.stderr, ExitCode.USAGE, "durian", "shelf-life", "chilled"
    )


def test_an_unexpected_exception_is_one_line_naming_only_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault inside a command (injected into the log reader) ends as INTERNAL: one line with the
    exception's type, never its text, which may hold data the user must not see."""
    import rules.logfile

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("secret-row-content")

    monkeypatch.setattr(rules.logfile, "read_logger_csv", broken)
    code, stdout, stderr = rules_check(csv_file(tmp_path, [f"{T0_MS},4.0"]))
    assert_one_line_error(code, stdout, stderr, ExitCode.INTERNAL, "internal error (KeyError)")
    assert "secret-row-content" not in stdout + stderr

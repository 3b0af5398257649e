"""Tests: settings are typed and an invalid one stops the process naming its key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coldchain.settings import BrokerAddress, SettingsError, load_settings


def test_defaults_mean_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("COLDCHAIN_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.database_url is None
    assert s.broker() is None
    assert s.home == Path(".coldchain")


def test_env_prefix_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", "postgresql://u:pw-7f3a9c@db/x")
    monkeypatch.setenv("COLDCHAIN_BROKER_URL", "mqtt://gw:pw@broker:1884")
    s = load_settings()
    assert "pw-7f3a9c" not in repr(s), "secrets never print"
    b = s.broker()
    assert b == BrokerAddress.parse("mqtt://gw:pw@broker:1884")
    assert (b.host, b.port, b.username) == ("broker", 1884, "gw")
    assert b is not None
    assert b.password is not None
    assert b.password.get_secret_value() == "pw"


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("COLDCHAIN_API_PORT", "not-a-port", "api_port (COLDCHAIN_API_PORT)"),
        ("COLDCHAIN_API_PORT", "70000", "api_port (COLDCHAIN_API_PORT)"),
        ("COLDCHAIN_DATABASE_URL", "mysql://x", "database_url (COLDCHAIN_DATABASE_URL)"),
        ("COLDCHAIN_BROKER_URL", "http://x", "broker_url (COLDCHAIN_BROKER_URL)"),
        ("COLDCHAIN_LOG_LEVEL", "loud", "log_level (COLDCHAIN_LOG_LEVEL)"),
    ],
)
def test_invalid_setting_names_its_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=r"invalid settings") as info:
        load_settings()
    assert fragment in str(info.value)


def test_unknown_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_ULR", "postgresql://typo/x")
    monkeypatch.setenv("COLDCHAIN_TEST_DB_URL", "postgresql://harness/x")  # the test harness's own
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "COLDCHAIN_DATABASE_ULR: no such setting" in str(info.value)
    assert "COLDCHAIN_TEST_DB_URL" not in str(info.value)


def test_cli_stops_with_the_key_path_on_a_bad_setting(tmp_path: Path) -> None:
    env = {**os.environ, "COLDCHAIN_API_PORT": "eighty", "COLDCHAIN_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "api_port (COLDCHAIN_API_PORT)" in proc.stderr
    assert "Traceback" not in proc.stderr

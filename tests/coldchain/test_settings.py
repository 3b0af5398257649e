"""Tests: settings are typed and an invalid one stops the process naming its key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        (
            "COLDCHAIN_ALERT_WEBHOOKS",
            "notjson",
            "alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS): Value error, must be a JSON list",
        ),
        ("COLDCHAIN_ALERT_WEBHOOKS", "", "alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS)"),
        ("COLDCHAIN_ALERT_WEBHOOKS", '{"url": "https://x"}', "alert_webhooks (COLDCHAIN_ALERT_WEBHOOKS)"),
        (
            "COLDCHAIN_ALERT_WEBHOOKS",
            '["https://ok.example", 7]',
            "alert_webhooks.1 (COLDCHAIN_ALERT_WEBHOOKS)",
        ),
        ("COLDCHAIN_GATEWAY_CLIENT_ID", "two words", "gateway_client_id (COLDCHAIN_GATEWAY_CLIENT_ID)"),
        ("COLDCHAIN_RULES_METRICS_PORT", "-1", "rules_metrics_port (COLDCHAIN_RULES_METRICS_PORT)"),
        ("COLDCHAIN_LEDGER_METRICS_PORT", "65536", "ledger_metrics_port (COLDCHAIN_LEDGER_METRICS_PORT)"),
        ("COLDCHAIN_LEDGER_VERIFY_EVERY_S", "0", "ledger_verify_every_s (COLDCHAIN_LEDGER_VERIFY_EVERY_S)"),
        ("COLDCHAIN_LEDGER_VERIFY_EVERY_S", "nan", "ledger_verify_every_s (COLDCHAIN_LEDGER_VERIFY_EVERY_S)"),
    ],
)
def test_invalid_setting_names_its_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=r"^invalid settings: ") as info:
        load_settings()
    assert fragment in str(info.value)
    assert "\n" not in str(info.value), "one line"


def test_webhooks_are_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_ALERT_WEBHOOKS", '["https://ops.example/hooks/cold", "http://10.0.0.9/h"]')
    assert load_settings().alert_webhooks == ["https://ops.example/hooks/cold", "http://10.0.0.9/h"]
    monkeypatch.setenv("COLDCHAIN_ALERT_WEBHOOKS", "[]")
    assert load_settings().alert_webhooks == []
    monkeypatch.delenv("COLDCHAIN_ALERT_WEBHOOKS")
    assert load_settings(alert_webhooks=["https://a.example"]).alert_webhooks == ["https://a.example"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_webhooks_text_loads_or_names_the_key(text: str) -> None:
    # An environment value holds no NUL (execve cannot pass one); surrogates are not text.
    text = "".join(ch for ch in text if ch != "\0" and not 0xD800 <= ord(ch) <= 0xDFFF)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLDCHAIN_ALERT_WEBHOOKS", text)
        try:
            load_settings()
        except SettingsError as exc:
            message = str(exc)
        else:
            return
    assert message.startswith("invalid settings: alert_webhooks")
    assert "\n" not in message


def test_several_problems_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_API_PORT", "x")
    monkeypatch.setenv("COLDCHAIN_LOG_LEVEL", "x")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("invalid settings: api_port (COLDCHAIN_API_PORT): ")
    assert "; log_level (COLDCHAIN_LOG_LEVEL): " in str(info.value)
    assert "\n" not in str(info.value)


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
    assert len(proc.stderr.splitlines()) == 1, proc.stderr

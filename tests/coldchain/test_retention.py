"""Tests, composition root: retention policies come from the settings, off by default, never too short."""

from __future__ import annotations

import re

import psycopg
import pytest

from coldchain.retention import RETENTION, apply_retention
from coldchain.settings import RETENTION_READING_MIN_DAYS, Settings, SettingsError, load_settings


def _timescale(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def _policies(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT coalesce(v.view_name, j.hypertable_name), j.config ->> 'drop_after'"
            " FROM timescaledb_information.jobs j"
            " LEFT JOIN timescaledb_information.continuous_aggregates v"
            "   ON v.materialization_hypertable_name = j.hypertable_name"
            " WHERE j.proc_name = 'policy_retention'"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def test_a_raw_reading_retention_under_five_years_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_RETENTION_READING_DAYS", str(RETENTION_READING_MIN_DAYS - 1))
    with pytest.raises(
        SettingsError, match=re.escape("retention_reading_days (COLDCHAIN_RETENTION_READING_DAYS)")
    ):
        load_settings()
    monkeypatch.setenv("COLDCHAIN_RETENTION_READING_DAYS", str(RETENTION_READING_MIN_DAYS))
    assert load_settings().retention_reading_days == RETENTION_READING_MIN_DAYS


def test_every_retained_relation_has_its_setting() -> None:
    assert set(RETENTION) == {"reading", "reading_1m", "reading_1h", "reading_1d"}
    for name in RETENTION.values():
        assert name in Settings.model_fields
        assert Settings.model_fields[name].default is None, "retention is off by default"


def test_retention_follows_the_settings(db_url: str) -> None:
    off = apply_retention(db_url, Settings())
    assert off == [], "nothing set: nothing said, nothing dropped"
    some = Settings(retention_reading_days=2000, retention_reading_1m_days=30)
    lines = apply_retention(db_url, some)
    if not _timescale(db_url):
        assert lines == [
            "reading: COLDCHAIN_RETENTION_READING_DAYS=2000 not applied on plain PostgreSQL",
            "reading_1m: COLDCHAIN_RETENTION_READING_1M_DAYS=30 not applied on plain PostgreSQL",
        ]
        return
    assert lines == [
        "reading: chunks older than 2000 days are dropped",
        "reading_1m: chunks older than 30 days are dropped",
    ]
    assert _policies(db_url) == {"reading": "2000 days", "reading_1m": "30 days"}
    apply_retention(db_url, Settings(retention_reading_1m_days=60))
    assert _policies(db_url) == {"reading_1m": "60 days"}, "an unset relation loses its old policy"
    apply_retention(db_url, Settings())
    assert _policies(db_url) == {}

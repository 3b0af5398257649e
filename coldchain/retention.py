"""Composition root: sets each table's retention policy from the settings (TimescaleDB; off by default).

One policy per relation: the raw readings (a hypertable) and the three rollups (continuous aggregates).
A relation whose setting is unset keeps everything: any policy an earlier setting made is removed, so the
settings are the whole truth. Plain PostgreSQL has no retention policies; there a set value is reported
as not applied and nothing is deleted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import psycopg
from psycopg import sql

from coldchain.settings import Settings

# Relation -> the setting that holds its retention in days.
RETENTION: Final = {
    "reading": "retention_reading_days",
    "reading_1m": "retention_reading_1m_days",
    "reading_1h": "retention_reading_1h_days",
    "reading_1d": "retention_reading_1d_days",
}


def apply_retention(conninfo: str, settings: Settings) -> list[str]:
    """Make each relation's retention policy what the settings say; return one line per set relation."""
    wanted: dict[str, int | None] = {rel: getattr(settings, name) for rel, name in RETENTION.items()}
    lines = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        timescale = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        if timescale is None:
            for rel, days in wanted.items():
                if days is not None:
                    env = "COLDCHAIN_" + RETENTION[rel].upper()
                    lines.append(f"{rel}: {env}={days} not applied on plain PostgreSQL")
            return lines
        for rel, days in wanted.items():
            name = sql.Literal(rel)
            conn.execute(sql.SQL("SELECT remove_retention_policy({}, if_exists => true)").format(name))
            if days is None:
                continue  # the default: kept forever, said by nothing
            conn.execute(
                # drop_after is declared "any": it must arrive typed, an interval (a timedelta literal).
                sql.SQL("SELECT add_retention_policy({}, drop_after => {})").format(
                    name, sql.Literal(timedelta(days=days))
                )
            )
            lines.append(f"{rel}: chunks older than {days} days are dropped")
    return lines

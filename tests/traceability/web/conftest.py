"""Tests: the web pages' fixtures: one seeded database per module (the desk's data), the app on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from web_support import Desk, seed_desk

from coldchain.embedded import with_database


@pytest.fixture(scope="module")
def desk(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A database of the module's own, copied from the migrated template and seeded once."""
    name = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(template_db)))
    try:
        yield seed_desk(with_database(pg_server_url, name), Path(tmp_path_factory.mktemp("keys")))
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

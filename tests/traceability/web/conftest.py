"""Tests: the web pages' fixtures: one seeded database per module (the desk's data), the app served on it
by uvicorn (the session's chromium is tests/conftest.py's ``browser``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import Desk, module_database, seed_desk, serve


@pytest.fixture(scope="module")
def desk(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A database of the module's own, copied from the migrated template and seeded once."""
    with module_database(pg_server_url, template_db) as db_url:
        yield seed_desk(db_url, Path(tmp_path_factory.mktemp("keys")))


@pytest.fixture(scope="module")
def served(desk: Desk) -> Iterator[str]:
    """The app under uvicorn on the module's database."""
    with serve(desk.db_url, desk.ledger_key) as url:
        yield url

"""Tests: the map tile URL setting reaches the pages' options, and only its origin is allowed to load."""

from __future__ import annotations

import pytest

from coldchain.runtime import api_options
from coldchain.settings import Settings, SettingsError, load_settings
from traceability.web.pages import content_policy


def test_no_tiles_by_default() -> None:
    assert api_options(Settings()).map_tile_url is None
    assert "img-src 'self' data:;" in content_policy(None)


def test_the_tile_url_is_passed_to_the_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_MAP_TILE_URL", "https://tiles.example/{z}/{x}/{y}.png")
    options = api_options(load_settings())
    assert options.map_tile_url == "https://tiles.example/{z}/{x}/{y}.png"
    assert "img-src 'self' data: https://tiles.example;" in content_policy(options.map_tile_url)


def test_a_tile_url_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_MAP_TILE_URL", "file:///etc/passwd")
    with pytest.raises(SettingsError, match="COLDCHAIN_MAP_TILE_URL"):
        load_settings()

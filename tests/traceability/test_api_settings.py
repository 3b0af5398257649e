"""Tests: the API's and capture's settings are bounded, and their bounds are the ones the code enforces."""

from __future__ import annotations

import math

import pytest

from coldchain.settings import SettingsError, load_settings
from traceability import limits
from traceability.api.options import ApiOptions
from traceability.epcis.capture import CaptureLimits


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e9", "0", str(limits.API_POOL_TIMEOUT_S_MAX * 2)])
def test_a_pool_timeout_that_is_not_finite_or_beyond_the_bound_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("COLDCHAIN_API_POOL_TIMEOUT_S", value)
    with pytest.raises(SettingsError, match="COLDCHAIN_API_POOL_TIMEOUT_S"):
        load_settings()


def test_the_largest_pool_timeout_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_API_POOL_TIMEOUT_S", str(limits.API_POOL_TIMEOUT_S_MAX))
    assert load_settings().api_pool_timeout_s == limits.API_POOL_TIMEOUT_S_MAX


@pytest.mark.parametrize("timeout_s", [math.inf, math.nan, 0.0, limits.API_POOL_TIMEOUT_S_MAX + 1])
def test_api_options_refuse_an_unbounded_pool_timeout(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="pool timeout"):
        ApiOptions(pool_timeout_s=timeout_s)


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_a_capture_clock_skew_that_is_not_finite_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("COLDCHAIN_CAPTURE_FUTURE_SKEW_S", value)
    with pytest.raises(SettingsError, match="COLDCHAIN_CAPTURE_FUTURE_SKEW_S"):
        load_settings()


def test_the_capture_depth_bounds_of_settings_and_capture_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The smallest depth the settings accept is the smallest capture accepts (one level below the
    events), and the largest is the events' walk bound: neither refuses what the other lets through."""
    for depth in (limits.CAPTURE_DEPTH_MIN, limits.EVENT_MAX_DEPTH):
        monkeypatch.setenv("COLDCHAIN_CAPTURE_MAX_DEPTH", str(depth))
        assert CaptureLimits(depth=load_settings().capture_max_depth).depth == depth
    for depth in (limits.CAPTURE_DEPTH_MIN - 1, limits.EVENT_MAX_DEPTH + 1):
        monkeypatch.setenv("COLDCHAIN_CAPTURE_MAX_DEPTH", str(depth))
        with pytest.raises(SettingsError, match="COLDCHAIN_CAPTURE_MAX_DEPTH"):
            load_settings()
        with pytest.raises(ValueError, match="capture depth limit"):
            CaptureLimits(depth=depth)
    assert limits.CAPTURE_DEPTH_MIN == limits.CAPTURE_EVENT_DEPTH + 1

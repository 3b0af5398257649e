"""Tests: the scan page's token bucket, on an injected clock (no sleeps)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traceability.web.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_refusal_then_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=0.5, burst=3, clock=clock)
    assert [bucket.allow("a") for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after_s("a") == 2
    assert bucket.allow("b"), "another client has its own bucket"
    clock.now += 1.9
    assert not bucket.allow("a")
    clock.now += 0.2
    assert bucket.allow("a")
    assert not bucket.allow("a")
    clock.now += 1000
    assert [bucket.allow("a") for _ in range(4)] == [True, True, True, False], "never above the burst"


def test_forgets_the_least_recent_clients_beyond_its_bound() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=1, burst=1, clock=clock, max_clients=2)
    assert bucket.allow("a")
    assert bucket.allow("b")
    assert bucket.allow("c")  # "a" is forgotten
    assert bucket.allow("a")
    assert not bucket.allow("c")


def test_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(rate_per_s=0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(burst=0)


@given(st.lists(st.floats(min_value=0, max_value=30), max_size=60))
def test_never_allows_more_than_burst_plus_refill(gaps: list[float]) -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=0.5, burst=5, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.now += gap
        allowed += bucket.allow("x")
    assert allowed <= 5 + sum(gaps) * 0.5 + 1e-9

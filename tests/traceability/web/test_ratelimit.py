"""Tests: the scan page's token bucket, on an injected clock (no sleeps)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traceability.web.ratelimit import TokenBucket, client_key


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


def test_an_ipv6_client_is_its_slash_64() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=0.5, burst=2, clock=clock)
    assert bucket.allow("2001:db8:1:2::1")
    assert bucket.allow("2001:db8:1:2:ffff:ffff:ffff:fffe"), "rotating within the /64"
    assert not bucket.allow("2001:db8:1:2:abcd::9"), "is one client"
    assert bucket.retry_after_s("2001:db8:1:2::77") == 2
    assert bucket.allow("2001:db8:1:3::1"), "the next /64 is another client"
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"


@given(st.integers(min_value=0, max_value=2**128 - 1), st.integers(min_value=0, max_value=2**64 - 1))
def test_addresses_of_one_slash_64_are_one_client(address: int, host_part: int) -> None:
    a = ipaddress.IPv6Address(address)
    b = ipaddress.IPv6Address((address >> 64 << 64) | host_part)
    if a.ipv4_mapped is None:
        assert client_key(str(a)) == client_key(str(b))
        assert client_key(str(a)).endswith("/64")
        other = ipaddress.IPv6Address(address ^ (1 << 64))
        if other.ipv4_mapped is None:
            assert client_key(str(other)) != client_key(str(a)), "the next /64 is another client"


def test_a_crowd_of_addresses_meets_the_shared_cap() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=1, burst=5, clock=clock, global_rate_per_s=2, global_burst=10)
    crowd = [f"198.51.100.{i}" for i in range(12)]
    assert [bucket.allow(c) for c in crowd] == [True] * 10 + [False] * 2
    assert not bucket.allow("203.0.113.1"), "a newcomer with a full bucket of its own is refused too"
    assert bucket.retry_after_s("203.0.113.1") == 1
    clock.now += 1
    assert [bucket.allow(c) for c in crowd[:3]] == [True, True, False], "two a second over everyone"


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(min_value=0, max_value=0.1)), min_size=60, max_size=200
    )
)
def test_never_more_than_the_shared_burst_plus_refill(requests: list[tuple[int, float]]) -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=1, burst=3, clock=clock, global_rate_per_s=2, global_burst=20)
    allowed = 0
    for client, gap in requests:
        clock.now += gap
        allowed += bucket.allow(f"2001:db8:{client:x}::1")
    assert allowed <= 20 + sum(g for _, g in requests) * 2 + 1e-9

"""Stage 3 (faces): a small in-process token bucket per client, for the public scan page (no sign-in)."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# A buyer scans a code or two; a scraper scans thousands. 30 pages a minute, in bursts of 10.
SCAN_RATE_PER_S = 0.5
SCAN_BURST = 10
# Over all clients together: what one server answers before it refuses everyone for a moment, so that a
# crowd of addresses (each with a full bucket of its own) cannot take the server's whole time.
GLOBAL_RATE_PER_S = 20.0
GLOBAL_BURST = 200
# Clients remembered at once; the least recently seen is forgotten first (a forgotten one starts full).
MAX_CLIENTS = 10_000
# One IPv6 subscriber gets a /64 (RFC 6177): its addresses are one client.
IPV6_CLIENT_PREFIX = 64


def client_key(host: str) -> str:
    """The client a request's address counts as: an IPv4 address (also when IPv4-mapped in IPv6) as it
    is, an IPv6 address as its /64 network; anything else (no address known) as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def _refill(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    return min(burst, tokens + max(0.0, now - last) * rate)


class TokenBucket:
    """``burst`` tokens per client (``client_key``), refilled at ``rate_per_s``, under one shared bucket of
    ``global_burst`` tokens refilled at ``global_rate_per_s``; a request takes a token from both or is
    refused. ``clock`` (monotonic seconds) is injectable so that tests need no sleeps."""

    def __init__(
        self,
        rate_per_s: float = SCAN_RATE_PER_S,
        burst: int = SCAN_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
        global_rate_per_s: float = GLOBAL_RATE_PER_S,
        global_burst: int = GLOBAL_BURST,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or global_rate_per_s <= 0 or global_burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate, self.burst, self.clock, self.max_clients = rate_per_s, float(burst), clock, max_clients
        self.global_rate, self.global_burst = global_rate_per_s, float(global_burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._global: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Take a token for ``client``: True when it and the shared bucket had one."""
        key = client_key(client)
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = _refill(tokens, last, now, self.rate, self.burst)
            shared, shared_last = self._global or (self.global_burst, now)
            shared = _refill(shared, shared_last, now, self.global_rate, self.global_burst)
            allowed = tokens >= 1.0 and shared >= 1.0
            if allowed:
                tokens -= 1.0
                shared -= 1.0
            self._buckets[key] = (tokens, now)
            self._global = (shared, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after_s(self, client: str) -> int:
        """Whole seconds until ``client`` and the shared bucket have a token again (at least 1)."""
        with self._lock:
            tokens, _ = self._buckets.get(client_key(client), (self.burst, 0.0))
            shared, _ = self._global or (self.global_burst, 0.0)
        wait = max((1.0 - tokens) / self.rate, (1.0 - shared) / self.global_rate)
        return max(1, int(wait + 0.999))

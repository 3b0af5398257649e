"""Stage 3 (faces): a small in-process token bucket per client, for the public scan page (no sign-in)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# A buyer scans a code or two; a scraper scans thousands. 30 pages a minute, in bursts of 10.
SCAN_RATE_PER_S = 0.5
SCAN_BURST = 10
# Clients remembered at once; the least recently seen is forgotten first (a forgotten one starts full).
MAX_CLIENTS = 10_000


class TokenBucket:
    """``burst`` tokens per client, refilled at ``rate_per_s``; each request takes one or is refused.
    ``clock`` (monotonic seconds) is injectable so that tests need no sleeps."""

    def __init__(
        self,
        rate_per_s: float = SCAN_RATE_PER_S,
        burst: int = SCAN_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate, self.burst, self.clock, self.max_clients = rate_per_s, float(burst), clock, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Take a token for ``client``: True when it had one."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after_s(self, client: str) -> int:
        """Whole seconds until ``client`` has a token again (at least 1)."""
        with self._lock:
            tokens, _ = self._buckets.get(client, (self.burst, 0.0))
        return max(1, int((1.0 - tokens) / self.rate + 0.999))

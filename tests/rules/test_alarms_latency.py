"""Alarm latency under a steady load (slow): reading committed -> alarm row, through the real worker.

The load and the measurement are `coldchain bench rules`'s own (`steady_load_alarm_latencies`): twenty
trucks each commit one reading per device-minute as their own batch while a worker polls like
`run_forever`; every truck goes out of range at its own minute. The p95 is printed for the README; the
test asserts that every alarm was raised and its latency recorded, never a speed.
"""

from __future__ import annotations

import pytest

from coldchain.bench.alarm_latency import steady_load_alarm_latencies

TRUCKS = 20


@pytest.mark.slow
def test_alarm_latency_under_steady_load(db_url: str) -> None:
    lat = steady_load_alarm_latencies(db_url, trucks=TRUCKS, minutes=40)
    assert len(lat) == TRUCKS, "one excursion alarm per truck"
    assert all(x >= 0 for x in lat), "no alarm before the batch that raised it was committed"
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    print(f"alarm_latency_ms p50={lat[len(lat) // 2]:.1f} p95={p95:.1f} max={lat[-1]:.1f} n={len(lat)}")

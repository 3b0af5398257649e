"""Tests: ``capture.Appended`` names the entries appended since a head exactly when they are all its
writer's (a property over interleaved appenders on a simulated ledger)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from traceability.epcis import capture

# Each append to the ledger: (by this writer?, how many entries).
APPENDS = st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=4)), max_size=14)


@given(appends=APPENDS, data=st.data())
def test_since_names_the_entries_appended_when_all_are_the_writers(
    appends: list[tuple[bool, int]], data: st.DataObject
) -> None:
    appended = capture.Appended()
    ledger: list[tuple[str, bool]] = []  # (eventID, appended by this writer); seq = index + 1
    starts: list[tuple[int, bool]] = []  # (head before, by this writer) of each append
    for n, (ours, size) in enumerate(appends):
        before = len(ledger)
        starts.append((before, ours))
        ids = [f"e{n}.{i}" for i in range(size)]
        ledger += [(i, ours) for i in ids]
        if ours:
            appended.record(before, len(ledger), ids)
    head = len(ledger)
    # A look-up sees a head the ledger had: one an append started from, or the head now.
    seen = data.draw(st.sampled_from([b for b, _ in starts] + [head]))
    since = appended.since(seen, head)
    if since is not None:  # never wrong
        assert since == [(i,) for i, _ in ledger[seen:]]
    later = [ours for before, ours in starts if before >= seen]
    if all(later) and len(later) <= capture.APPENDED_RUNS:  # all this writer's, all remembered
        assert since is not None

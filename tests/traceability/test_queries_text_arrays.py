"""Tests: lists bound as one text and a delimiter come back from string_to_array as the same values."""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import T0, stub_entry

from traceability import queries

# Any text PostgreSQL stores: no NUL, no lone surrogate.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(TEXT, max_size=8), min_size=1, max_size=3))
def test_text_arrays_round_trip_through_the_server(
    conn: psycopg.Connection[Any], lists: list[list[str]]
) -> None:
    *texts, delimiter = queries.text_arrays(*lists)
    assert len(texts) == len(lists)
    for text, values in zip(texts, lists, strict=True):
        row = conn.execute("SELECT string_to_array(%s, %s)", (text, delimiter)).fetchone()
        assert row is not None
        assert row[0] == [v for v in values if v]


def test_text_arrays_pick_a_delimiter_no_value_holds(conn: psycopg.Connection[Any]) -> None:
    values = ["a\nb", "\x01", "c"]
    text, delimiter = queries.text_arrays(values)
    assert delimiter not in "".join(values)
    row = conn.execute("SELECT string_to_array(%s, %s)", (text, delimiter)).fetchone()
    assert row is not None
    assert row[0] == values


def test_lookup_by_ids_finds_ledger_events(conn: psycopg.Connection[Any]) -> None:
    """The eventID lookup of an append binds its ids as one text: an id with a newline is still found."""
    stub_entry(conn, 1, "urn:x:a", T0)
    stub_entry(conn, 2, "urn:x:b\nc", T0)
    rows = conn.execute(
        queries.EVENT_SEQS_BY_IDS, queries.text_arrays(["urn:x:a", "urn:x:b\nc", "urn:x:none"])
    ).fetchall()
    assert sorted((r[0], r[2]) for r in rows) == [("urn:x:a", 1), ("urn:x:b\nc", 2)]


def test_named_text_arrays_bind_by_name(conn: psycopg.Connection[Any]) -> None:
    """Each list comes back under its own name, with the delimiter under ``d``."""
    params = queries.named_text_arrays(epcs=["urn:x:a", "", "urn:x:b\nc"], places=["urn:x:p"])
    assert set(params) == {"epcs", "places", "d"}
    row = conn.execute(
        "SELECT string_to_array(%(epcs)s, %(d)s), string_to_array(%(places)s, %(d)s)", params
    ).fetchone()
    assert row == (["urn:x:a", "urn:x:b\nc"], ["urn:x:p"])

"""Stage 3, EPCIS: RFC 8785 (JCS) canonical JSON bytes of an event, fast.

``canonical(value)`` returns exactly ``rfc8785.dumps(value)``. Most events hold only strings, booleans,
null, safe integers and plain decimals under ASCII keys: for those, msgspec's JSON encoder with sorted keys
already writes the JCS form (no whitespace; the same string escapes: ``\\b \\f \\n \\r \\t``, other
controls as lowercase ``\\u00xx``, nothing else escaped), many times faster than the reference package.
Anything else (non-ASCII keys, whose JCS order is by UTF-16 code units; floats written with an exponent
or as ``x.0``; integers beyond ±2^53; non-JSON types) goes through ``rfc8785`` itself.
Which path a value takes is found by one walk of it (``survey``), which capture's limits walk is too, so
that a captured event is walked once for both. A Hypothesis test checks the two paths agree on arbitrary
JSON.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
import rfc8785

from traceability.limits import EVENT_MAX_DEPTH

MAX_SAFE_INT = 2**53 - 1
_encode = msgspec.json.Encoder(order="sorted").encode


class CanonicalizationError(ValueError):
    """The value has no RFC 8785 form (NaN, infinity, an integer beyond ±2^53, a lone surrogate), or it
    is nested deeper than ``limits.EVENT_MAX_DEPTH``."""


def canonical(value: Any, *, plain: bool | None = None) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value nested at most ``limits.EVENT_MAX_DEPTH`` levels.
    ``plain``: what ``survey`` found of this value already (its ``plain``, the value being no deeper than
    that limit), so that it is not walked again; None: walked here."""
    if plain is None:
        plain = _plain(value)
        if plain is None:
            raise CanonicalizationError(f"nested deeper than {EVENT_MAX_DEPTH} levels")
    if plain:
        try:
            return _encode(value)
        except (msgspec.EncodeError, UnicodeEncodeError, ValueError):  # a lone surrogate
            pass
    try:
        data: bytes = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError, TypeError) as exc:
        raise CanonicalizationError(f"no RFC 8785 form: {exc}") from exc
    return data


class Survey(NamedTuple):
    """What one walk of a JSON value finds (``survey``)."""

    depth: int  # the level of its deepest object or list (the value itself: 1; 0 for a scalar)
    long_at: int | None  # the level, from 0, of the first list longer than the bound asked, if any
    plain: bool  # whether the fast encoder's output is its JCS form (see the module docstring)


def survey(value: Any, list_items: int | None = None) -> Survey:
    """One walk of ``value``, level by level (no recursion, whatever the nesting): its depth, where a list
    longer than ``list_items`` first is, and whether the fast encoder writes its JCS form: only dicts with
    ASCII string keys, lists, strings, booleans, null, integers within ±2^53 and floats that print as plain
    decimals. Capture's limits walk is this one, so that its events are not walked again here."""
    plain = True
    long_at = None
    level = [value]
    depth = index = 0
    while level:
        below: list[Any] = []
        push, extend = below.append, below.extend
        containers = False
        for v in level:
            t = type(v)
            if t is dict:
                containers = True
                for k, x in v.items():
                    if type(k) is not str or not k.isascii():
                        plain = False
                    if type(x) is not str:  # strings, the most common leaves, need no more checking
                        push(x)
            elif t is list:
                containers = True
                if long_at is None and list_items is not None and len(v) > list_items:
                    long_at = index
                extend(v)
            elif t is str or t is bool or v is None:
                continue
            elif t is int:
                if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                    plain = False
            elif t is float:
                text = repr(v)
                if "e" in text or "n" in text or text.endswith(".0"):
                    plain = False
            else:
                plain = False
        index += 1
        if containers:
            depth = index
        level = below
    return Survey(depth, long_at, plain)


def _plain(value: Any) -> bool | None:
    """``survey``'s ``plain``, or None when the value is nested deeper than ``limits.EVENT_MAX_DEPTH``."""
    found = survey(value)
    return None if found.depth > EVENT_MAX_DEPTH else found.plain

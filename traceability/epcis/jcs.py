"""Stage 3, EPCIS: RFC 8785 (JCS) canonical JSON bytes of an event, fast.

``canonical(value)`` returns exactly ``rfc8785.dumps(value)``. Most events hold only strings, booleans,
null, safe integers and plain decimals under ASCII keys: for those, msgspec's JSON encoder with sorted keys
already writes the JCS form (no whitespace; the same string escapes: ``\\b \\f \\n \\r \\t``, other
controls as lowercase ``\\u00xx``, nothing else escaped), many times faster than the reference package.
Anything else (non-ASCII keys, whose JCS order is by UTF-16 code units; floats written with an exponent
or as ``x.0``; integers beyond ±2^53; non-JSON types) goes through ``rfc8785`` itself.
A Hypothesis test checks the two agree on arbitrary JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec
import rfc8785

from traceability.limits import EVENT_MAX_DEPTH

MAX_SAFE_INT = 2**53 - 1
_encode = msgspec.json.Encoder(order="sorted").encode


class CanonicalizationError(ValueError):
    """The value has no RFC 8785 form (NaN, infinity, an integer beyond ±2^53, a lone surrogate), or it
    is nested deeper than ``limits.EVENT_MAX_DEPTH``."""


def canonical(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value nested at most ``limits.EVENT_MAX_DEPTH`` levels."""
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


def _plain(value: Any) -> bool | None:
    """True when the fast encoder's output is the JCS form of ``value``: only dicts with ASCII string keys,
    lists, strings, booleans, null, integers within ±2^53 and floats that print as plain decimals; None
    when it is nested deeper than ``limits.EVENT_MAX_DEPTH`` (walked level by level: no recursion)."""
    plain = True
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > EVENT_MAX_DEPTH and any(type(v) is dict or type(v) is list for v in level):
            return None  # a container this deep (scalars below the last level do not count)
        below: list[Any] = []
        push, extend = below.append, below.extend
        for v in level:
            t = type(v)
            if t is dict:
                for k, x in v.items():
                    if type(k) is not str or not k.isascii():
                        plain = False
                    if type(x) is not str:  # strings, the most common leaves, need no more checking
                        push(x)
            elif t is list:
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
        level = below
    return plain

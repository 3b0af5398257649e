"""Stage 3, ledger: RFC 8785 (JCS) canonical JSON bytes of an event, fast.

``canonical(value)`` returns exactly ``rfc8785.dumps(value)``. Most events hold only strings, booleans,
null, safe integers and plain decimals under ASCII keys: for those, the C JSON encoder with sorted keys
and no whitespace already writes the JCS form (same string escapes: ``\\b \\f \\n \\r \\t``, other
controls as lowercase ``\\u00xx``, nothing else escaped), about five times faster than the reference
package. Anything else (non-ASCII keys, whose JCS order is by UTF-16 code units; floats written with an
exponent or as ``x.0``; integers beyond ±2^53; non-JSON types) goes through ``rfc8785`` itself.
A Hypothesis test checks the two agree on arbitrary JSON.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

MAX_SAFE_INT = 2**53 - 1
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


class CanonicalizationError(ValueError):
    """The value has no RFC 8785 form (NaN, infinity, an integer beyond ±2^53, a lone surrogate)."""


def canonical(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _plain(value):
        try:
            return _encode(value).encode("utf-8")
        except (UnicodeEncodeError, ValueError):
            pass
    try:
        data: bytes = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError, TypeError) as exc:
        raise CanonicalizationError(f"no RFC 8785 form: {exc}") from exc
    return data


def _plain(value: Any) -> bool:
    """True when the C encoder's output is the JCS form of ``value``."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-MAX_SAFE_INT <= value <= MAX_SAFE_INT)
    if t is float:
        text = repr(value)
        return "e" not in text and "n" not in text and not text.endswith(".0")
    if t is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if t is list:
        return all(_plain(v) for v in value)
    return False

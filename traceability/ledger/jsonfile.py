"""Stage 3, ledger: JSON handed to the ledger as a file (a document, a bundle, a checkpoint), parsed with
its nesting bounded, so that no input can exhaust the parser's recursion.

The bound is checked before the parser runs, on the brackets outside strings, in C-speed passes.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Python's json decoder recurses once per level of nesting, within the interpreter's recursion limit
# (1000 frames by default, shared with the caller's stack): 256 levels parse under any caller, and no
# EPCIS document, bundle or checkpoint this system writes nests beyond a few dozen.
FILE_MAX_DEPTH = 256
# A JSON string, escapes included (possessive: an unterminated one costs one scan).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PAIR = re.compile(rb"\[\]|\{\}")


class JsonInputError(ValueError):
    """The input is not JSON, not UTF-8, or nested deeper than the bound (the message says which)."""


def too_deep(data: bytes, max_depth: int) -> bool:
    """Whether the brackets of ``data``, outside its strings, nest deeper than ``max_depth``.

    Each pass removes the innermost pairs, so it takes at most ``max_depth`` passes over the brackets;
    brackets that do not balance are not JSON (``JsonInputError``)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        inner = _PAIR.sub(b"", brackets)
        if len(inner) == len(brackets):
            raise JsonInputError("not JSON: its brackets do not balance")
        brackets = inner
    return bool(brackets)


def loads(data: bytes, *, max_depth: int = FILE_MAX_DEPTH) -> Any:
    """The JSON value of ``data`` (UTF-8), refused with ``JsonInputError`` when it is not JSON or nests
    deeper than ``max_depth`` levels."""
    if too_deep(data, max_depth):
        raise JsonInputError(f"JSON nested more than {max_depth} levels deep")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise JsonInputError(f"not JSON: {exc}") from None

"""Stage 3, EPCIS: EPC pure identity patterns (``urn:epc:idpat:…``, TDS 2.0 §8) as the SimpleEventQuery's
MATCH_ parameters take them (EPCIS 2.0 §8.2.7.1.1): the SQL ``LIKE`` patterns of every identifier a pattern
covers, in its EPC URI form and its canonical GS1 Digital Link form.

A pattern's fields are values or ``*``, the ``*`` fields rightmost: ``urn:epc:idpat:sgtin:0614141.107346.*``
(every serial of one GTIN), ``…:0614141.*.*`` (every GTIN of a company prefix), ``…:*.*.*`` (every SGTIN).
As an EPC pattern (MATCH_epc, MATCH_anyEPC, …) it covers the EPCs ``urn:epc:id:<scheme>:…`` whose fields
equal its fixed ones; as a class pattern (MATCH_epcClass, …) an SGTIN pattern covers the lots
``urn:epc:class:lgtin:…`` of its GTINs and the GTIN classes ``urn:epc:idpat:sgtin:<prefix>.<ref>.*``.

The Digital Link forms are derived from ``digital_link.epc_to_digital_link``: two sample identifiers that
differ in every ``*`` field convert to two links; what they share is literal, a part that differs is a
``_`` per character when the part has the same length in both (a numeric key) or ``%`` (a serial). Where
a Digital Link puts a wildcard digit before the fixed ones (a GTIN's indicator digit, an SSCC's extension
digit), there is one pattern per value of that digit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from traceability.epcis.digital_link import epc_to_digital_link

IDPAT = "urn:epc:idpat:"
# Fields of an EPC URI per scheme with a pure identity pattern and a Digital Link form (TDS 2.0 §8).
PATTERN_FIELDS: dict[str, int] = {
    "sgtin": 3,
    "sscc": 2,
    "sgln": 3,
    "grai": 3,
    "giai": 2,
    "gsrn": 2,
    "gsrnp": 2,
    "gdti": 3,
    "gsin": 2,
    "pgln": 2,
}
# Sample values a wildcard field takes (a numeric field: one digit, repeated); they differ at every
# character and in length, so two samples' links share exactly the pattern's fixed part.
_TEXT_SAMPLES = ("1", "22")
_DIGIT_SAMPLES = ("0", "9")
_SAMPLE_PREFIX = "0000000"  # a company prefix for samples of a pattern that fixes none (any 6 to 12 digits)
# Lengths of a numeric reference tried: 0 to 12 (the longest, an SSCC's: 17 digits less a 6-digit prefix).
_MAX_NUMERIC = 13


class PatternError(ValueError):
    """A value that starts like an EPC pattern but is not one."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed pure identity pattern: its scheme, its fixed fields, and how many fields are ``*``."""

    scheme: str
    fixed: tuple[str, ...]
    wild: int

    @property
    def exact(self) -> str | None:
        """The EPC URI of a pattern without ``*`` (it names one EPC), else None."""
        return f"urn:epc:id:{self.scheme}:{'.'.join(self.fixed)}" if self.wild == 0 else None


def is_pattern(value: str) -> bool:
    return value.startswith(IDPAT)


def parse(value: str) -> Pattern:
    """The pattern of ``urn:epc:idpat:<scheme>:<fields>``, or ``PatternError`` saying what is wrong."""
    scheme, sep, rest = value.removeprefix(IDPAT).partition(":")
    if not sep or scheme not in PATTERN_FIELDS:
        raise PatternError(
            f"{value!r} is not an EPC pattern of a known scheme (one of {', '.join(PATTERN_FIELDS)})"
        )
    fields = rest.split(".")
    count = PATTERN_FIELDS[scheme]
    if len(fields) != count:
        raise PatternError(f"{value!r} has {len(fields)} fields; an {scheme} pattern has {count}")
    fixed = tuple(f for f in fields if f != "*")
    if any("*" in f for f in fixed) or fields[: len(fixed)] != list(fixed):
        raise PatternError(f"{value!r}: only whole fields may be '*', and only the rightmost ones")
    pattern = Pattern(scheme, fixed, count - len(fixed))
    if not _sample_fields(pattern):
        raise PatternError(f"{value!r}: its fixed fields do not form a valid {scheme} identifier")
    return pattern


def _numeric_length(scheme: str, company: str) -> int | None:
    """The length of the field after the company prefix when the scheme makes it a number of one length (it
    converts to a Digital Link at one length only), else None."""
    tail = ["1"] * (PATTERN_FIELDS[scheme] - 2)
    lengths = [
        n
        for n in range(_MAX_NUMERIC)
        if epc_to_digital_link(f"urn:epc:id:{scheme}:" + ".".join([company, "0" * n, *tail])) is not None
    ]
    return lengths[0] if len(lengths) == 1 else None


def _sample_fields(p: Pattern) -> list[tuple[list[str], list[str]]]:
    """Pairs of sample field lists that keep ``p``'s fixed fields and differ in every ``*`` field, one pair
    per value of a leading wildcard digit, whose EPC URIs convert to Digital Links."""
    fields = list(p.fixed) or [_SAMPLE_PREFIX]
    numeric = _numeric_length(p.scheme, fields[0]) if len(fields) == 1 else None
    leads = [str(d) for d in range(10)] if numeric and p.fixed else [""]
    pairs = []
    for lead in leads:
        a, b = list(fields), list(fields)
        for i in range(len(fields), PATTERN_FIELDS[p.scheme]):
            if i == 1 and numeric is not None:
                a.append((lead + _DIGIT_SAMPLES[0] * numeric)[:numeric])
                b.append((lead + _DIGIT_SAMPLES[1] * numeric)[:numeric])
            else:
                a.append(_TEXT_SAMPLES[0])
                b.append(_TEXT_SAMPLES[1])
        pairs.append((a, b))
    return [
        (a, b)
        for a, b in pairs
        if all(epc_to_digital_link(f"urn:epc:id:{p.scheme}:" + ".".join(x)) is not None for x in (a, b))
    ]


def escape_like(text: str) -> str:
    """``text`` as a literal in a LIKE pattern (the default escape character, backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_of_pair(a: str, b: str) -> str:
    """The LIKE pattern of what two sample identifiers (or links) share: a common prefix, then per '/' part
    the part itself when equal, ``_`` per character when of the same length, else ``%``."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    parts_a, parts_b = a[n:].split("/"), b[n:].split("/")
    if len(parts_a) != len(parts_b):  # not expected of two links of one scheme; cover all after the prefix
        return escape_like(a[:n]) + "%"
    out = []
    for x, y in zip(parts_a, parts_b, strict=True):
        out.append(escape_like(x) if x == y else "_" * len(x) if len(x) == len(y) else "%")
    return escape_like(a[:n]) + "/".join(out)


def _urn_like(prefix: str, p: Pattern) -> str:
    return escape_like(prefix + "".join(f + "." for f in p.fixed)) + "%"


def _link_likes(p: Pattern, uri_of: Callable[[list[str]], str]) -> list[str]:
    """The LIKE patterns of the Digital Links of the sample pairs' URIs (``uri_of`` their fields)."""
    out = []
    for a, b in _sample_fields(p):
        link_a, link_b = epc_to_digital_link(uri_of(a)), epc_to_digital_link(uri_of(b))
        if link_a is not None and link_b is not None:
            out.append(_like_of_pair(link_a, link_b))
    return out


def like_patterns(p: Pattern, *, as_class: bool = False) -> list[str]:
    """The LIKE patterns of the identifiers ``p`` covers (URI and canonical Digital Link forms): EPCs, or with
    ``as_class`` the LGTIN classes and GTIN classes of an SGTIN pattern (``PatternError`` for another)."""
    if not as_class:
        out = [_urn_like(f"urn:epc:id:{p.scheme}:", p)]
        out += _link_likes(p, lambda f: f"urn:epc:id:{p.scheme}:" + ".".join(f))
        return list(dict.fromkeys(out))
    if p.scheme != "sgtin":
        raise PatternError(f"urn:epc:idpat:{p.scheme}:… names no classes; class patterns are sgtin ones")
    if p.wild == 0:
        raise PatternError("an sgtin pattern with no '*' names one EPC, not a class")
    out = [_urn_like("urn:epc:class:lgtin:", p)]
    out += _link_likes(p, lambda f: "urn:epc:class:lgtin:" + ".".join(f))
    if p.wild == 1:  # the GTIN class itself
        out.append(escape_like(f"{IDPAT}sgtin:{'.'.join(p.fixed)}.*"))
    else:  # the GTIN classes of the company prefix (or of every one)
        out.append(_urn_like(f"{IDPAT}sgtin:", p))
    out += _link_likes(p, lambda f: f"{IDPAT}sgtin:{f[0]}.{f[1]}.*")
    return list(dict.fromkeys(out))


def literal_prefix(like: str) -> str:
    """The literal text a LIKE pattern starts with (up to its first wildcard), unescaped."""
    out, i = [], 0
    while i < len(like) and like[i] not in "%_":
        if like[i] == "\\":
            i += 1
        out.append(like[i])
        i += 1
    return "".join(out)


def prefix_bound(prefix: str) -> str:
    """The least text above every text that starts with ``prefix`` (in code point order, as COLLATE "C")."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)

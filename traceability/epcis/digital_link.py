"""Stage 3, EPCIS: GS1 keys as the CBV 2.0 event hash names them: EPC URIs (TDS 2.0) and GS1 Digital Link
URIs (any domain, short names, query strings, key qualifiers) -> the constrained canonical GS1 Digital Link
URI (GS1 Digital Link 1.2 section 4.11: ``https://id.gs1.org``, numeric AIs, the finest identification
level only, no query string); the GS1 check digit.

EPC schemes converted: sgtin, sscc, sgln, grai, giai, gsrn, gsrnp, gdti, cpi, sgcn, ginc, gsin, itip, upui,
pgln; the class-level ``urn:epc:class:lgtin``; the patterns ``urn:epc:idpat:`` sgtin, grai, gdti, sgcn,
cpi, itip, upui (the class they name). Other patterns (``idpat:sscc`` and the like) name no GS1 key and
stay as they are, as does anything that is not a well-formed key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

DL = "https://id.gs1.org/"

# One character of a GS1 AI encodable string (character set 82) as TDS 2.0 writes it in an EPC URI: the
# URI-safe characters as such, the others as %-escapes.
_CHAR82 = (
    r"(?:%2[125-9A-Fa-f]|%3[0-9A-Fa-f]|%4[1-9A-Fa-f]|%5[0-9AaFf]|%6[1-9A-Fa-f]|%7[0-9Aa]"
    r"|[!'()*+,\-.0-9:;=A-Z_a-z])"
)
# One character of a CPI component reference (character set 39: digits, capitals, '#', '-', '/').
_CHAR39 = r"(?:%2[3dfDF]|%3[0-9]|%4[1-9A-Fa-f]|%5[0-9Aa]|[0-9A-Z\-])"


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit (GS1 General Specifications 7.9.1): from the right, the digits weighed 3, 1,
    3, ..."""
    total = 3 * sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2]))
    return str((10 - total % 10) % 10)


def _web_encode(text: str) -> str:
    """GS1 Digital Link 1.2 table 7-1: the characters an EPC URI leaves bare but a DL path escapes."""
    if text.isalnum():  # none of them (most serials and lots)
        return text
    for ch, enc in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C")):
        text = text.replace(ch, enc)
    return text.replace(":", "%3A")


def _chars(text: str, low: int, high: int, klass: str = _CHAR82) -> bool:
    """``text`` is ``low``..``high`` characters of ``klass``, an escape counting as one character."""
    if klass is _CHAR82 and text.isascii() and text.isalnum():  # letters and digits: one character each
        return low <= len(text) <= high
    return _run_of(klass, low, high).fullmatch(text) is not None


@lru_cache(maxsize=64)
def _run_of(klass: str, low: int, high: int) -> re.Pattern[str]:
    """The pattern of ``low``..``high`` characters of ``klass`` (compiled once)."""
    return re.compile(rf"{klass}{{{low},{high}}}")


def _prefixed(cp: str, ref: str, total: int) -> bool:
    """A GS1 company prefix (6-12 digits) and a reference, all digits, ``total`` digits together."""
    return (
        cp.isdigit() and 6 <= len(cp) <= 12 and (ref == "" or ref.isdigit()) and len(cp) + len(ref) == total
    )


def _gtin(cp: str, ir: str) -> str | None:
    """GTIN-14 with check digit from a company prefix and an indicator+item reference (13 digits)."""
    if not ir or not _prefixed(cp, ir, 13):
        return None
    raw = ir[0] + cp + ir[1:]
    return raw + check_digit(raw)


def _gln(cp: str, ref: str) -> str | None:
    """GLN-13 (also the 13 leading digits of GRAI/GDTI/GCN) from a company prefix and a reference."""
    if not _prefixed(cp, ref, 12):
        return None
    return cp + ref + check_digit(cp + ref)


Converter = Callable[[list[str]], "str | None"]


def _sgtin(f: list[str]) -> str | None:
    gtin = _gtin(f[0], f[1]) if len(f) >= 3 else None
    serial = ".".join(f[2:])
    return f"{DL}01/{gtin}/21/{_web_encode(serial)}" if gtin and _chars(serial, 1, 20) else None


def _lgtin(f: list[str]) -> str | None:
    gtin = _gtin(f[0], f[1]) if len(f) >= 3 else None
    lot = ".".join(f[2:])
    return f"{DL}01/{gtin}/10/{_web_encode(lot)}" if gtin and _chars(lot, 1, 20) else None


def _sscc(f: list[str]) -> str | None:
    if len(f) != 2 or not f[1] or not _prefixed(f[0], f[1], 17):
        return None
    raw = f[1][0] + f[0] + f[1][1:]
    return f"{DL}00/{raw}{check_digit(raw)}"


def _sgln(f: list[str]) -> str | None:
    gln = _gln(f[0], f[1]) if len(f) >= 3 else None
    ext = ".".join(f[2:])
    if gln is None or not _chars(ext, 1, 20):
        return None
    return f"{DL}414/{gln}" if ext == "0" else f"{DL}414/{gln}/254/{_web_encode(ext)}"


def _grai(f: list[str]) -> str | None:
    gln = _gln(f[0], f[1]) if len(f) >= 3 else None
    serial = ".".join(f[2:])
    if gln is None or not _chars(serial, 1, 16):
        return None
    raw = "0" + f[0] + f[1]
    return f"{DL}8003/{raw}{check_digit(raw)}{_web_encode(serial)}"


def _gdti(f: list[str]) -> str | None:
    gln = _gln(f[0], f[1]) if len(f) >= 3 else None
    serial = ".".join(f[2:])
    return f"{DL}253/{gln}{_web_encode(serial)}" if gln and _chars(serial, 0, 17) else None


def _sgcn(f: list[str]) -> str | None:
    gln = _gln(f[0], f[1]) if len(f) == 3 else None
    return f"{DL}255/{gln}{f[2]}" if gln and f[2].isdigit() and len(f[2]) <= 12 else None


def _free_ref(ai: str) -> Converter:
    """GIAI (8004) and GINC (401): company prefix + a free reference, 30 characters at most."""

    def convert(f: list[str]) -> str | None:
        if len(f) < 2 or not f[0].isdigit() or not 6 <= len(f[0]) <= 12:
            return None
        ref = ".".join(f[1:])
        if not _chars(ref, 1, 30 - len(f[0])):
            return None
        return f"{DL}{ai}/{f[0]}{_web_encode(ref)}"

    return convert


def _keyed(ai: str, total: int) -> Converter:
    """GSRN, GSRN-P, GSIN, PGLN: company prefix + reference, all digits, then the check digit."""

    def convert(f: list[str]) -> str | None:
        if len(f) != 2 or not _prefixed(f[0], f[1], total):
            return None
        return f"{DL}{ai}/{f[0]}{f[1]}{check_digit(f[0] + f[1])}"

    return convert


def _cpi(f: list[str]) -> str | None:
    if len(f) != 3 or not f[0].isdigit() or not 6 <= len(f[0]) <= 12:
        return None
    if not _chars(f[1], 1, 30 - len(f[0]), _CHAR39) or not (f[2].isdigit() and len(f[2]) <= 12):
        return None
    return f"{DL}8010/{f[0]}{f[1]}/8011/{f[2]}"


def _itip(f: list[str]) -> str | None:
    if len(f) < 5 or not all(len(x) == 2 and x.isdigit() for x in f[2:4]):
        return None
    gtin = _gtin(f[0], f[1])
    serial = ".".join(f[4:])
    if gtin is None or not _chars(serial, 1, 20):
        return None
    return f"{DL}8006/{gtin}{f[2]}{f[3]}/21/{_web_encode(serial)}"


def _upui(f: list[str]) -> str | None:
    gtin = _gtin(f[0], f[1]) if len(f) >= 3 else None
    tpx = ".".join(f[2:])
    return f"{DL}01/{gtin}/235/{_web_encode(tpx)}" if gtin and _chars(tpx, 1, 28) else None


def _pattern(convert: Callable[[list[str]], str | None]) -> Converter:
    """An ``idpat`` whose last field is ``*``: the class it names, or None for any other pattern."""

    def pattern(f: list[str]) -> str | None:
        return convert(f[:-1]) if len(f) >= 2 and f[-1] == "*" and "*" not in f[:-1] else None

    return pattern


def _gtin_class(f: list[str]) -> str | None:
    gtin = _gtin(f[0], f[1]) if len(f) == 2 else None
    return f"{DL}01/{gtin}" if gtin else None


def _grai_class(f: list[str]) -> str | None:
    if len(f) != 2 or _gln(f[0], f[1]) is None:
        return None
    raw = "0" + f[0] + f[1]
    return f"{DL}8003/{raw}{check_digit(raw)}"


def _gln_class(ai: str) -> Converter:
    def convert(f: list[str]) -> str | None:
        gln = _gln(f[0], f[1]) if len(f) == 2 else None
        return f"{DL}{ai}/{gln}" if gln else None

    return convert


def _cpi_class(f: list[str]) -> str | None:
    if len(f) != 2 or not f[0].isdigit() or not 6 <= len(f[0]) <= 12:
        return None
    return f"{DL}8010/{f[0]}{f[1]}" if _chars(f[1], 1, 30 - len(f[0]), _CHAR39) else None


def _itip_class(f: list[str]) -> str | None:
    if len(f) != 4 or not all(len(x) == 2 and x.isdigit() for x in f[2:4]):
        return None
    gtin = _gtin(f[0], f[1])
    return f"{DL}8006/{gtin}{f[2]}{f[3]}" if gtin else None


_CONVERTERS: dict[str, Converter] = {
    "urn:epc:id:sgtin:": _sgtin,
    "urn:epc:id:sscc:": _sscc,
    "urn:epc:id:sgln:": _sgln,
    "urn:epc:id:grai:": _grai,
    "urn:epc:id:giai:": _free_ref("8004"),
    "urn:epc:id:gsrn:": _keyed("8018", 17),
    "urn:epc:id:gsrnp:": _keyed("8017", 17),
    "urn:epc:id:gdti:": _gdti,
    "urn:epc:id:cpi:": _cpi,
    "urn:epc:id:sgcn:": _sgcn,
    "urn:epc:id:ginc:": _free_ref("401"),
    "urn:epc:id:gsin:": _keyed("402", 16),
    "urn:epc:id:itip:": _itip,
    "urn:epc:id:upui:": _upui,
    "urn:epc:id:pgln:": _keyed("417", 12),
    "urn:epc:class:lgtin:": _lgtin,
    "urn:epc:idpat:sgtin:": _pattern(_gtin_class),
    "urn:epc:idpat:grai:": _pattern(_grai_class),
    "urn:epc:idpat:gdti:": _pattern(_gln_class("253")),
    "urn:epc:idpat:sgcn:": _pattern(_gln_class("255")),
    "urn:epc:idpat:cpi:": _pattern(_cpi_class),
    "urn:epc:idpat:itip:": _pattern(_itip_class),
    "urn:epc:idpat:upui:": _pattern(_gtin_class),
}
_EPC_SCHEME = re.compile(r"^urn:epc:(?:id|class|idpat):[a-z]+:")


def epc_to_digital_link(uri: str) -> str | None:
    """The canonical GS1 Digital Link URI of an EPC (class, pattern) URI, or None if it is not one."""
    scheme = _EPC_SCHEME.match(uri)
    convert = _CONVERTERS.get(scheme.group(0)) if scheme else None
    if scheme is None or convert is None:
        return None
    return convert(uri[scheme.end() :].split("."))


# GS1 Digital Link 1.2 short names of primary keys and key qualifiers, and the AIs they stand for.
_SHORT_NAMES = {
    "gtin": "01",
    "itip": "8006",
    "cpid": "8010",
    "gln": "414",
    "party": "417",
    "gsrnp": "8017",
    "gsrn": "8018",
    "gcn": "255",
    "sscc": "00",
    "gdti": "253",
    "ginc": "401",
    "gsin": "402",
    "grai": "8003",
    "giai": "8004",
    "cpv": "22",
    "lot": "10",
    "ser": "21",
}
# Primary key AI -> the syntax of its canonical value (GS1 General Specifications, AI table; characters of
# set 82 as a Digital Link path carries them, the '%'-escapes excluded as the reference does).
_CSET82 = r"[\"'\-.0-9;-?A-Z_a-z]"
_KEY_VALUE = {
    "00": r"\d{18}",
    "01": r"\d{14}",
    "8006": r"\d{18}",
    "8010": r"[#\-/0-9A-Z]{0,30}",
    "414": r"\d{13}",
    "417": r"\d{13}",
    "8017": r"\d{18}",
    "8018": r"\d{18}",
    "255": r"\d{13}\d{0,12}",
    "253": rf"\d{{13}}{_CSET82}{{0,17}}",
    "401": rf"{_CSET82}{{0,30}}",
    "402": r"\d{17}",
    "8003": rf"\d{{14}}{_CSET82}{{0,16}}",
    "8004": rf"{_CSET82}{{0,30}}",
}
# The key qualifiers each key may carry, and which of them the constrained form keeps: only the finest
# level (a serial over a lot; neither the consumer product variant nor a lot beside a serial).
_KEEP = {"01": ("21", "235", "10"), "8006": ("21", "10"), "414": ("254",), "8010": ("8011",)}
_QUALIFIER_VALUE = {
    "21": rf"{_CSET82}{{0,20}}",
    "10": rf"{_CSET82}{{0,20}}",
    "235": rf"{_CSET82}{{0,28}}",
    "254": rf"{_CSET82}{{0,20}}",
    "8011": r"\d{0,12}",
}
_DL_URI = re.compile(r"^https?://[^/?#]*(/[^?#]*)(\?.*)?$", re.DOTALL)


def digital_link_to_canonical(uri: str) -> str | None:
    """The constrained canonical form of a GS1 Digital Link URI on any domain, or None if ``uri`` is not one.

    The domain, any path before the primary key, the query string (data attributes) and the consumer
    product variant go; short names become AIs; a GTIN is padded to 14 digits; a lot beside a serial goes.
    """
    match = _DL_URI.match(uri)
    if match is None:
        return None
    segments = match.group(1).split("/")
    for i in range(len(segments) - 1):
        ai = _SHORT_NAMES.get(segments[i], segments[i])
        if ai in _KEY_VALUE and segments[i + 1][:4].isdigit():
            return _constrain(ai, segments[i + 1], segments[i + 2 :])
    return None


def _constrain(ai: str, value: str, rest: list[str]) -> str | None:
    if len(rest) % 2:  # a trailing slash too: no Digital Link URI ends with one
        return None
    qualifiers = {_SHORT_NAMES.get(rest[j], rest[j]): rest[j + 1] for j in range(0, len(rest), 2)}
    if ai == "01" and len(value) in (8, 12, 13):
        value = value.rjust(14, "0")
    if re.fullmatch(_KEY_VALUE[ai], value) is None:
        return None
    allowed = set(_KEEP.get(ai, ())) | ({"22"} if ai in ("01", "8006") else set())
    if not set(qualifiers) <= allowed:
        return None
    out = f"{DL}{ai}/{value}"
    for qualifier in _KEEP.get(ai, ()):
        if qualifier in qualifiers:
            if re.fullmatch(_QUALIFIER_VALUE[qualifier], qualifiers[qualifier]) is None:
                return None
            return f"{out}/{qualifier}/{qualifiers[qualifier]}"
    return out


def to_canonical_digital_link(uri: str) -> str | None:
    """The constrained canonical GS1 Digital Link URI of an EPC URI or a Digital Link URI, else None."""
    if uri.startswith("urn:epc:"):
        return epc_to_digital_link(uri)
    if uri.startswith(("https://", "http://")):
        return digital_link_to_canonical(uri)
    return None


# -- every form of one EPC (the event query matches an EPC in all of them) ---------------------------------

_CANONICAL_PATH = re.compile(r"^https://id\.gs1\.org/(\d{2,4})/([^/]+)(?:/(\d{2,4})/([^/]+))?$")
_PREFIX_LENGTHS = range(6, 13)  # a GS1 company prefix has 6 to 12 digits


def _urn_candidates(ai: str, key: str, qual_ai: str | None, qual: str | None) -> list[str]:
    """EPC URIs that a canonical Digital Link key may stand for, one per company prefix length (the link
    does not say where the prefix ends); the caller keeps those that convert back to the same link."""
    out: list[str] = []
    for n in _PREFIX_LENGTHS:
        if ai == "01" and len(key) == 14 and key.isdigit():
            cp, ref = key[1 : 1 + n], key[0] + key[1 + n : 13]
            if qual_ai == "21" and qual:
                out.append(f"urn:epc:id:sgtin:{cp}.{ref}.{qual}")
            elif qual_ai == "10" and qual:
                out.append(f"urn:epc:class:lgtin:{cp}.{ref}.{qual}")
            elif qual_ai is None:
                out.append(f"urn:epc:idpat:sgtin:{cp}.{ref}.*")
        elif qual_ai not in (None, "254"):
            continue
        elif ai == "00" and len(key) == 18 and key.isdigit():
            out.append(f"urn:epc:id:sscc:{key[1 : 1 + n]}.{key[0]}{key[1 + n : 17]}")
        elif ai == "414" and len(key) == 13 and key.isdigit():
            out.append(f"urn:epc:id:sgln:{key[:n]}.{key[n:12]}.{qual if qual_ai == '254' else '0'}")
        elif qual_ai is not None:
            continue
        elif ai == "8003" and len(key) > 14 and key[:14].isdigit():
            out.append(f"urn:epc:id:grai:{key[1 : 1 + n]}.{key[1 + n : 13]}.{key[14:]}")
        elif ai in ("8004", "401"):
            scheme = "giai" if ai == "8004" else "ginc"
            out.append(f"urn:epc:id:{scheme}:{key[:n]}.{key[n:]}")
        elif ai in ("8018", "8017") and len(key) == 18 and key.isdigit():
            scheme = "gsrn" if ai == "8018" else "gsrnp"
            out.append(f"urn:epc:id:{scheme}:{key[:n]}.{key[n:17]}")
        elif ai == "253" and len(key) > 13 and key[:13].isdigit():
            out.append(f"urn:epc:id:gdti:{key[:n]}.{key[n:12]}.{key[13:]}")
        elif ai == "402" and len(key) == 17 and key.isdigit():
            out.append(f"urn:epc:id:gsin:{key[:n]}.{key[n:16]}")
        elif ai == "417" and len(key) == 13 and key.isdigit():
            out.append(f"urn:epc:id:pgln:{key[:n]}.{key[n:12]}")
    return out


def epc_forms(uri: str) -> list[str]:
    """Every form of the same EPC: the URI as given, its canonical GS1 Digital Link URI, and the EPC URIs
    whose canonical link that is. An EPC URI and a Digital Link URI on any host name the same EPC when they
    have the same canonical link; a URI that is neither names only itself."""
    link = to_canonical_digital_link(uri)
    if link is None:
        return [uri]
    forms = list(dict.fromkeys((uri, link)))
    m = _CANONICAL_PATH.match(link)
    if m is None:
        return forms
    for candidate in _urn_candidates(*m.groups()):
        if epc_to_digital_link(candidate) == link and candidate not in forms:
            forms.append(candidate)
    return forms

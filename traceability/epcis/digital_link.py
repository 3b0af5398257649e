"""Stage 3, EPCIS: EPC URI -> canonical GS1 Digital Link URI (GS1 Digital Link 1.2, 4.11; TDS 2.0 for the
EPC URIs), as the CBV 2.0 event hash names identifiers; the GS1 check digit."""

from __future__ import annotations

import re
from collections.abc import Callable

DL = "https://id.gs1.org/"
# Characters allowed in GS1 AI encodable strings as EPC URIs carry them (escapes included).
_CHARS = r"(?:%[0-9A-Fa-f]{2}|[!'()*+,\-.0-9:;=A-Z_a-z])"
_SERIAL = re.compile(rf"^{_CHARS}{{1,30}}$")


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit (GS1 General Specifications 7.9.1)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def _web_encode(text: str) -> str:
    for ch, enc in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C")):
        text = text.replace(ch, enc)
    return text.replace(":", "%3A")


def _digits(*fields: str, total: int) -> bool:
    return (
        all(f.isdigit() for f in fields)
        and sum(len(f) for f in fields) == total
        and 6 <= len(fields[0]) <= 12
    )


def epc_to_digital_link(uri: str) -> str | None:
    """The canonical GS1 Digital Link URI of an EPC (class) URI, or None if it is not one we convert."""
    if not uri.startswith("urn:epc:"):
        return None
    for prefix, convert in _CONVERTERS:
        if uri.startswith(prefix):
            fields = uri[len(prefix) :].split(".")
            return convert(fields)
    return None


def _sgtin(fields: list[str], ai: str = "21") -> str | None:
    if len(fields) < 3:
        return None
    cp, ir, serial = fields[0], fields[1], ".".join(fields[2:])
    if not _digits(cp, ir, total=13) or not _SERIAL.match(serial):
        return None
    gtin = ir[0] + cp + ir[1:]
    return f"{DL}01/{gtin}{check_digit(gtin)}/{ai}/{_web_encode(serial)}"


def _lgtin(fields: list[str]) -> str | None:
    return _sgtin(fields, ai="10")


def _idpat_sgtin(fields: list[str]) -> str | None:
    if len(fields) != 3 or fields[2] != "*" or not _digits(fields[0], fields[1], total=13):
        return None
    gtin = fields[1][0] + fields[0] + fields[1][1:]
    return f"{DL}01/{gtin}{check_digit(gtin)}"


def _sscc(fields: list[str]) -> str | None:
    if len(fields) != 2 or not _digits(fields[0], fields[1], total=17):
        return None
    raw = fields[1][0] + fields[0] + fields[1][1:]
    return f"{DL}00/{raw}{check_digit(raw)}"


def _sgln(fields: list[str]) -> str | None:
    if len(fields) < 3 or not _digits(fields[0], fields[1], total=12):
        return None
    gln = fields[0] + fields[1]
    ext = ".".join(fields[2:])
    base = f"{DL}414/{gln}{check_digit(gln)}"
    if ext == "0":
        return base
    return f"{base}/254/{_web_encode(ext)}" if _SERIAL.match(ext) else None


def _grai(fields: list[str]) -> str | None:
    if len(fields) < 3 or not _digits(fields[0], fields[1], total=12):
        return None
    raw = "0" + fields[0] + fields[1]
    serial = ".".join(fields[2:])
    return f"{DL}8003/{raw}{check_digit(raw)}{_web_encode(serial)}"


def _giai(fields: list[str]) -> str | None:
    if len(fields) < 2 or not fields[0].isdigit() or not 6 <= len(fields[0]) <= 12:
        return None
    ref = ".".join(fields[1:])
    if not _SERIAL.match(ref):
        return None
    return f"{DL}8004/{fields[0]}{_web_encode(ref)}"


Converter = Callable[[list[str]], "str | None"]


def _keyed(ai: str, total: int) -> Converter:
    def convert(fields: list[str]) -> str | None:
        if len(fields) != 2 or not _digits(fields[0], fields[1], total=total):
            return None
        raw = fields[0] + fields[1]
        return f"{DL}{ai}/{raw}{check_digit(raw)}"

    return convert


def _gdti(fields: list[str]) -> str | None:
    if len(fields) < 3 or not _digits(fields[0], fields[1], total=12):
        return None
    raw = fields[0] + fields[1]
    return f"{DL}253/{raw}{check_digit(raw)}{_web_encode('.'.join(fields[2:]))}"


def _ginc(fields: list[str]) -> str | None:
    if len(fields) < 2 or not fields[0].isdigit():
        return None
    return f"{DL}401/{fields[0]}{_web_encode('.'.join(fields[1:]))}"


def _pgln(fields: list[str]) -> str | None:
    if len(fields) == 2 and fields[1] == "":
        return None
    return _keyed("417", 12)(fields)


_CONVERTERS: tuple[tuple[str, Converter], ...] = (
    ("urn:epc:id:sgtin:", _sgtin),
    ("urn:epc:id:sscc:", _sscc),
    ("urn:epc:id:sgln:", _sgln),
    ("urn:epc:id:grai:", _grai),
    ("urn:epc:id:giai:", _giai),
    ("urn:epc:id:gsrn:", _keyed("8018", 17)),
    ("urn:epc:id:gsrnp:", _keyed("8017", 17)),
    ("urn:epc:id:gdti:", _gdti),
    ("urn:epc:id:ginc:", _ginc),
    ("urn:epc:id:gsin:", _keyed("402", 16)),
    ("urn:epc:id:pgln:", _pgln),
    ("urn:epc:class:lgtin:", _lgtin),
    ("urn:epc:idpat:sgtin:", _idpat_sgtin),
)

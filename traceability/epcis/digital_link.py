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


# GS1 Digital Link path: /<primary AI>/<key>[/<qualifier AI>/<value>], on any host (GS1 DL 1.2, 4.11).
_DL_PATH = re.compile(
    r"^https?://[^/?#]+(?:/[^?#]*?)??/(\d{2,4})/([^/?#]+)(?:/(\d{2,4})/([^/?#]+))?/?(?:[?#].*)?$"
)
_PREFIX_LENGTHS = range(6, 13)  # a GS1 company prefix has 6 to 12 digits


def _urn_candidates(ai: str, key: str, qual_ai: str | None, qual: str | None) -> list[str]:
    """EPC URIs that a Digital Link key may stand for, one per company prefix length (the link does not
    say where the prefix ends); the caller keeps those that convert back to the same link."""
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


def _unescape(text: str) -> str:
    """A Digital Link value as an EPC URI carries it: the characters the link escapes, unescaped."""
    for ch, enc in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C")):
        text = text.replace(enc, ch).replace(enc.lower(), ch)
    return text.replace("%3A", ":").replace("%3a", ":")


def epc_forms(uri: str) -> list[str]:
    """Every form of the same EPC: the URI as given, its canonical GS1 Digital Link URI, and the EPC URIs
    whose canonical link that is. An EPC URI and a Digital Link URI on any host name the same EPC when they
    convert to the same canonical link; a URI neither names only itself."""
    forms = [uri]
    link = epc_to_digital_link(uri)
    if link is not None:
        return [uri, link] if link != uri else forms
    m = _DL_PATH.match(uri)
    if m is None:
        return forms
    ai, key, qual_ai, qual = m.groups()
    for candidate in _urn_candidates(ai, _unescape(key), qual_ai, None if qual is None else _unescape(qual)):
        canonical = epc_to_digital_link(candidate)
        if canonical is None or _DL_PATH.sub(r"\1/\2/\3/\4", canonical) != _DL_PATH.sub(r"\1/\2/\3/\4", uri):
            continue
        forms.extend(x for x in (canonical, candidate) if x not in forms)
    return forms

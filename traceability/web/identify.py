"""Stage 3 (faces): what the search box was given: the GS1 keys of a scan (element string, raw GS1-128 or
DataMatrix with FNC1, GS1 Digital Link URL) and the EPC URIs they name, or plain text (lot id, EPC URI,
container number, B/L or waybill) for ``traceability.resolve``. Pure: no database."""

from __future__ import annotations

import re
from dataclasses import dataclass

from biip import ParseConfig, ParseError
from biip import parse as biip_parse
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin
from biip.sscc import Sscc

# A symbology identifier a scanner may put before the data (ISO/IEC 15424): ]C1 GS1-128, ]d2 GS1
# DataMatrix, ]Q3 GS1 QR, ]e0 GS1 DataBar, ]J1 GS1 DotCode ...
_SYMBOLOGY = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
# Group separator (FNC1 as a scanner transmits it), and the stand-ins some keyboard wedges send for it.
GS = "\x1d"
_SEPARATORS = [GS, "\u241d", "<GS>"]
# Characters an EPC URI carries as they are (TDS 2.0 table A-1); every other one is %-escaped.
_EPC_SAFE = frozenset("!'()*+,-.:;=_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# The longest thing a search box takes: far above any identifier.
MAX_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Identified:
    """The search box's text, and the GS1 element strings (AI, value) in it, if it was a GS1 scan."""

    text: str
    elements: tuple[tuple[str, str], ...] = ()

    @property
    def is_gs1(self) -> bool:
        return bool(self.elements)

    def value(self, ai: str) -> str | None:
        return next((v for a, v in self.elements if a == ai), None)

    @property
    def gtin(self) -> str | None:
        return self.value("01")

    @property
    def batch(self) -> str | None:
        return self.value("10")

    @property
    def serial(self) -> str | None:
        return self.value("21")

    @property
    def sscc(self) -> str | None:
        return self.value("00")

    def epcs(self) -> list[str]:
        """The EPC URIs the scan's keys name (finest first: SGTIN, then LGTIN, then SSCC); none when the
        GS1 company prefix cannot be told from the key."""
        out: list[str] = []
        gtin = self.gtin
        if gtin is not None:
            parts = _gtin_parts(gtin)
            if parts is not None:
                cp, ir = parts
                if self.serial is not None:
                    out.append(f"urn:epc:id:sgtin:{cp}.{ir}.{epc_escape(self.serial)}")
                if self.batch is not None:
                    out.append(f"urn:epc:class:lgtin:{cp}.{ir}.{epc_escape(self.batch)}")
        sscc = self.sscc
        if sscc is not None:
            epc = sscc_epc(sscc)
            if epc is not None:
                out.append(epc)
        return out


def epc_escape(text: str) -> str:
    """A GS1 AI value as an EPC URI writes it (TDS 2.0: characters outside the safe set %-escaped)."""
    return "".join(c if c in _EPC_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _gtin_parts(gtin: str) -> tuple[str, str] | None:
    """(company prefix, indicator + item reference) of a GTIN-14, None when its prefix length is unknown."""
    try:
        parsed = Gtin.parse(gtin)
    except ParseError:
        return None
    if parsed.company_prefix is None:
        return None
    cp = parsed.company_prefix.value
    digits = gtin.zfill(14)
    return cp, digits[0] + digits[1 + len(cp) : 13]


def sscc_epc(sscc: str) -> str | None:
    """The EPC URI of an SSCC (18 digits), None when it is not one or its prefix length is unknown."""
    try:
        parsed = Sscc.parse(sscc)
    except ParseError:
        return None
    if parsed.company_prefix is None:
        return None
    cp = parsed.company_prefix.value
    return f"urn:epc:id:sscc:{cp}.{sscc[0]}{sscc[1 + len(cp) : 17]}"


def _pairs(message: GS1Message) -> tuple[tuple[str, str], ...]:
    return tuple((e.ai.ai, e.value) for e in message.element_strings)


def identify(raw: str) -> Identified:
    """What ``raw`` (as typed, pasted or sent by a scanner) names.

    A GS1 scan is read when it says it is one: a human-readable element string ``(01)...(10)...``, a
    symbology identifier (``]d2``, ``]C1`` ...) or an FNC1 separator, or an http(s) GS1 Digital Link URL.
    Anything else (lot ids, EPC URIs, container numbers, documents) is text, trimmed."""
    text = raw.strip()[:MAX_LENGTH]
    if not text:
        return Identified("")
    if text.startswith("("):
        try:
            return Identified(text, _pairs(GS1Message.parse_hri(text)))
        except ParseError:
            return Identified(text)
    scanned = bool(_SYMBOLOGY.match(text)) or any(s in text for s in _SEPARATORS)
    if scanned:
        data = text
        for s in _SEPARATORS[1:]:
            data = data.replace(s, GS)
        data = data.strip(GS)
        try:
            result = biip_parse(data, config=ParseConfig(separator_chars=[GS]))
        except ParseError:
            return Identified(text)
        if result.gs1_message is not None:
            return Identified(text, _pairs(result.gs1_message))
        return Identified(text)
    if text.lower().startswith(("http://", "https://")):
        try:
            result = biip_parse(text)
        except ParseError:
            return Identified(text)
        if result.gs1_digital_link_uri is not None:
            dl = result.gs1_digital_link_uri
            return Identified(text, tuple((e.ai.ai, e.value) for e in dl.element_strings))
    return Identified(text)


def hri(elements: tuple[tuple[str, str], ...]) -> str:
    """The human-readable element string of (AI, value) pairs: ``(01)06901234123456(10)QZ2611A``."""
    return "".join(f"({ai}){value}" for ai, value in elements)

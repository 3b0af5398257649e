"""Stage 3, EPCIS: EPCIS 2.0 and 1.2 XML documents in (as the JSON-LD document capture takes) and out.

In: ``document_from_xml`` reads an ``EPCISDocument`` or ``EPCISQueryDocument`` of EPCIS 2.0
(``urn:epcglobal:epcis:xsd:2``) or 1.2 (``...:xsd:1``) and maps it to the document the EPCIS 2.0 JSON-LD
binding gives the same events, so capture checks, hashes and stores it exactly as the JSON form:

* every event becomes ``{"type": <element name>, ...}``; the 1.2 ``<extension>`` wrappers (of the event
  list, around ``TransformationEvent``, and inside events, nested too) and ``<baseExtension>`` (eventID,
  errorDeclaration) are flattened into the event;
* an element in a namespace (a user extension) becomes a ``prefix:name`` key whose namespace is bound in
  the document's ``@context``; its children become an object (a repeated child a list), its attributes
  keys beside ``#text``; ``xsi:type`` numbers and booleans become JSON numbers and booleans;
* ``bizTransaction``, ``source`` and ``destination`` keep their ``type`` attribute; ``sensorMetadata``
  and ``sensorReport`` attributes become keys (measurement values numbers; ``gs1:Temperature`` and
  ``gs1:ALARM_CONDITION`` the bare words); quantities are numbers; ``persistentDisposition`` keeps
  ``set``/``unset`` lists;
* CBV URNs (``urn:epcglobal:cbv:bizstep:shipping``) become the JSON binding's bare words
  (``shipping``), and back on the way out: the event hash gives both the same canonical value.

The parser refuses what could make it read or expand more than the bytes it was given: a DOCTYPE with an
external identifier or any declaration (entities, elements), so no entity is ever expanded, and no DTD or
network resource is ever loaded. A bare ``<!DOCTYPE name>``, which declares nothing (GS1's own 2.0
examples carry one), is accepted. Nesting deeper than the capture depth limit (plus the XML binding's
wrapper levels) is refused (one XPath, evaluated by libxml2) before anything is mapped. Every refusal is a
``capture.CaptureError`` with its own sentence and a JSON pointer-like location; no parser message reaches
the client.

Out: ``query_document_xml`` writes an EPCIS 2.0 ``EPCISQueryDocument`` of stored events; reading it back
gives events with the same event hashes.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from lxml import etree

from traceability.epcis import builders, capture

EPCIS_NS_2 = "urn:epcglobal:epcis:xsd:2"
EPCIS_QUERY_NS_2 = "urn:epcglobal:epcis-query:xsd:2"
# The namespaces a document element may be in (none is accepted too: some published examples use none).
_DOCUMENT_NAMESPACES = frozenset(
    {
        None,
        "urn:epcglobal:epcis:xsd:1",
        EPCIS_NS_2,
        "urn:epcglobal:epcis-query:xsd:1",
        EPCIS_QUERY_NS_2,
    }
)
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
GS1_VOC = "https://gs1.org/voc/"
XML_MEDIA_TYPES = ("application/xml", "text/xml")

EVENT_TYPES = capture.EVENT_TYPES
# Reasons listed at most for one document: a hundred say what is wrong; the rest is not walked.
MAX_REASONS = 100
# Levels the XML binding has and the JSON one has not: the 1.2 <extension> around a TransformationEvent
# in the event list, and an event's own <extension><extension> (1.2 sensor data sit two deep).
XML_WRAPPER_LEVELS = 3

_SCALARS = frozenset(
    {
        "eventTime",
        "recordTime",
        "eventTimeZoneOffset",
        "eventID",
        "parentID",
        "action",
        "transformationID",
        "bizStep",
        "disposition",
    }
)
_EPC_LISTS = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS = frozenset({"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"})
_TYPED_LISTS = {
    "bizTransactionList": "bizTransaction",
    "sourceList": "source",
    "destinationList": "destination",
}
_PLACES = frozenset({"readPoint", "bizLocation"})
# sensorReport attributes whose JSON form is a number (EPCIS 2.0 JSON Schema).
_NUMERIC_REPORT_ATTRIBUTES = frozenset(
    {"value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"}
)
_XSD_INTEGERS = frozenset(
    {
        "integer",
        "int",
        "long",
        "short",
        "byte",
        "nonNegativeInteger",
        "positiveInteger",
        "unsignedInt",
        "unsignedLong",
        "unsignedShort",
        "nonPositiveInteger",
        "negativeInteger",
    }
)
_XSD_DECIMALS = frozenset({"double", "float", "decimal"})
# Prefixes never used for an extension namespace in @context: they read as URI schemes or as the EPCIS
# context's own terms.
_RESERVED_PREFIXES = frozenset({"http", "https", "urn", "ni", "epcis", "cbv", "gs1", "xsd", "xsi", "xml"})

# The URN form (XML) of the bare CBV words (JSON) of each field.
_URN_OF_FIELD = {
    "bizStep": "urn:epcglobal:cbv:bizstep:",
    "disposition": "urn:epcglobal:cbv:disp:",
    "persistentDisposition": "urn:epcglobal:cbv:disp:",
    "bizTransactionList": "urn:epcglobal:cbv:btt:",
    "sourceList": "urn:epcglobal:cbv:sdt:",
    "destinationList": "urn:epcglobal:cbv:sdt:",
    "reason": "urn:epcglobal:cbv:er:",
}
# Element order of the EPCIS 2.0 XML schema (the fields an event type lacks are skipped).
_HEAD = ("eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "errorDeclaration", "certificationInfo")
_BODY_ORDER = {
    "ObjectEvent": (
        "epcList", "action", "bizStep", "disposition", "persistentDisposition", "readPoint", "bizLocation",
        "bizTransactionList", "quantityList", "sourceList", "destinationList", "sensorElementList", "ilmd",
    ),
    "AggregationEvent": (
        "parentID", "childEPCs", "action", "bizStep", "disposition", "persistentDisposition", "readPoint",
        "bizLocation", "bizTransactionList", "childQuantityList", "sourceList", "destinationList",
        "sensorElementList",
    ),
    "TransactionEvent": (
        "bizTransactionList", "parentID", "epcList", "action", "bizStep", "disposition",
        "persistentDisposition", "readPoint", "bizLocation", "quantityList", "sourceList", "destinationList",
        "sensorElementList",
    ),
    "TransformationEvent": (
        "inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList", "transformationID",
        "bizStep", "disposition", "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList",
        "sourceList", "destinationList", "sensorElementList", "ilmd",
    ),
    "AssociationEvent": (
        "parentID", "childEPCs", "childQuantityList", "action", "bizStep", "disposition",
        "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList",
        "destinationList", "sensorElementList",
    ),
}  # fmt: skip
_NOT_SERIALISED = frozenset({"type", "@context"})
# Every standard field, for an event that carries one its type does not have (the schema refuses it; the
# round trip keeps it a field, not an extension).
_ALL_FIELDS = tuple(dict.fromkeys(f for order in _BODY_ORDER.values() for f in order))

# The prolog before the root element: comments, processing instructions (the XML declaration), space.
_PROLOG_MISC = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
# The one DOCTYPE accepted: a name, and at most an empty internal subset.
_BARE_DOCTYPE = re.compile(rb"<!DOCTYPE\s+[^\s\[>]+\s*(?:\[\s*\]\s*)?>")
_BOM = b"\xef\xbb\xbf"
DTD_REFUSED = "a DOCTYPE that names or declares a DTD or entities is not accepted (EPCIS XML uses none)"


def _parser() -> etree.XMLParser:
    """A parser that loads nothing beyond the bytes: no DTD, no network, no entity expansion, libxml2's
    default size and depth ceilings (``huge_tree`` off)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def looks_like_xml(raw: bytes) -> bool:
    """A body whose first byte after whitespace (and a UTF-8 byte order mark) is ``<``."""
    return raw.lstrip(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


def document_from_xml(raw: bytes, limits: capture.CaptureLimits = capture.DEFAULT_LIMITS) -> dict[str, Any]:
    """The JSON-LD document of an EPCIS XML document's bytes, else ``capture.CaptureRefusedError``."""
    if _declares_a_dtd(raw):
        raise capture.CaptureRefusedError([capture.CaptureError("", DTD_REFUSED)])
    try:
        root = etree.fromstring(raw, _parser())  # the parser loads and expands nothing
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        refusal = capture.CaptureError("", f"not well-formed XML (line {line}, column {column})")
        raise capture.CaptureRefusedError([refusal]) from None
    _check_prolog(root)
    _check_depth(root, limits)
    return _Reader(limits).document(root)


def _declares_a_dtd(raw: bytes) -> bool:
    """Whether the prolog has a DOCTYPE other than a bare name: seen before the parser runs, so such a
    document is refused for its DOCTYPE, whatever the parser would make of it."""
    pos = len(_BOM) if raw.startswith(_BOM) else 0
    while (m := _PROLOG_MISC.match(raw, pos)) is not None and m.end() > pos:
        pos = m.end()
    while raw[pos : pos + 1].isspace():
        pos += 1
    return raw.startswith(b"<!DOCTYPE", pos) and _BARE_DOCTYPE.match(raw, pos) is None


def _check_prolog(root: etree._Element) -> None:
    """The parsed document's DOCTYPE too (a second look, after the byte scan): an entity reference to no
    declared entity does not parse, so with no declaration none can be in the tree."""
    info = root.getroottree().docinfo
    dtd = info.internalDTD
    declares = dtd is not None and (
        any(True for _ in dtd.iterentities()) or any(True for _ in dtd.iterelements())
    )
    if info.system_url or info.public_id or declares:
        raise capture.CaptureRefusedError([capture.CaptureError("", DTD_REFUSED)])


def _check_depth(root: etree._Element, limits: capture.CaptureLimits) -> None:
    """Element nesting within the capture depth limit plus the binding's wrapper levels: one XPath that
    libxml2 evaluates level by level, no recursion and no Python object per element."""
    ceiling = limits.depth + XML_WRAPPER_LEVELS
    if _deeper_than(ceiling)(root):
        raise capture.CaptureRefusedError([capture.CaptureError("", f"nested deeper than {ceiling} levels")])


@lru_cache(maxsize=8)
def _deeper_than(levels: int) -> etree.XPath:
    """Whether a document has an element more than ``levels`` deep (the root element is level 1)."""
    return etree.XPath("boolean(" + "/*" * (levels + 1) + ")")


def _qname(element: etree._Element) -> tuple[str | None, str]:
    """(namespace, local name) of an element, from lxml's ``{namespace}local`` tag."""
    tag: str = element.tag
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _children(element: etree._Element) -> list[etree._Element]:
    return [c for c in element if isinstance(c.tag, str)]


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _number(text: str) -> Any:
    """A JSON number of an XML number's text (an integer if it is one), else the text: the schema then says
    what is wrong with it."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _boolean(text: str) -> Any:
    return {"true": True, "1": True, "false": False, "0": False}.get(text, text)


class _Reader:
    """One document's mapping: the namespaces its extensions use, bound to prefixes for @context."""

    def __init__(self, limits: capture.CaptureLimits) -> None:
        # A list is mapped to one item past the list limit: capture refuses it for that, with its place,
        # and no more of it is walked.
        self.list_cap = limits.list_items + 1
        self.prefix_of: dict[str, str] = {}  # namespace -> prefix
        self.errors: list[capture.CaptureError] = []

    def items(self, element: etree._Element) -> list[etree._Element]:
        """A list element's items, to one past the list limit."""
        return _children(element)[: self.list_cap]

    def refuse(self, error: capture.CaptureError) -> None:
        """Note a reason to refuse the document; at ``MAX_REASONS`` the walk stops there."""
        self.errors.append(error)
        if len(self.errors) >= MAX_REASONS:
            raise capture.CaptureRefusedError(self.errors)

    def document(self, root: etree._Element) -> dict[str, Any]:
        ns, name = _qname(root)
        if ns not in _DOCUMENT_NAMESPACES or name not in ("EPCISDocument", "EPCISQueryDocument"):
            message = f"the root element is <{name}>, not an EPCISDocument or EPCISQueryDocument"
            raise capture.CaptureRefusedError([capture.CaptureError("", message)])
        # The EPCISHeader (SBDH, master data) is not read: capture keeps events only.
        body = next((c for c in _children(root) if _qname(c)[1] == "EPCISBody"), None)
        if body is None:
            raise capture.CaptureRefusedError([capture.CaptureError("/epcisBody", "no EPCISBody")])
        doc: dict[str, Any] = {"@context": [], "type": name, "schemaVersion": "2.0"}
        if root.get("creationDate"):
            doc["creationDate"] = root.get("creationDate")
        if name == "EPCISDocument":
            event_list = next((c for c in _children(body) if _qname(c)[1] == "EventList"), None)
            doc["epcisBody"] = {"eventList": self.events(event_list, "/epcisBody/eventList")}
        else:
            doc["epcisBody"] = {"queryResults": self.query_results(body)}
        if self.errors:
            raise capture.CaptureRefusedError(self.errors)
        doc["@context"] = [builders.EPCIS_CONTEXT, *({p: n} for n, p in self.prefix_of.items())]
        return doc

    def query_results(self, body: etree._Element) -> dict[str, Any]:
        results = next((c for c in _children(body) if _qname(c)[1] == "QueryResults"), None)
        out: dict[str, Any] = {}
        if results is None:
            self.refuse(capture.CaptureError("/epcisBody/queryResults", "no QueryResults"))
            return out
        for child in _children(results):
            name = _qname(child)[1]
            if name in ("queryName", "subscriptionID"):
                out[name] = _text(child)
            elif name == "resultsBody":
                event_list = next((c for c in _children(child) if _qname(c)[1] == "EventList"), None)
                path = "/epcisBody/queryResults/resultsBody/eventList"
                out["resultsBody"] = {"eventList": self.events(event_list, path)}
        return out

    def events(self, event_list: etree._Element | None, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        pending = deque(_children(event_list) if event_list is not None else ())
        while pending and len(out) <= capture.MAX_EVENTS:  # one more: capture refuses the document for it
            element = pending.popleft()
            ns, name = _qname(element)
            if name == "extension" and ns is None:  # 1.2: <extension><TransformationEvent>
                pending.extendleft(reversed(_children(element)))
            elif name in EVENT_TYPES and ns is None:
                out.append(self.event(element, name, f"{path}/{len(out)}"))
            else:
                self.refuse(capture.CaptureError(f"{path}/{len(out)}", f"<{name}> is not an EPCIS event"))
        return out

    def event(self, element: etree._Element, event_type: str, path: str) -> dict[str, Any]:
        event: dict[str, Any] = {"type": event_type}
        pending = deque(_children(element))
        while pending:
            child = pending.popleft()
            ns, name = _qname(child)
            if ns is not None:
                self.put_extension(event, child)
            elif name in ("extension", "baseExtension"):  # 1.2 wrappers, nested too: flattened
                pending.extendleft(reversed(_children(child)))
            else:
                self.standard_field(event, child, name, path)
        return event

    def standard_field(self, event: dict[str, Any], child: etree._Element, name: str, path: str) -> None:
        at = f"{path}/{name}"
        if name in event and name != "certificationInfo":
            self.refuse(capture.CaptureError(at, f"<{name}> given more than once"))
        elif name in _SCALARS:
            event[name] = _bare(name, _text(child))
        elif name == "certificationInfo":
            previous = event.get(name)
            value = _text(child)
            if previous is None:
                event[name] = value
            elif isinstance(previous, list):
                previous.append(value)
            else:
                event[name] = [previous, value]
        elif name in _EPC_LISTS:
            event[name] = [_text(c) for c in self.items(child)]
        elif name in _QUANTITY_LISTS:
            event[name] = [self.quantity(c) for c in self.items(child)]
        elif name in _TYPED_LISTS:
            event[name] = [self.typed(c, name) for c in self.items(child)]
        elif name in _PLACES:
            event[name] = self.fields(child, at, {"id"})
        elif name == "persistentDisposition":
            disposition: dict[str, list[str]] = {}
            for c in _children(child):
                disposition.setdefault(_qname(c)[1], []).append(_bare(name, _text(c)))
            event[name] = disposition
        elif name == "errorDeclaration":
            event[name] = self.error_declaration(child, at)
        elif name == "ilmd":
            event[name] = self.fields(child, at, set())
        elif name == "sensorElementList":
            event[name] = [self.sensor_element(c, f"{at}/{i}") for i, c in enumerate(self.items(child))]
        else:
            self.refuse(
                capture.CaptureError(at, f"<{name}> is not an EPCIS field; an extension needs a namespace")
            )

    def quantity(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in _children(element):
            name = _qname(c)[1]
            if c.get(f"{{{XSI_NS}}}nil") == "true":
                continue
            out[name] = _number(_text(c)) if name == "quantity" else _text(c)
        return out

    def typed(self, element: etree._Element, list_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if element.get("type") is not None:
            out["type"] = _bare(list_name, element.get("type", "").strip())
        out[_TYPED_LISTS[list_name]] = _text(element)
        return out

    def fields(self, element: etree._Element, path: str, standard: set[str]) -> dict[str, Any]:
        """A readPoint / bizLocation / ilmd / errorDeclaration: its standard children and its extensions."""
        out: dict[str, Any] = {}
        for c in _children(element):
            ns, name = _qname(c)
            if ns is not None:
                self.put_extension(out, c)
            elif name in standard:
                out[name] = _text(c)
            elif name == "extension":  # 1.2 readPoint/bizLocation extension
                out.update(self.fields(c, path, standard))
            else:
                self.refuse(capture.CaptureError(f"{path}/{name}", f"<{name}> is not an EPCIS field"))
        return out

    def error_declaration(self, element: etree._Element, path: str) -> dict[str, Any]:
        out = self.fields(element, path, {"declarationTime", "reason", "correctiveEventIDs"})
        ids = next((c for c in _children(element) if _qname(c) == (None, "correctiveEventIDs")), None)
        if ids is not None:
            out["correctiveEventIDs"] = [_text(c) for c in _children(ids)]
        if "reason" in out:
            out["reason"] = _bare("reason", out["reason"])
        return out

    def sensor_element(self, element: etree._Element, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pending = deque(_children(element))
        while pending:
            c = pending.popleft()
            ns, name = _qname(c)
            if ns is not None:
                self.put_extension(out, c)
            elif name == "sensorMetadata":
                out[name] = self.attributes(c, report=False)
            elif name == "sensorReport":
                reports = out.setdefault(name, [])
                if len(reports) < self.list_cap:
                    reports.append(self.attributes(c, report=True))
            elif name == "extension":
                pending.extendleft(reversed(_children(c)))
            else:
                self.refuse(capture.CaptureError(f"{path}/{name}", f"<{name}> is not an EPCIS field"))
        return out

    def attributes(self, element: etree._Element, *, report: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, raw in element.attrib.items():
            q = etree.QName(key)
            value = raw.strip()
            if q.namespace is not None:
                if q.namespace != XSI_NS:
                    out[self.attribute_key(element, q)] = value
                continue
            name = q.localname
            if report and name in _NUMERIC_REPORT_ATTRIBUTES:
                out[name] = _number(value)
            elif report and name == "booleanValue":
                out[name] = _boolean(value)
            elif report and name in ("type", "exception"):
                out[name] = self.gs1_term(element, value)
            else:
                out[name] = value
        return out

    def gs1_term(self, element: etree._Element, value: str) -> str:
        """A measurement type or sensor alert as ``gs1:Temperature`` (the XML examples' CURIE) or GS1's Web
        URI -> the JSON form's bare name."""
        prefix, sep, local = value.partition(":")
        namespace = element.nsmap.get(prefix) if sep else None
        if sep and (prefix == "gs1" or namespace == GS1_VOC) and "/" not in local:
            return local
        if value.startswith(GS1_VOC) and "/" not in value[len(GS1_VOC) :]:
            return value[len(GS1_VOC) :]
        return value

    def key(self, namespace: str, preferred: str | None) -> str:
        """The JSON key prefix bound to ``namespace`` (the XML prefix where it is free)."""
        prefix = self.prefix_of.get(namespace)
        if prefix is None:
            taken = set(self.prefix_of.values())
            prefix = preferred or "ns"
            if prefix in taken or prefix in _RESERVED_PREFIXES or not prefix.isidentifier():
                n = 1
                while f"ns{n}" in taken:
                    n += 1
                prefix = f"ns{n}"
            self.prefix_of[namespace] = prefix
        return prefix

    def attribute_key(self, element: etree._Element, q: etree.QName) -> str:
        """``prefix:name`` of a namespaced attribute."""
        assert q.namespace is not None
        return f"{self.key(q.namespace, _prefix_of(element, q.namespace))}:{q.localname}"

    def put_extension(self, target: dict[str, Any], element: etree._Element) -> None:
        ns, name = _qname(element)
        assert ns is not None
        key = f"{self.key(ns, element.prefix)}:{name}"
        previous = target.get(key)
        if isinstance(previous, list):  # an element's own value is never a list: this is a repeat
            if len(previous) < self.list_cap:
                previous.append(self.extension_value(element))
        elif key in target:
            target[key] = [previous, self.extension_value(element)]
        else:
            target[key] = self.extension_value(element)

    def extension_value(self, element: etree._Element) -> Any:
        """An extension element's JSON value: typed text, or an object of its attributes and children."""
        xsi_type = element.get(f"{{{XSI_NS}}}type", "")
        if element.get(f"{{{XSI_NS}}}nil") == "true":
            return None
        children = _children(element)
        attributes = {k: v for k, v in element.attrib.items() if etree.QName(k).namespace != XSI_NS}
        text = _text(element)
        if not children and not attributes:
            return _typed(text, xsi_type.rpartition(":")[2])
        out: dict[str, Any] = {}
        for key, value in attributes.items():
            q = etree.QName(key)
            out[q.localname if q.namespace is None else self.attribute_key(element, q)] = value
        if text:
            out["#text"] = _typed(text, xsi_type.rpartition(":")[2])
        for child in children:
            self.put_extension(out, child)
        return out


def _typed(text: str, xsd_type: str) -> Any:
    if xsd_type in _XSD_INTEGERS or xsd_type in _XSD_DECIMALS:
        return _number(text)
    if xsd_type == "boolean":
        return _boolean(text)
    return text


def _prefix_of(element: etree._Element, namespace: str) -> str | None:
    return next((p for p, n in element.nsmap.items() if n == namespace and p is not None), None)


# ---------------------------------------------------------------------------------------------- out


def events_to_xml(events: Iterable[Mapping[str, Any]], *, creation_date: datetime | None = None) -> bytes:
    """An EPCIS 2.0 XML ``EPCISQueryDocument`` (SimpleEventQuery results) of JSON-LD events."""
    events = list(events)
    namespaces: dict[str, str] = {}
    for event in events:
        for item in _context_items(event.get("@context")):
            namespaces.update({k: v for k, v in item.items() if isinstance(v, str) and k != "@vocab"})
    nsmap: dict[str | None, str] = {"epcisq": EPCIS_QUERY_NS_2, "gs1": GS1_VOC, "xsi": XSI_NS, "xsd": XSD_NS}
    for prefix, namespace in sorted(namespaces.items()):
        if prefix not in nsmap and prefix.isidentifier():
            nsmap[prefix] = namespace
    root = etree.Element(f"{{{EPCIS_QUERY_NS_2}}}EPCISQueryDocument", nsmap=nsmap)
    root.set("schemaVersion", "2.0")
    root.set("creationDate", builders.iso_ms(creation_date or datetime.now(UTC)))
    body = etree.SubElement(root, "EPCISBody")
    results = etree.SubElement(body, f"{{{EPCIS_QUERY_NS_2}}}QueryResults")
    etree.SubElement(results, "queryName").text = "SimpleEventQuery"
    event_list = etree.SubElement(etree.SubElement(results, "resultsBody"), "EventList")
    for event in events:
        _Writer(nsmap, _context_namespaces(event.get("@context"))).event(event_list, event)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def query_document_xml(rows: Sequence[tuple[str, str]], *, creation_date: datetime | None = None) -> bytes:
    """``events_to_xml`` of stored events given as ``events_query.run`` gives them: the JSON texts of each
    event's @context and of the rest of it."""
    events = []
    for context_text, body_text in rows:
        event = msgspec.json.decode(body_text)
        event["@context"] = msgspec.json.decode(context_text)
        events.append(event)
    return events_to_xml(events, creation_date=creation_date)


def wants_xml(accept: str | None) -> bool:
    """Whether an Accept header prefers EPCIS XML to JSON (JSON on a tie, a wildcard or no header)."""
    best_xml, best_json = 0.0, 0.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in XML_MEDIA_TYPES:
            best_xml = max(best_xml, q)
        elif media in ("application/json", "application/ld+json", "*/*", "application/*"):
            best_json = max(best_json, q)
    return best_xml > best_json


def _context_items(context: Any) -> list[Mapping[str, Any]]:
    return [c for c in (context if isinstance(context, list) else [context]) if isinstance(c, Mapping)]


def _context_namespaces(context: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in _context_items(context):
        found.update({k: v for k, v in item.items() if isinstance(v, str)})
    return found


class _Writer:
    """One event's XML: extension keys ``prefix:name`` become elements in the prefix's namespace."""

    def __init__(self, nsmap: Mapping[str | None, str], namespaces: Mapping[str, str]) -> None:
        self.nsmap = nsmap
        self.namespaces = namespaces

    def tag(self, key: str) -> str:
        prefix, sep, local = key.partition(":")
        namespace = self.namespaces.get(prefix) if sep else None
        return f"{{{namespace}}}{local}" if namespace else key

    def event(self, parent: etree._Element, event: Mapping[str, Any]) -> None:
        event_type = str(event.get("type"))
        element = etree.SubElement(parent, event_type)
        own = _BODY_ORDER.get(event_type, ())
        order = (*_HEAD, *own, *(f for f in _ALL_FIELDS if f not in own))
        for key in order:
            if key in event:
                self.field(element, key, event[key])
        for key, value in event.items():
            if key not in order and key not in _NOT_SERIALISED:
                self.extension(element, key, value)

    def field(self, parent: etree._Element, key: str, value: Any) -> None:
        if key in _EPC_LISTS:
            holder = etree.SubElement(parent, key)
            for epc in value:
                etree.SubElement(holder, "epc").text = str(epc)
        elif key in _QUANTITY_LISTS:
            holder = etree.SubElement(parent, key)
            for q in value:
                element = etree.SubElement(holder, "quantityElement")
                for name in ("epcClass", "quantity", "uom"):
                    if q.get(name) is not None:
                        etree.SubElement(element, name).text = _scalar(q[name])
        elif key in _TYPED_LISTS:
            holder = etree.SubElement(parent, key)
            for item in value:
                element = etree.SubElement(holder, _TYPED_LISTS[key])
                if item.get("type") is not None:
                    element.set("type", _urn(key, str(item["type"])))
                element.text = str(item.get(_TYPED_LISTS[key], ""))
        elif key in _PLACES:
            self.object(etree.SubElement(parent, key), value, ("id",))
        elif key == "persistentDisposition":
            holder = etree.SubElement(parent, key)
            for part in ("set", "unset"):
                for item in value.get(part, ()):
                    etree.SubElement(holder, part).text = _urn(key, str(item))
        elif key == "errorDeclaration":
            holder = etree.SubElement(parent, key)
            for name in ("declarationTime", "reason"):
                if name in value:
                    etree.SubElement(holder, name).text = _urn(name, str(value[name]))
            if "correctiveEventIDs" in value:
                ids = etree.SubElement(holder, "correctiveEventIDs")
                for event_id in value["correctiveEventIDs"]:
                    etree.SubElement(ids, "correctiveEventID").text = str(event_id)
            for name, v in value.items():
                if name not in ("declarationTime", "reason", "correctiveEventIDs"):
                    self.extension(holder, name, v)
        elif key == "certificationInfo":
            for item in value if isinstance(value, list) else [value]:
                etree.SubElement(parent, key).text = str(item)
        elif key == "ilmd":
            self.object(etree.SubElement(parent, key), value, ())
        elif key == "sensorElementList":
            holder = etree.SubElement(parent, key)
            for item in value:
                self.sensor_element(etree.SubElement(holder, "sensorElement"), item)
        else:
            etree.SubElement(parent, key).text = _urn(key, _scalar(value))

    def object(self, element: etree._Element, value: Mapping[str, Any], standard: Sequence[str]) -> None:
        for name in standard:
            if name in value:
                etree.SubElement(element, name).text = str(value[name])
        for name, v in value.items():
            if name not in standard:
                self.extension(element, name, v)

    def sensor_element(self, element: etree._Element, value: Mapping[str, Any]) -> None:
        if "sensorMetadata" in value:
            self.attributes(
                etree.SubElement(element, "sensorMetadata"), value["sensorMetadata"], report=False
            )
        for report in value.get("sensorReport", ()):
            self.attributes(etree.SubElement(element, "sensorReport"), report, report=True)
        for name, v in value.items():
            if name not in ("sensorMetadata", "sensorReport"):
                self.extension(element, name, v)

    def attributes(self, element: etree._Element, value: Mapping[str, Any], *, report: bool) -> None:
        for name, v in value.items():
            if report and name in ("type", "exception") and isinstance(v, str) and ":" not in v:
                element.set(name, "gs1:" + v)
            else:
                element.set(self.tag(name), _scalar(v))

    def extension(self, parent: etree._Element, key: str, value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                self.extension(parent, key, item)
            return
        element = etree.SubElement(parent, self.tag(key))
        if value is None:
            element.set(f"{{{XSI_NS}}}nil", "true")
        elif isinstance(value, Mapping):
            for name, v in value.items():
                if name == "#text":
                    self.typed_text(element, v)
                elif ":" in name:
                    self.extension(element, name, v)
                else:
                    element.set(name, _scalar(v))
        else:
            self.typed_text(element, value)

    def typed_text(self, element: etree._Element, value: Any) -> None:
        if isinstance(value, bool):
            element.set(f"{{{XSI_NS}}}type", "xsd:boolean")
        elif isinstance(value, int):
            element.set(f"{{{XSI_NS}}}type", "xsd:integer")
        elif isinstance(value, float):
            element.set(f"{{{XSI_NS}}}type", "xsd:double")
        element.text = _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _bare(field: str, value: str) -> str:
    """A CBV URN as the bare word the JSON binding uses (GS1's JSON Schema refuses ``urn:epcglobal:cbv:``
    values); anything else unchanged. The event hash gives both forms the same canonical value."""
    prefix = _URN_OF_FIELD.get(field)
    return value[len(prefix) :] if prefix and value.startswith(prefix) else value


def _urn(field: str, value: str) -> str:
    """A bare CBV word as the URN its field's XML form takes; anything else unchanged."""
    prefix = _URN_OF_FIELD.get(field)
    return prefix + value if prefix and value and ":" not in value else value

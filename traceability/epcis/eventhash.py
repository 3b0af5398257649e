"""Stage 3, EPCIS: the GS1 CBV 2.0 EPCIS event hash (``ni:///sha-256;<hex>?ver=CBV2.0``) of a JSON-LD event.

Follows the canonicalisation of CBV 2.0 section 8.9 as written up by the reference implementation
(github.com/RalphTro/epcis-event-hash-generator, README "Algorithm" and ``PROP_ORDER``):

* the pre-hash string starts ``eventType=<type>`` and then takes the event's fields in the canonical
  property order (``CANONICAL_ORDER``), concatenated with no separator, ``key=value`` for values and the
  bare key for containers (``epcList``, ``readPoint``, ``sensorElement``...);
* list members (``epc``, ``quantityElement``, ``sensorElement``, ``sensorReport``...) are each turned into
  a string and sorted by code point; a list's name appears once;
* timestamps become UTC with millisecond precision and ``Z``; numbers lose trailing zeros;
  whitespace around values is stripped;
* bare CBV / GS1 vocabulary values (``shipping``, ``in_transit``, ``Temperature``, ``ALARM_CONDITION``)
  and ``urn:epcglobal:cbv:`` URNs become their Web URIs; EPC URIs become canonical GS1 Digital Link URIs;
* user extensions are ``{namespace}localName=value`` (prefixes expanded with the event's ``@context``),
  sorted, after the standard fields; extensions inside ``readPoint``, ``bizLocation``,
  ``sensorElement``, ``sensorMetadata`` and ``sensorReport`` go at the end of their parent;
* ``eventID``, ``recordTime``, ``errorDeclaration``, ``type`` and ``@context`` are not hashed.

Not covered yet (see ``traceability/README.md``): constraining GS1 Digital Link URIs given as such
(custom domains, query strings, key qualifiers), the EPC URI schemes cpi, sgcn, itip, upui and most
``idpat`` patterns, and ``errorDeclaration`` events' own canonical form.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from traceability.epcis.digital_link import epc_to_digital_link
from traceability.limits import EVENT_MAX_DEPTH

HASH_VERSION = "CBV2.0"
HASH_PREFIX = "ni:///sha-256;"
HASH_SUFFIX = f"?ver={HASH_VERSION}"

CBV = "https://ref.gs1.org/cbv/"
GS1_VOC = "https://gs1.org/voc/"

_EPC_LIST = ("epc",)
_QUANTITY = ("epcClass", "quantity", "uom")
_SENSOR_METADATA = (
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
)
_SENSOR_REPORT = (
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
)

# Canonical property order (CBV 2.0 8.9.2; the reference implementation's PROP_ORDER).
CANONICAL_ORDER: tuple[str, ...] = (
    "eventTime",
    "eventTimeZoneOffset",
    "certificationInfo",
    "parentID",
    "epcList",
    "inputEPCList",
    "childEPCs",
    "quantityList",
    "childQuantityList",
    "inputQuantityList",
    "outputEPCList",
    "outputQuantityList",
    "action",
    "transformationID",
    "bizStep",
    "disposition",
    "persistentDisposition",
    "readPoint",
    "bizLocation",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
    "ilmd",
)
_NOT_HASHED = frozenset({"type", "eventID", "recordTime", "errorDeclaration", "@context"})
_EPC_LISTS = frozenset({"epcList", "inputEPCList", "childEPCs", "outputEPCList"})
_QUANTITY_LISTS = frozenset({"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"})
_TYPED_LISTS = {
    "bizTransactionList": "bizTransaction",
    "sourceList": "source",
    "destinationList": "destination",
}

# Bare vocabulary values allowed by the EPCIS 2.0 JSON schema, and the Web URI prefix each expands to.
_BIZ_STEPS = frozenset(
    {
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "sensor_reporting",
        "sampling",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
    }
)
_DISPOSITIONS = frozenset(
    {
        "active",
        "container_closed",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "no_pedigree_match",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unknown",
        "available",
        "completeness_verified",
        "completeness_inferred",
        "conformant",
        "container_open",
        "mismatch_instance",
        "mismatch_class",
        "mismatch_quantity",
        "needs_replacement",
        "non_conformant",
        "unavailable",
    }
)
_BTT = frozenset(
    {"bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma", "testprd"}
)
_SDT = frozenset({"owning_party", "possessing_party", "location"})
_ALERTS = frozenset({"ALARM_CONDITION", "ERROR_CONDITION"})
_URN_VOCAB = (
    ("urn:epcglobal:cbv:bizstep:", CBV + "BizStep-"),
    ("urn:epcglobal:cbv:disp:", CBV + "Disp-"),
    ("urn:epcglobal:cbv:btt:", CBV + "BTT-"),
    ("urn:epcglobal:cbv:sdt:", CBV + "SDT-"),
    ("urn:epcglobal:cbv:er:", CBV + "ER-"),
)


def event_hash(event: Mapping[str, Any]) -> str:
    """The CBV 2.0 event hash of one EPCIS event: ``ni:///sha-256;<64 hex>?ver=CBV2.0``."""
    digest = hashlib.sha256(prehash_string(event).encode("utf-8")).hexdigest()
    return f"{HASH_PREFIX}{digest}{HASH_SUFFIX}"


def prehash_string(event: Mapping[str, Any]) -> str:
    """The canonical pre-hash string of one EPCIS 2.0 JSON-LD event."""
    ns = _namespaces(event.get("@context"))
    parts = ["eventType=" + str(event["type"])]
    for key in CANONICAL_ORDER:
        if key in event:
            parts.append(_field(key, event[key], ns))
    extensions = [
        _extension(k, v, ns) for k, v in event.items() if k not in _NOT_HASHED and k not in CANONICAL_ORDER
    ]
    parts.append("".join(sorted(extensions)))
    return "".join(parts)


def _field(key: str, value: Any, ns: Mapping[str, str]) -> str:
    if type(value) is str and key in _SCALAR_FIELDS:
        return _scalar_field(key, value)
    if key in _PLACES and type(value) is dict and len(value) == 1 and type(value.get("id")) is str:
        return _place(key, value["id"])
    if key in _EPC_LISTS:
        return _listed(key, ["epc" + _kv_value("epc", v) for v in value])
    if key in _QUANTITY_LISTS:
        return _listed(key, ["quantityElement" + _ordered(q, _QUANTITY, ns) for q in value])
    if key in _TYPED_LISTS:
        name = _TYPED_LISTS[key]
        items = [_kv("type", item["type"], vocab=key) + _kv(name, item.get(name)) for item in value]
        return _listed(key, items)
    if key in ("readPoint", "bizLocation"):
        return _listed(key, [_ordered(value, ("id",), ns)])
    if key == "persistentDisposition":
        body = "".join(
            "".join(sorted(_kv(part, v, vocab="disposition") for v in value.get(part, ())))
            for part in ("set", "unset")
        )
        return _listed(key, [body])
    if key == "sensorElementList":
        return _listed(key, [_sensor_element(e, ns) for e in value])
    if key == "ilmd":
        return _listed(key, [_extension(k, v, ns) for k, v in value.items()], sort=True)
    if key == "certificationInfo":
        values = value if isinstance(value, list) else [value]
        return "".join(sorted(_kv(key, v) for v in values))
    return _kv(key, value, vocab=key)


# Fields whose string value is hashed as ``key=value`` (the default branch of ``_field``).
_SCALAR_FIELDS = (
    frozenset(CANONICAL_ORDER)
    - _EPC_LISTS
    - _QUANTITY_LISTS
    - frozenset(_TYPED_LISTS)
    - {"certificationInfo", "readPoint", "bizLocation", "persistentDisposition", "sensorElementList", "ilmd"}
)
_PLACES = frozenset({"readPoint", "bizLocation"})


@lru_cache(maxsize=1 << 16)
def _scalar_field(key: str, value: str) -> str:
    """``_field`` of a string value of a scalar field (memoised: steps, dispositions, times repeat)."""
    return _kv(key, value, vocab=key)


@lru_cache(maxsize=1 << 16)
def _place(key: str, place_id: str) -> str:
    """``_field`` of a readPoint/bizLocation that has only its id (memoised: places repeat)."""
    return _listed(key, [_ordered({"id": place_id}, ("id",), {})])


def _listed(name: str, members: Sequence[str], *, sort: bool = True) -> str:
    body = "".join(sorted(members) if sort else members)
    return name + body if body else ""


def _ordered(obj: Mapping[str, Any], order: Sequence[str], ns: Mapping[str, str], vocab: str = "") -> str:
    """Known fields in their order, then the object's extension fields, sorted."""
    out = [_kv(k, obj[k], vocab=k if not vocab else vocab + "." + k) for k in order if k in obj]
    ext = [_extension(k, v, ns) for k, v in obj.items() if k not in order]
    return "".join(out) + "".join(sorted(ext))


def _sensor_element(element: Mapping[str, Any], ns: Mapping[str, str]) -> str:
    out = "sensorElement"
    meta = element.get("sensorMetadata")
    if meta:
        body = _ordered(meta, _SENSOR_METADATA, ns)
        out += "sensorMetadata" + body if body else ""
    reports = [
        "sensorReport" + _ordered(r, _SENSOR_REPORT, ns, vocab="sensorReport")
        for r in element.get("sensorReport", ())
    ]
    out += "".join(sorted(reports))
    ext = [_extension(k, v, ns) for k, v in element.items() if k not in ("sensorMetadata", "sensorReport")]
    return out + "".join(sorted(ext))


class EventTooDeepError(ValueError):
    """An extension field nested deeper than ``limits.EVENT_MAX_DEPTH``: no hash is computed for it."""


def _extension(key: str, value: Any, ns: Mapping[str, str], depth: int = 1) -> str:
    """The pre-hash text of an extension field; the one recursive walk of the hash, bounded in depth."""
    if type(value) is str:
        # Only the namespaces of the key's and the value's prefixes matter: memoise on them.
        return _string_extension(key, value, ns.get(key.partition(":")[0]), ns.get(value.partition(":")[0]))
    if depth > EVENT_MAX_DEPTH:
        raise EventTooDeepError(f"an extension field nested deeper than {EVENT_MAX_DEPTH} levels")
    name = _expand_key(key, ns)
    if isinstance(value, Mapping):
        children = [_extension(k, v, ns, depth + 1) for k, v in value.items() if k != "#text"]
        text = _kv_value(name, value["#text"], timestamps=False) if "#text" in value else ""
        return name + text + "".join(sorted(children))
    if isinstance(value, list):
        return "".join(sorted(_extension(key, v, ns, depth + 1) for v in value))
    if isinstance(value, str):
        value = _expand_value(value, ns)
    return name + _kv_value(name, value, timestamps=False)


@lru_cache(maxsize=1 << 16)
def _string_extension(key: str, value: str, key_ns: str | None, value_ns: str | None) -> str:
    """``_extension`` of a string value, given the namespaces bound to the key's and the value's prefix."""
    ns = {}
    if key_ns is not None:
        ns[key.partition(":")[0]] = key_ns
    if value_ns is not None:
        ns[value.partition(":")[0]] = value_ns
    name = _expand_key(key, ns)
    return name + _kv_value(name, _expand_value(value, ns), timestamps=False)


def _kv(key: str, value: Any, *, vocab: str = "") -> str:
    text = _kv_value(key, value, vocab=vocab)
    return key + text if text else ""


def _kv_value(key: str, value: Any, *, vocab: str = "", timestamps: bool = True) -> str:
    """``=<canonical value>``, or "" for an absent/empty value.

    Standard fields whose name says time (not offset) are timestamps; extensions are not (as in the
    reference implementation)."""
    if value is None:
        return ""
    return _kv_text(key, _scalar_text(value), vocab, timestamps)


@lru_cache(maxsize=1 << 16)
def _kv_text(key: str, raw: str, vocab: str, timestamps: bool) -> str:
    """``_kv_value`` of a value whose text is ``raw`` (memoised: a pure function of its arguments)."""
    text = raw.strip()
    if not text:
        return ""
    lowered = key.lower()
    if timestamps and "time" in lowered and "offset" not in lowered:
        return "=" + canonical_timestamp(text)
    return "=" + _canonical_value(text, vocab)


def _scalar_text(value: Any) -> str:
    # The reference turns JSON scalars into Python strings with str(): True -> "True", 26.0 -> "26.0".
    return str(value)


@lru_cache(maxsize=1 << 16)
def _canonical_value(text: str, vocab: str) -> str:
    """The canonical form of a value (memoised: vocabulary, locations and parties repeat across events)."""
    text = _expand_bare_vocabulary(text, vocab)
    for urn, web in _URN_VOCAB:
        text = text.replace(urn, web)
    text = _canonical_number(text)
    converted = epc_to_digital_link(text)
    return converted if converted is not None else text


def _expand_bare_vocabulary(text: str, vocab: str) -> str:
    if vocab == "bizStep" and text in _BIZ_STEPS:
        return CBV + "BizStep-" + text
    if vocab in ("disposition", "persistentDisposition") and text in _DISPOSITIONS:
        return CBV + "Disp-" + text
    if vocab == "bizTransactionList" and text in _BTT:
        return CBV + "BTT-" + text
    if vocab in ("sourceList", "destinationList") and text in _SDT:
        return CBV + "SDT-" + text
    if vocab == "sensorReport.type" and ":" not in text:
        return GS1_VOC + text
    if vocab == "sensorReport.exception" and text in _ALERTS:
        # The EPCIS 2.0 JSON-LD context maps ALARM_CONDITION to gs1:ALARM_CONDITION (so does the
        # reference implementation), not to the web vocabulary's SensorAlertType-ALARM_CONDITION.
        return GS1_VOC + text
    if vocab == "sensorReport.component" and ":" not in text:
        return CBV + "Comp-" + text
    return text


def _canonical_number(text: str) -> str:
    """Numbers without trailing zeros, exactly as the reference does it (float, then int if integral)."""
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    if int(number) == number:
        return str(int(number))
    return str(number)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def canonical_timestamp(text: str) -> str:
    """An ISO 8601 timestamp in UTC at millisecond precision, rounded half up: ``...T02:33:31.116Z``."""
    # Python accepts any separator between date and time; RFC 3339 / the EPCIS schema want "T".
    if not _RFC3339.match(text):
        return text
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return text
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    ms, rest_us = divmod(t.microsecond, 1000)
    t = t.replace(microsecond=ms * 1000)
    if rest_us >= 500:
        t += timedelta(milliseconds=1)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _namespaces(context: Any) -> dict[str, str]:
    """Prefix -> namespace URI from the event's JSON-LD ``@context`` (objects in it only)."""
    found: dict[str, str] = {}
    items = context if isinstance(context, list) else [context]
    for item in items:
        if isinstance(item, Mapping):
            found.update({k: v for k, v in item.items() if isinstance(v, str)})
    return found


def _expand_key(key: str, ns: Mapping[str, str]) -> str:
    prefix, sep, local = key.partition(":")
    if sep and prefix in ns:
        return "{" + ns[prefix] + "}" + local
    return key


def _expand_value(value: str, ns: Mapping[str, str]) -> str:
    prefix, sep, local = value.partition(":")
    if sep and prefix in ns:
        return ns[prefix] + local
    return value

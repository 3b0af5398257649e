"""Stage 3, EPCIS: the GS1 CBV 2.0 EPCIS event hash (``ni:///sha-256;<hex>?ver=CBV2.0``) of a JSON-LD event.

Follows the canonicalisation of CBV 2.0 section 8.9 as written up by the reference implementation
(github.com/RalphTro/epcis-event-hash-generator, README "Algorithm" and ``PROP_ORDER``):

* the pre-hash string starts ``eventType=<type>`` and then takes the event's fields in the canonical
  property order (``CANONICAL_ORDER``), concatenated with no separator, ``key=value`` for values and the
  bare key for containers (``epcList``, ``readPoint``, ``sensorElement``...);
* list members (``epc``, ``quantityElement``, ``sensorElement``, ``sensorReport``...) are each turned into
  a string and sorted by code point; a list's name appears once;
* timestamps become UTC with millisecond precision and ``Z`` (rounded half up on their decimal digits);
  numbers lose trailing zeros (as the reference does it); booleans are ``true``/``false``; whitespace
  around values is stripped;
* CURIEs are expanded in keys and values: the event's ``@context`` prefixes, and ``gs1``, ``cbv``,
  ``epcis`` (and ``cbvmda``, to its XML namespace) without one; bare CBV / GS1 vocabulary values
  (``shipping``, ``in_transit``, ``Temperature``, ``ALARM_CONDITION``) and ``urn:epcglobal:cbv:`` URNs
  become their Web URIs;
* GS1 keys become constrained canonical GS1 Digital Link URIs: EPC (class, pattern) URIs converted, Digital
  Link URIs constrained (``digital_link.to_canonical_digital_link``);
* user extensions are ``{namespace}localName=value``, sorted, after the standard fields; extensions inside
  ``readPoint``, ``bizLocation``, ``sensorElement``, ``sensorMetadata`` and ``sensorReport`` go at the end
  of their parent;
* ``eventID``, ``recordTime``, ``errorDeclaration``, ``type``, ``@context`` and comments (``comment``,
  ``rdfs:comment``, at any level) are not hashed; an absent optional field (a bizTransaction's ``type``)
  adds nothing.

Where the reference 1.9.3 or its published vectors depart from CBV 2.0 8.9 we follow the standard; the
tests name each place (``tests/traceability/test_ledger_eventhash_reference.py``, ``..._vectors.py``).
An event the hash cannot take raises ``EventHashError`` and nothing else.

Not covered (see ``traceability/README.md``): JSON-LD processing beyond prefix bindings (``@vocab`` and
term definitions of a document's own context, remote contexts other than EPCIS's), timestamps written
otherwise than RFC 3339 (hashed as given), Digital Link URIs with percent-escapes (left as given, as the
reference does).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from traceability.epcis.digital_link import to_canonical_digital_link
from traceability.limits import EVENT_MAX_DEPTH

HASH_VERSION = "CBV2.0"
HASH_PREFIX = "ni:///sha-256;"
HASH_SUFFIX = f"?ver={HASH_VERSION}"

CBV = "https://ref.gs1.org/cbv/"
GS1_VOC = "https://gs1.org/voc/"

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
# Comments are no part of an event's content (CBV 2.0 8.9; the XML form's comments are not elements),
# wherever they appear.
_COMMENTS = frozenset({"comment", "rdfs:comment"})
_NOT_EXTENSIONS = _NOT_HASHED | frozenset(CANONICAL_ORDER)
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


class EventHashError(ValueError):
    """An event the hash cannot take: not a JSON object, no ``type``, or a field whose shape the EPCIS 2.0
    schema refuses (the message names the field). No other exception leaves ``event_hash``."""


class EventTooDeepError(EventHashError):
    """An extension field nested deeper than ``limits.EVENT_MAX_DEPTH``: no hash is computed for it."""


def event_hash(event: Mapping[str, Any]) -> str:
    """The CBV 2.0 event hash of one EPCIS event: ``ni:///sha-256;<64 hex>?ver=CBV2.0``.

    Raises ``EventHashError`` (only) for an event it cannot take."""
    digest = hashlib.sha256(prehash_string(event).encode("utf-8")).hexdigest()
    return f"{HASH_PREFIX}{digest}{HASH_SUFFIX}"


def prehash_string(event: Mapping[str, Any]) -> str:
    """The canonical pre-hash string of one EPCIS 2.0 JSON-LD event (``EventHashError`` if it has none)."""
    if not isinstance(event, Mapping):
        raise EventHashError("an event is not a JSON object")
    kind = event.get("type")
    if type(kind) is not str or not kind:
        raise EventHashError("an event without a type")
    where = "@context"
    try:
        ns = _namespaces(event.get("@context"))
        parts = ["eventType=" + kind]
        for where in CANONICAL_ORDER:
            if where in event:
                parts.append(_field(where, event[where], ns))
        where = "an extension field"
        extensions = [_extension(k, v, ns) for k, v in event.items() if k not in _NOT_EXTENSIONS]
    except EventHashError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a shape the EPCIS schema refuses
        raise EventHashError(f"{where}: not an EPCIS 2.0 value of this field") from exc
    parts.append("".join(sorted(extensions)))
    return "".join(parts)


def _field(key: str, value: Any, ns: _Namespaces) -> str:
    if type(value) is str and key in _SCALAR_FIELDS:
        return _scalar_field(key, value, ns)
    if key in _PLACES and type(value) is dict and len(value) == 1 and type(value.get("id")) is str:
        return _place(key, value["id"], ns)
    if key in _LISTED and type(value) is list:
        frozen = _frozen(value)
        if frozen is not None:
            return _listed_field(key, frozen, ns)
    return _any_field(key, value, ns)


# List fields whose members repeat across events (a shipment's documents and places, a pallet's EPCs).
_LISTED = _EPC_LISTS | _QUANTITY_LISTS | frozenset(_TYPED_LISTS)


def _frozen(members: list[Any]) -> tuple[Any, ...] | None:
    """A hashable stand-in for a list of strings or of objects of scalars (each scalar not a string as its
    type and value: ``1``, ``1.0`` and ``true`` stay apart), from which ``_thawed`` gives the list back;
    None for any other list."""
    out: list[Any] = []
    for m in members:
        if type(m) is str:
            out.append(m)
        elif type(m) is dict:
            items: list[tuple[Any, Any]] = []
            for k, v in m.items():
                if type(v) is str:
                    items.append((k, v))
                elif v is None or type(v) in (int, float, bool):
                    items.append((k, (type(v), v)))
                else:
                    return None
            out.append(tuple(items))
        else:
            return None
    return tuple(out)


def _thawed(frozen: tuple[Any, ...]) -> list[Any]:
    return [m if type(m) is str else {k: v if type(v) is str else v[1] for k, v in m} for m in frozen]


@lru_cache(maxsize=1 << 14)
def _listed_field(key: str, frozen: tuple[Any, ...], ns: _Namespaces) -> str:
    """``_field`` of a list field given as ``_frozen`` (memoised: a pure function of its arguments)."""
    return _any_field(key, _thawed(frozen), ns)


def _any_field(key: str, value: Any, ns: _Namespaces) -> str:
    if key in _EPC_LISTS:
        return _listed(key, ["epc" + _kv_value("epc", v, ns) for v in _items(key, value)])
    if key in _QUANTITY_LISTS:
        items = _items(key, value)
        return _listed(key, ["quantityElement" + _ordered(q, _QUANTITY, ns) for q in items])
    if key in _TYPED_LISTS:
        name = _TYPED_LISTS[key]
        items = [
            _kv("type", item.get("type"), ns, vocab=key) + _kv(name, item.get(name), ns)
            for item in _items(key, value)
        ]
        return _listed(key, items)
    if key in _PLACES:
        return _listed(key, [_ordered(_object(key, value), ("id",), ns)])
    if key == "persistentDisposition":
        parts = _object(key, value)
        body = "".join(
            "".join(sorted(_kv(part, v, ns, vocab="disposition") for v in _items(key, parts.get(part, []))))
            for part in ("set", "unset")
        )
        return _listed(key, [body])
    if key == "sensorElementList":
        return _listed(key, [_sensor_element(e, ns) for e in _items(key, value)])
    if key == "ilmd":
        return _listed(key, [_extension(k, v, ns) for k, v in _object(key, value).items()], sort=True)
    if key == "certificationInfo":
        values = value if isinstance(value, list) else [value]
        return "".join(sorted(_kv(key, v, ns) for v in values))
    return _kv(key, value, ns, vocab=key)


def _items(key: str, value: Any) -> list[Any]:
    """A list field's list (its members' shapes are checked where they are read)."""
    if type(value) is not list:
        raise EventHashError(f"{key}: not a JSON array")
    return value


def _object(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EventHashError(f"{key}: not a JSON object")
    return value


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
def _scalar_field(key: str, value: str, ns: _Namespaces) -> str:
    """``_field`` of a string value of a scalar field (memoised: steps, dispositions, times repeat)."""
    text = _kv_text(key, value, key, True, ns)
    return key + text if text else ""


@lru_cache(maxsize=1 << 16)
def _place(key: str, place_id: str, ns: _Namespaces) -> str:
    """``_field`` of a readPoint/bizLocation that has only its id (memoised: places repeat)."""
    return _listed(key, [_ordered({"id": place_id}, ("id",), ns)])


def _listed(name: str, members: Sequence[str], *, sort: bool = True) -> str:
    body = "".join(sorted(members) if sort else members)
    return name + body if body else ""


def _ordered(obj: Mapping[str, Any], order: Sequence[str], ns: _Namespaces, vocab: str = "") -> str:
    """Known fields in their order, then the object's extension fields, sorted."""
    out = [_kv(k, obj[k], ns, vocab=k if not vocab else vocab + "." + k) for k in order if k in obj]
    ext = [_extension(k, v, ns) for k, v in obj.items() if k not in order]
    return "".join(out) + "".join(sorted(ext))


def _sensor_element(element: Mapping[str, Any], ns: _Namespaces) -> str:
    out = "sensorElement"
    meta = element.get("sensorMetadata")
    if meta:
        body = _ordered(_object("sensorMetadata", meta), _SENSOR_METADATA, ns)
        out += "sensorMetadata" + body if body else ""
    reports = [
        "sensorReport" + _ordered(r, _SENSOR_REPORT, ns, vocab="sensorReport")
        for r in _items("sensorReport", element.get("sensorReport", []))
    ]
    out += "".join(sorted(reports))
    ext = [_extension(k, v, ns) for k, v in element.items() if k not in ("sensorMetadata", "sensorReport")]
    return out + "".join(sorted(ext))


def _extension(key: str, value: Any, ns: _Namespaces, depth: int = 1) -> str:
    """The pre-hash text of an extension field; the one recursive walk of the hash, bounded in depth."""
    if key in _COMMENTS:
        return ""
    if type(value) is str:
        # Only the namespaces of the key's and the value's prefixes matter: memoise on them.
        key_prefix, key_colon, _ = key.partition(":")
        value_prefix, value_colon, _ = value.partition(":")
        key_ns = ns.get(key_prefix) if key_colon else None
        return _string_extension(key, value, key_ns, ns.get(value_prefix) if value_colon else None)
    if depth > EVENT_MAX_DEPTH:
        raise EventTooDeepError(f"an extension field nested deeper than {EVENT_MAX_DEPTH} levels")
    name = _expand_key(key, ns)
    if isinstance(value, Mapping):
        children = [_extension(k, v, ns, depth + 1) for k, v in value.items() if k != "#text"]
        text = _kv_value(name, value["#text"], ns, timestamps=False) if "#text" in value else ""
        return name + text + "".join(sorted(children))
    if isinstance(value, list):
        return "".join(sorted(_extension(key, v, ns, depth + 1) for v in value))
    return name + _kv_value(name, value, ns, timestamps=False)


@lru_cache(maxsize=1 << 16)
def _string_extension(key: str, value: str, key_ns: str | None, value_ns: str | None) -> str:
    """``_extension`` of a string value, given the namespaces bound to the key's and the value's prefix."""
    name = "{" + key_ns + "}" + key.partition(":")[2] if key_ns is not None else key
    if value_ns is not None:
        value = value_ns + value.partition(":")[2]
    return name + _kv_text(name, value, "", False, _NO_NAMESPACES)


def _kv(key: str, value: Any, ns: _Namespaces, *, vocab: str = "") -> str:
    text = _kv_value(key, value, ns, vocab=vocab)
    return key + text if text else ""


def _kv_value(key: str, value: Any, ns: _Namespaces, *, vocab: str = "", timestamps: bool = True) -> str:
    """``=<canonical value>``, or "" for an absent/empty value.

    Standard fields whose name says time (not offset) are timestamps; extensions are not (as in the
    reference implementation)."""
    if value is None:
        return ""
    return _kv_text(key, value if type(value) is str else _scalar_text(value), vocab, timestamps, ns)


@lru_cache(maxsize=1 << 16)
def _kv_text(key: str, raw: str, vocab: str, timestamps: bool, ns: _Namespaces) -> str:
    """``_kv_value`` of a value whose text is ``raw`` (memoised: a pure function of its arguments)."""
    text = _expand_value(raw, ns).strip()
    if not text:
        return ""
    lowered = key.lower()
    if timestamps and "time" in lowered and "offset" not in lowered:
        return "=" + canonical_timestamp(text)
    return "=" + _canonical_value(text, vocab)


def _scalar_text(value: Any) -> str:
    """A JSON scalar as text: strings as they are, booleans as XML Schema writes them (``true``: the XML
    form of the same event says so, and CBV 2.0 8.9 wants one hash for both), numbers as Python writes
    them (``26.0``; ``_canonical_number`` then drops the zeros)."""
    if type(value) is str:
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise EventHashError("a value that is an object or a list where the standard wants a single value")


@lru_cache(maxsize=1 << 16)
def _canonical_value(text: str, vocab: str) -> str:
    """The canonical form of a value (memoised: vocabulary, locations and parties repeat across events)."""
    text = _expand_bare_vocabulary(text, vocab)
    for urn, web in _URN_VOCAB:
        text = text.replace(urn, web)
    text = _canonical_number(text)
    converted = to_canonical_digital_link(text)
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


_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")


def canonical_timestamp(text: str) -> str:
    """An ISO 8601 timestamp in UTC at millisecond precision, rounded half up on its decimal digits (any
    number of them): ``...T02:33:31.116Z``. Text that is no such timestamp is returned as it is."""
    match = _RFC3339.match(text)
    if match is None:
        return text
    whole, fraction, zone = match.groups()
    try:
        t = datetime.fromisoformat(whole + (zone or "+00:00"))
    except ValueError:
        return text
    fraction = fraction or ""
    ms = int(fraction[:3].ljust(3, "0")) + (1 if fraction[3:4] >= "5" else 0)
    try:
        t = t.astimezone(UTC) + timedelta(milliseconds=ms)
    except OverflowError:
        return text
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


# CURIE prefixes bound without a local @context (CBV 2.0 8.9: "gs1", "epcis" and "cbv" as the EPCIS 2.0
# context binds them; "cbvmda" to the master-data namespace as the XML form of an event writes it, so that
# an ILMD key hashes alike in both forms).
_STANDARD_PREFIXES = {
    "gs1": GS1_VOC,
    "cbv": CBV,
    "epcis": "https://ref.gs1.org/epcis/",
    "cbvmda": "urn:epcglobal:cbv:mda",
}


class _Namespaces(dict[str, str]):
    """Prefix -> namespace URI for one set of @context bindings. One object per set (``_namespaces_of`` is
    memoised) and hashed by identity, so the memoised functions can take it; never changed once made."""

    # dict has no hash; identity is this one's equality. object's (C) hash keeps the memo lookups cheap.
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other


_NO_NAMESPACES = _Namespaces()
# The last flat @context ``_namespaces`` was given (a copy: equal contexts bind alike) and its namespaces.
_last_context: tuple[Any, _Namespaces] = (object(), _NO_NAMESPACES)


def _namespaces(context: Any) -> _Namespaces:
    """Prefix -> namespace URI: the standard prefixes, then the objects of the event's JSON-LD ``@context``
    (which win). Memoised on the context's bindings (one context serves many events), and the last flat
    context kept (a copy) with its namespaces: the events of a document mostly carry equal ones."""
    global _last_context
    last = _last_context
    if context == last[0]:
        return last[1]
    items = context if isinstance(context, list) else [context]
    bindings = tuple(
        (k, v) for item in items if isinstance(item, Mapping) for k, v in item.items() if isinstance(v, str)
    )
    ns = _namespaces_of(bindings)
    if _flat(context):  # kept only so: a comparison with it, or its copy, never goes deep
        _last_context = (copy.deepcopy(context), ns)
    return ns


def _flat(context: Any) -> bool:
    """A context of strings and of objects whose members are strings."""
    items = context if type(context) is list else [context]
    return all(type(i) is str or (type(i) is dict and all(type(v) is str for v in i.values())) for i in items)


@lru_cache(maxsize=1 << 10)
def _namespaces_of(bindings: tuple[tuple[str, str], ...]) -> _Namespaces:
    return _Namespaces({**_STANDARD_PREFIXES, **dict(bindings)})


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

"""Stage 3, EPCIS: documents out: an EPCISDocument of stored events (export) and the EPCISQueryDocument
of a query's page, each with the union of its events' contexts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from traceability.epcis import builders


def export_document(
    events: Iterable[Mapping[str, Any]], *, creation_date: datetime | None = None
) -> dict[str, Any]:
    """An EPCISDocument of stored events. The document's @context is the union of the events' contexts
    (namespace objects merged), so every extension prefix stays bound; the events keep their eventIDs."""
    events = list(events)
    doc = builders.document([], creation_date=creation_date)
    doc["@context"] = _merged_context(event.get("@context") for event in events)
    doc["epcisBody"] = {"eventList": [{k: v for k, v in e.items() if k != "@context"} for e in events]}
    return doc


def _merged_context(contexts: Iterable[Any]) -> list[Any]:
    """The EPCIS context and the namespace objects of every given @context, merged."""
    namespaces: dict[str, str] = {}
    for ctx in contexts:
        for item in ctx if isinstance(ctx, list) else [ctx]:
            if isinstance(item, Mapping):
                namespaces.update({k: v for k, v in item.items() if isinstance(v, str)})
    return [builders.EPCIS_CONTEXT, *({k: v} for k, v in sorted(namespaces.items()))]


def query_document(events: Sequence[tuple[str, str]], *, creation_date: datetime | None = None) -> bytes:
    """The EPCISQueryDocument (SimpleEventQuery results) of stored events, each given as the JSON texts of
    its @context and of the rest of it (``events_query.run``). The event texts are copied into the document as
    they are, never parsed: serving a page walks no event. A context that does not parse binds nothing."""
    contexts = []
    for text, _ in events:
        try:
            contexts.append(msgspec.json.decode(text))
        except (msgspec.DecodeError, RecursionError):
            continue
    doc = builders.document([], creation_date=creation_date)
    doc["@context"] = _merged_context(contexts)
    doc["type"] = "EPCISQueryDocument"
    doc["epcisBody"] = {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": []}}}
    head = msgspec.json.encode(doc)
    cut = head.rindex(b'"eventList":[]') + len(b'"eventList":[')
    return head[:cut] + b",".join(body.encode("utf-8") for _, body in events) + head[cut:]

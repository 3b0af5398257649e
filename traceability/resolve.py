"""Stage 3, trace: the lots an identifier leads to (lot id or code, EPC, container, asset, B/L, waybill)."""

from __future__ import annotations

from typing import Any

import psycopg
from stdnum import iso6346

from traceability import queries

Conn = psycopg.Connection[Any]


def resolve(conn: Conn, ident: str) -> tuple[str, list[str]]:
    """What kind of identifier ``ident`` is, and the lots it leads to (sorted)."""
    lots = [r[0] for r in conn.execute(queries.LOTS_BY_ID_OR_BATCH, {"id": ident}).fetchall()]
    if lots:
        return ("lot", lots)
    if ident.startswith("urn:epc:class:"):
        return ("epc_class", _lots_under(conn, [ident]))
    container = ident.removeprefix("urn:epc:id:bic:")
    if iso6346.is_valid(container):
        epc = "urn:epc:id:bic:" + iso6346.compact(container)
        return ("container", _lots_under(conn, [epc]))
    if ident.startswith("urn:epc:id:"):
        found = _lots_under(conn, [ident])
        if not found:  # an item (SGTIN) or unit packed in something: the lots that travelled with it
            above = [r[0] for r in conn.execute(queries.UNITS_ABOVE, {"id": ident}).fetchall()]
            found = _lots_under(conn, above) if above else []
        return ("epc", found)
    asset = conn.execute(queries.ASSET_EPC_BY_ID, (ident, ident)).fetchone()
    if asset is not None and asset[0]:
        return ("asset", _lots_under(conn, [asset[0]]))
    seqs = [r[0] for r in conn.execute(queries.LINKED_TRANSACTIONS, {"id": ident}).fetchall()]
    if seqs:
        subjects = [r[0] for r in conn.execute(queries.SUBJECTS_OF_SEQS, (seqs,)).fetchall()]
        return ("document", _lots_under(conn, subjects))
    return ("unknown", [])


def _lots_under(conn: Conn, roots: list[str]) -> list[str]:
    return [r[0] for r in conn.execute(queries.LOTS_UNDER, {"roots": roots}).fetchall()]

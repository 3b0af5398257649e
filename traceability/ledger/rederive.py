"""Stage 3, ledger: rebuild the tables derived from the ledger (containment, custody, ...), or check them.

The derived tables are a function of the ledger and the registry (``traceability.ledger.derive``).
``rederive`` replays every ledger event, in seq order, through the same derivation the append uses,
into emptied tables, and reports per table how the result differs from what was there:

* after a derivation fix (events captured before migration 0006 with a Web-URI bizStep started no
  custody leg), it writes the rows the ledger now gives;
* after a registry change (a location, read point, party or asset registered later), it derives with
  the registry as it is now: a read point configured today gives the custodian of yesterday's steps;
* with ``apply=False`` it changes nothing (it rebuilds inside a transaction it rolls back) and says
  whether the tables are what the ledger and today's registry give: a check that no derived row was
  added, lost or altered outside the append, which also reports the rows a registry change since would
  change.

The ledger is locked for the whole run (appends wait), and the old rows stay visible to readers until
the rebuild commits. Rows are compared on their content, not their ids (ids are renumbered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from traceability import queries
from traceability.ledger import derive

Conn = psycopg.Connection[Any]

# Ledger events per derivation batch: the outcome does not depend on it (a batch derives as its events
# one by one); it bounds the memory of one batch and the statements per event.
BATCH_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class TableDiff:
    """One derived table before and after: ``missing`` rows the ledger gives that the table lacked,
    ``extra`` rows the table had that the ledger does not give (counted with multiplicity)."""

    table: str
    before: int
    after: int
    missing: int
    extra: int


@dataclass(frozen=True, slots=True)
class RederiveResult:
    events: int
    applied: bool
    tables: tuple[TableDiff, ...]

    @property
    def consistent(self) -> bool:
        """The tables were what the ledger (and the current registry) gives."""
        return all(t.missing == 0 and t.extra == 0 for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "applied": self.applied,
            "events": self.events,
            "tables": [asdict(t) for t in self.tables],
        }


def rederive(conn: Conn, *, apply: bool, batch_events: int = BATCH_EVENTS) -> RederiveResult:
    """Derive every table afresh from the ledger; commit the new rows when ``apply``, else roll back.

    ``conn`` must not be inside a transaction (the rebuild is its own). Returns each table's difference
    from its old rows."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("rederive runs in its own transaction: commit or roll back first")
    with conn.transaction(force_rollback=not apply):
        conn.execute(queries.LOCK_LEDGER, (queries.LEDGER_LOCK_KEY,))
        for table, columns in derive.DERIVED_TABLES:
            conn.execute(_statement(queries.REDERIVE_KEEP_OLD, table, columns))
            conn.execute(sql.SQL(queries.REDERIVE_EMPTY).format(table=sql.Identifier(table)))
        events = _replay(conn, batch_events)
        diffs = []
        for table, columns in derive.DERIVED_TABLES:
            row = conn.execute(_statement(queries.REDERIVE_COMPARE, table, columns)).fetchone()
            assert row is not None
            diffs.append(TableDiff(table, int(row[0]), int(row[1]), int(row[2]), int(row[3])))
    return RederiveResult(events=events, applied=apply, tables=tuple(diffs))


def _replay(conn: Conn, batch_events: int) -> int:
    """Run every ledger event through the derivation in seq order, a batch at a time; return the count."""
    last, count = 0, 0
    while True:
        rows: Sequence[tuple[int, Mapping[str, Any]]] = conn.execute(
            queries.LEDGER_EVENTS_AFTER, (last, batch_events)
        ).fetchall()
        if not rows:
            return count
        derivation = derive.Derivation(conn, [event for _, event in rows])
        derivation.load([(int(seq), event) for seq, event in rows])
        derivation.run()
        derivation.write()
        last, count = int(rows[-1][0]), count + len(rows)


def _statement(template: str, table: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(template).format(
        table=sql.Identifier(table),
        old=sql.Identifier(f"rederive_old_{table}"),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
    )

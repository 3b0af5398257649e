"""Tests: the derived tables' references to the registry (migration 0030), on a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from ledger_support import T0, append_numbered

PARTY, LOCATION, ASSET = "urn:epc:id:sgln:6901234.00010.0", "urn:epc:id:sgln:6901234.00011.0", "TRUCK-GX-1"
LEG = (
    "INSERT INTO custody_leg (epc, custodian, location_id, asset_id, t_start, start_seq)"
    " VALUES (%s, %s, %s, %s, %s, 1)"
)
CONTAINED = "INSERT INTO containment (child_id, location_id, t0, start_seq) VALUES (%s, %s, %s, 1)"


@pytest.fixture
def registry(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A party, a location and an asset, and one ledger entry for derived rows to name."""
    conn.execute("INSERT INTO party (party_id, name, role) VALUES (%s, 'Carrier', 'carrier')", (PARTY,))
    conn.execute(
        "INSERT INTO location (location_id, name, kind) VALUES (%s, 'Store', 'cold_store')", (LOCATION,)
    )
    conn.execute("INSERT INTO asset (asset_id, kind, name) VALUES (%s, 'reefer_truck', 'Truck')", (ASSET,))
    assert append_numbered(conn, 1) == [1]
    return conn


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("column", "registry_table"),
    [("custodian", "party"), ("location_id", "location"), ("asset_id", "asset")],
)
def test_a_leg_naming_what_the_registry_lacks_is_refused(
    registry: psycopg.Connection[Any], column: str, registry_table: str
) -> None:
    """INSERT, COPY and UPDATE alike: the statement is refused with the foreign key's error and name,
    among good rows too; a leg naming known references, or none, is kept."""
    conn = registry
    legs = "SELECT epc, custodian, location_id, asset_id FROM custody_leg ORDER BY epc"
    before = conn.execute(legs).fetchall()  # the ledger entry's own leg
    known = {"custodian": PARTY, "location_id": LOCATION, "asset_id": ASSET}
    unknown = f"urn:unknown:{column}"
    bad = {**known, column: unknown}
    columns = ("custodian", "location_id", "asset_id")
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
        conn.execute(
            "INSERT INTO custody_leg (epc, custodian, location_id, asset_id, t_start, start_seq)"
            " SELECT *, 1 FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])",
            (["a", "b", "c"], *([known[c], bad[c], None] for c in columns), [T0, T0, T0]),
        )
    assert refused.value.diag.constraint_name == f"custody_leg_{column}_fkey"
    assert refused.value.diag.message_detail == (
        f'Key ({column})=({unknown}) is not present in table "{registry_table}".'
    )
    copy = "COPY custody_leg (epc, custodian, location_id, asset_id, t_start, start_seq) FROM STDIN"
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.cursor() as cur, cur.copy(copy) as cp:
        cp.write_row(("d", *(bad[c] for c in columns), T0, 1))
    assert conn.execute(legs).fetchall() == before
    conn.execute(LEG, ("urn:epc:id:sscc:1", PARTY, LOCATION, ASSET, T0))
    conn.execute(LEG, ("urn:epc:id:sscc:2", None, None, None, T0))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(f"UPDATE custody_leg SET {column} = %s", (unknown,))
    assert conn.execute(legs).fetchall() == sorted(
        [*before, ("urn:epc:id:sscc:1", PARTY, LOCATION, ASSET), ("urn:epc:id:sscc:2", None, None, None)]
    )


def test_a_containment_naming_an_unknown_location_is_refused(registry: psycopg.Connection[Any]) -> None:
    conn = registry
    before = _count(conn, "containment")
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
        conn.execute(CONTAINED, ("urn:epc:id:sgtin:1", "urn:unknown:place", T0))
    assert refused.value.diag.constraint_name == "containment_location_id_fkey"
    conn.execute(CONTAINED, ("urn:epc:id:sgtin:1", LOCATION, T0))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("UPDATE containment SET location_id = 'urn:unknown:place'")
    assert _count(conn, "containment") == before + 1


@pytest.mark.parametrize(
    ("table", "key", "value", "derived", "constraint"),
    [
        ("party", "party_id", PARTY, LEG, "custody_leg_custodian_fkey"),
        ("location", "location_id", LOCATION, LEG, "custody_leg_location_id_fkey"),
        ("location", "location_id", LOCATION, CONTAINED, "containment_location_id_fkey"),
        ("asset", "asset_id", ASSET, LEG, "custody_leg_asset_id_fkey"),
    ],
)
def test_a_registry_row_a_derived_row_names_keeps_its_key(
    registry: psycopg.Connection[Any], table: str, key: str, value: str, derived: str, constraint: str
) -> None:
    """Deleting it or changing its key is refused (the foreign key's NO ACTION); other updates of it, and
    deleting a row nothing names, are not."""
    conn = registry
    if derived == LEG:
        names = {
            "party": (PARTY, None, None),
            "location": (None, LOCATION, None),
            "asset": (None, None, ASSET),
        }
        conn.execute(LEG, ("urn:epc:id:sscc:1", *names[table], T0))
    else:
        conn.execute(CONTAINED, ("urn:epc:id:sgtin:1", LOCATION, T0))
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
        conn.execute(f"DELETE FROM {table} WHERE {key} = %s", (value,))
    assert refused.value.diag.constraint_name == constraint
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(f"UPDATE {table} SET {key} = {key} || '-moved'")
    conn.execute(f"UPDATE {table} SET name = 'Renamed' WHERE {key} = %s", (value,))
    assert _count(conn, table) == 1
    unnamed = {
        "party": (PARTY + "9", "carrier"),
        "location": (LOCATION + "9", "yard"),
        "asset": (ASSET + "9", "vessel"),
    }
    new_key, kind = unnamed[table]
    kind_column = "role" if table == "party" else "kind"
    conn.execute(
        f"INSERT INTO {table} ({key}, name, {kind_column}) VALUES (%s, 'Spare', %s)",
        (new_key, kind),
    )
    conn.execute(f"DELETE FROM {table} WHERE {key} = %s", (new_key,))
    assert _count(conn, table) == 1


def test_a_referenced_registry_row_cannot_go_before_the_reference_commits(
    registry: psycopg.Connection[Any], db_url: str
) -> None:
    """The statement's references are locked as a foreign key locks them: until the transaction that
    wrote the leg ends, a delete of its party waits (here: gives up at its lock timeout)."""
    conn = registry
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as other:
        writer.execute(LEG, ("urn:epc:id:sscc:1", PARTY, None, None, T0))  # open transaction
        other.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("DELETE FROM party WHERE party_id = %s", (PARTY,))
        other.rollback()
        writer.rollback()
        other.execute("DELETE FROM party WHERE party_id = %s", (PARTY,))  # nothing names it now
        other.commit()
    assert _count(conn, "party") == 0


@pytest.mark.parametrize(("table", "derived"), [("party", LEG), ("location", CONTAINED), ("asset", LEG)])
def test_a_registry_table_derived_rows_name_is_not_emptied(
    registry: psycopg.Connection[Any], table: str, derived: str
) -> None:
    """TRUNCATE ... CASCADE would have carried the foreign key to the derived rows; it is refused."""
    conn = registry
    if derived == LEG:
        names = {"party": (PARTY, None, None), "asset": (None, None, ASSET)}
        conn.execute(LEG, ("urn:epc:id:sscc:1", *names[table], T0))
    else:
        conn.execute(CONTAINED, ("urn:epc:id:sgtin:1", LOCATION, T0))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=f'truncate on table "{table}"'):
        conn.execute(f"TRUNCATE {table} CASCADE")
    assert _count(conn, table) >= 1

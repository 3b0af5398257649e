"""Stage 0½, reference data: typed reads and writes of the registry, in the caller's transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, LiteralString

import psycopg

from registry import queries
from registry.models import Asset, Device, Location, Lot, Mount, Party, Series

# Every function takes a connection or a cursor and runs in whatever transaction it is in;
# none commits. A cursor lets a caller (the gateway's batch writer) keep one cursor for its transaction.
Db = psycopg.Connection[Any] | psycopg.Cursor[Any]
SeriesKey = tuple[str, str]  # (device_id, channel)


@contextmanager
def _cursor(db: Db) -> Iterator[psycopg.Cursor[Any]]:
    if isinstance(db, psycopg.Cursor):
        yield db
    else:
        with db.cursor() as cur:
            yield cur


def _columns(rows: Sequence[Any], names: Sequence[str]) -> list[list[Any]]:
    """One list per field name, in `names` order: the column arrays an ``unnest`` insert takes."""
    return [[getattr(r, n) for r in rows] for n in names]


def _add(db: Db, query: LiteralString, rows: Iterable[Any], names: Sequence[str]) -> int:
    batch = list(rows)
    if not batch:
        return 0
    with _cursor(db) as cur:
        cur.execute(query, _columns(batch, names))
        return max(cur.rowcount, 0)


# --- writes: bulk adds (existing keys are kept; the number of new rows is returned) ---


def add_parties(db: Db, parties: Iterable[Party]) -> int:
    return _add(db, queries.ADD_PARTIES, parties, ("party_id", "name", "role"))


def add_locations(db: Db, locations: Iterable[Location]) -> int:
    names = ("location_id", "name", "kind", "party_id", "parent_location_id", "lat", "lon")
    return _add(db, queries.ADD_LOCATIONS, locations, names)


def add_assets(db: Db, assets: Iterable[Asset]) -> int:
    names = (
        "asset_id",
        "kind",
        "name",
        "epc",
        "parent_asset_id",
        "operator_party_id",
        "location_id",
        "product_class",
        "mode",
        "probe",
    )
    return _add(db, queries.ADD_ASSETS, assets, names)


def add_devices(db: Db, devices: Iterable[Device]) -> int:
    names = ("device_id", "kind", "accuracy_c", "status", "calibration_due")
    return _add(db, queries.ADD_DEVICES, devices, names)


def add_mounts(db: Db, mounts: Iterable[Mount]) -> int:
    """Record mounts as given (history import, seeding); `mount_device` moves a device from now on."""
    return _add(db, queries.ADD_MOUNTS, mounts, ("device_id", "asset_id", "valid_from", "valid_to"))


def add_lots(db: Db, lots: Iterable[Lot]) -> int:
    names = ("lot_id", "product_class", "gtin", "batch", "description", "origin_country", "hs_code")
    return _add(db, queries.ADD_LOTS, lots, (*names, "bonded_status", "owner_party_id"))


# --- writes: one row, inserted or overwritten ---


def upsert_party(db: Db, party: Party) -> None:
    db.execute(queries.UPSERT_PARTY, asdict(party))


def upsert_location(db: Db, location: Location) -> None:
    db.execute(queries.UPSERT_LOCATION, asdict(location))


def upsert_asset(db: Db, asset: Asset) -> None:
    db.execute(queries.UPSERT_ASSET, asdict(asset))


def upsert_device(db: Db, device: Device) -> None:
    db.execute(queries.UPSERT_DEVICE, asdict(device))


def upsert_lot(db: Db, lot: Lot) -> None:
    db.execute(queries.UPSERT_LOT, asdict(lot))


def enrol_device(db: Db, device_id: str, kind: str) -> None:
    """Register a device, or give a known one this kind and make it active again (accuracy and
    calibration date stay)."""
    db.execute(queries.ENROL_DEVICE, (device_id, kind))


def mount_device(db: Db, device_id: str, asset_id: str, at: dt.datetime) -> Mount:
    """Close the device's open mount at `at` and open one on `asset_id` from `at`; return the new mount."""
    db.execute(queries.CLOSE_MOUNT, (at, device_id))
    db.execute(queries.OPEN_MOUNT, (device_id, asset_id, at))
    return Mount(device_id, asset_id, at)


def ensure_series(db: Db, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
    """The series_id of every (device, channel), creating the series that do not exist yet.

    New keys are inserted in sorted order, so concurrent writers lock them in one order."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    devices = [k[0] for k in wanted]
    channels = [k[1] for k in wanted]
    with _cursor(db) as cur:
        cur.execute(queries.INSERT_SERIES, (devices, channels))
        cur.execute(queries.SELECT_SERIES, (devices, channels))
        return {(device_id, channel): int(sid) for sid, device_id, channel in cur.fetchall()}


# --- reads ---


def get_party(db: Db, party_id: str) -> Party | None:
    row = db.execute(queries.SELECT_PARTY, (party_id,)).fetchone()
    return None if row is None else Party(*row)


def get_location(db: Db, location_id: str) -> Location | None:
    row = db.execute(queries.SELECT_LOCATION, (location_id,)).fetchone()
    return None if row is None else Location(*row)


def get_asset(db: Db, asset_id: str) -> Asset | None:
    row = db.execute(queries.SELECT_ASSET, (asset_id,)).fetchone()
    return None if row is None else Asset(*row)


def get_device(db: Db, device_id: str) -> Device | None:
    row = db.execute(queries.SELECT_DEVICE, (device_id,)).fetchone()
    return None if row is None else Device(*row)


def get_lot(db: Db, lot_id: str) -> Lot | None:
    row = db.execute(queries.SELECT_LOT, (lot_id,)).fetchone()
    return None if row is None else Lot(*row)


def transport_mode(db: Db, asset_id: str) -> str | None:
    """The mode an asset's recording interval is chosen by (storage, road, rail, sea or transport); None for
    an unknown asset. Defined once, in SQL (registry/migrations/0003_evidence_quality.sql)."""
    row = db.execute(queries.SELECT_TRANSPORT_MODE, (asset_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def mounts_of(db: Db, device_id: str) -> list[Mount]:
    """The device's mounts, oldest first; the last one is open while its ``valid_to`` is None."""
    return [Mount(*row) for row in db.execute(queries.SELECT_MOUNTS, (device_id,)).fetchall()]


def device_statuses(db: Db, device_ids: Iterable[str]) -> dict[str, str]:
    """``status`` (active, decommissioned) of each registered device among `device_ids`."""
    rows = db.execute(queries.SELECT_DEVICE_STATUSES, (sorted(set(device_ids)),)).fetchall()
    return {str(device_id): str(status) for device_id, status in rows}


def all_series(db: Db) -> list[Series]:
    """Every series, by device and channel."""
    return [Series(*row) for row in db.execute(queries.SELECT_ALL_SERIES).fetchall()]

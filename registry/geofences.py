"""Stage 0½, reference data: setting a location's geofence: checked (`registry.geometry`), then stored."""

from __future__ import annotations

from registry.geometry import checked
from registry.models import Geofence
from registry.shipments import upsert_geofences
from registry.store import Db, get_location


def set_geofence(db: Db, fence: Geofence) -> Geofence | None:
    """Give the location this geofence, replacing the one it had (in the caller's transaction); return it as
    stored, or None (nothing written) when the location is not in the registry. ``GeofenceError`` when it
    is no fence. Crossings already judged stay as they were; positions judged from now on meet it."""
    stored = checked(fence)
    if get_location(db, fence.location_id) is None:
        return None
    upsert_geofences(db, [stored])
    return stored

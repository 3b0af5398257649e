"""Stage 3, ledger: the SQL of geofence crossings into the ledger (outbox, shipments, events held)."""

from __future__ import annotations

from typing import Final

TAKE_CROSSINGS: Final = """
SELECT outbox_id, payload FROM geofence_outbox ORDER BY outbox_id LIMIT %s FOR UPDATE SKIP LOCKED
"""
ANY_CROSSING: Final = "SELECT EXISTS (SELECT 1 FROM geofence_outbox)"
DELETE_CROSSINGS: Final = "DELETE FROM geofence_outbox WHERE outbox_id = ANY(%s)"

# A shipment's documents, in the order of multimodal.biz_transactions' parameters.
SHIPMENT_DOCUMENTS: Final = """
SELECT bill_of_lading, rail_waybill, through_document, road_waybill FROM shipment WHERE shipment_id = %s
"""
SHIPMENT_LOTS: Final = "SELECT lot_id, quantity, uom FROM shipment_lot WHERE shipment_id = %s ORDER BY lot_id"

# The events of an asset's crossing of a fence (its readPoint) in one direction at one time that the
# ledger holds and has not declared wrong.
LIVE_CROSSING_EVENTS: Final = """
SELECT e.event FROM ledger_event e
WHERE e.biz_step = %(biz_step)s AND e.event_time = %(event_time)s AND NOT e.declares_error
  AND e.event ->> 'cc:asset' = %(asset_id)s AND e.event ->> 'cc:geofence' = %(direction)s
  AND e.event -> 'readPoint' ->> 'id' = %(location_id)s
  AND NOT EXISTS (SELECT 1 FROM ledger_event d WHERE d.event_id = e.event_id AND d.declares_error)
ORDER BY e.seq
"""

# Whether the ledger holds the errorDeclaration of an event.
EVENT_DECLARED: Final = "SELECT EXISTS (SELECT 1 FROM ledger_event WHERE event_id = %s AND declares_error)"

# Every geofence event the ledger holds and has not declared wrong, in device-time order.
LIVE_GEOFENCE_EVENTS: Final = """
SELECT e.event FROM ledger_event e
WHERE e.event ? 'cc:geofence' AND NOT e.declares_error
  AND NOT EXISTS (SELECT 1 FROM ledger_event d WHERE d.event_id = e.event_id AND d.declares_error)
ORDER BY e.event_time, e.seq
"""

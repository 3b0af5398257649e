"""Stage 3, EPCIS: what each CBV business step means here: custody, placement, shipment (one mapping).

Every reader of a ledger event's ``bizStep`` (the ledger worker building events from RFID reads, the
derivation of containment and custody, the trace's shipments, the multimodal builders) takes its
meaning from these sets, so a step is classified once.
"""

from __future__ import annotations

from typing import Final

# Goods leave with these steps: onto a conveyance (an RFID pass adds them to the asset read with them).
OUTBOUND_STEPS: Final = frozenset({"shipping", "loading", "departing"})
# Goods arrive with these steps: off a conveyance (an RFID pass takes them out of the asset read with them).
INBOUND_STEPS: Final = frozenset({"receiving", "unloading", "arriving"})
# The steps a shipment is made of (the trace's forward view lists them).
MOVEMENT_STEPS: Final = OUTBOUND_STEPS | INBOUND_STEPS
# The goods are on their way after these steps: disposition in_transit, no bizLocation of their own.
LEAVING_STEPS: Final = frozenset({"shipping", "departing"})
# Steps whose bizLocation does not place the goods there (they are on a conveyance, or only observed).
NOT_PLACING_STEPS: Final = LEAVING_STEPS | frozenset({"loading", "transporting", "sensor_reporting"})
# Steps that hand the goods to the party of the read point or the event (a new custody leg).
CUSTODY_STEPS: Final = frozenset(
    {"storing", "shipping", "receiving", "accepting", "arriving", "departing", "stocking"}
)

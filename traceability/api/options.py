"""Stage 3, API: how the API uses the database and what capture accepts (``ApiOptions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from traceability import limits
from traceability.epcis import capture


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """How the API uses the database, and what capture accepts (the settings' ``api_*`` and ``capture_*``).

    Each request holds one connection from first use to its audit row: ``pool_size`` requests are served
    at once, the others wait up to ``pool_timeout_s`` for a connection and are then answered 503."""

    pool_size: int = limits.API_POOL_SIZE
    pool_timeout_s: float = limits.API_POOL_TIMEOUT_S
    capture: capture.CaptureLimits = field(default_factory=lambda: capture.CaptureLimits())
    # The ledger's key file: /ledger/verify pins its public half and checks the checkpoint log beside
    # it; None (or no file yet): no key is pinned, and stored checkpoints cannot be verified.
    ledger_key: Path | None = None
    # How long a capture body may take to arrive (it is read before the request takes a connection).
    body_timeout_s: float = limits.API_BODY_TIMEOUT_S
    # Run a capture worker (``traceability.capture_worker``) in the API's process, for an API served
    # alone; where the ledger stage runs (``coldchain.runtime.Services``), its worker finishes the jobs.
    capture_worker: bool = False
    # The web pages' map tiles (``{z}/{x}/{y}`` URL template): None, the default, loads no tiles at all
    # (intranets have no internet); the tracks are drawn on a plain background.
    map_tile_url: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.pool_size <= limits.API_POOL_SIZE_MAX:
            raise ValueError(f"the API pool size must be in [1, {limits.API_POOL_SIZE_MAX}]")
        # ``not a <= b`` also refuses nan; the upper bound refuses infinity.
        if not 0 < self.pool_timeout_s <= limits.API_POOL_TIMEOUT_S_MAX:
            raise ValueError(f"the API pool timeout must be in (0, {limits.API_POOL_TIMEOUT_S_MAX:g}] s")
        if not 0 < self.body_timeout_s <= limits.API_BODY_TIMEOUT_S_MAX:
            raise ValueError(f"the API body timeout must be in (0, {limits.API_BODY_TIMEOUT_S_MAX:g}] s")

"""Stage 2 (verdicts): the rules worker: outbox taking, pure policy (`plan`), and the adapter applying it.

`RulesWorker` (the adapter) reads what a run needs, asks the pure policy modules for a `Plan`
(`policy`: slices of temperature series; `live`: the profile at the latest reading and the MKT break;
`states`: door and power; `history`: series verdicts and their versions; `lots`: lot verdicts), and
applies it in the run's one transaction (`apply`). `custody` names the lots the ledger moved since the
worker's watermark, which it re-judges too.
"""

from rules.worker.adapter import RulesWorker
from rules.worker.apply import RunStats

__all__ = ["RulesWorker", "RunStats"]

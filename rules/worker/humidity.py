"""Stage 2 (verdicts): relative humidity against the class's humidity limits, as the asset's humidity alarm.

Pure. The rh readings from the class look-back before the touched window to the latest reading are
judged by `rules.engine.breaks.humidity_runs` (the one definition, also what lot verdicts judge by),
where the limits hold in the asset's mode (`Humidity.applies`):
every run outside the limits that reaches into the touched window opens or updates the asset's
humidity alarm; with the latest reading of a mounted device back within the limits, the alarm
resolves. A lot's verdict carries the humidity runs of its legs as excursions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from rules.engine import catalog
from rules.engine.breaks import humidity_runs
from rules.models import from_epoch_us, to_epoch_ms
from rules.packs import ClassRef
from rules.worker.plan import Plan, ResolveAlarm, Segment
from rules.worker.policy import FloatArray, IntArray, alarm


@dataclass(frozen=True, slots=True)
class HumidityInputs:
    seg: Segment  # the rh series on one asset
    ref: ClassRef  # a class with humidity limits
    lo: datetime  # the touched window
    hi: datetime
    latest: datetime  # the series' latest reading while mounted
    t_us: IntArray  # readings from the look-back before the window to the latest (epoch µs)
    v: FloatArray  # %RH
    escalate_after_s: int | None = None


def plan_humidity(inp: HumidityInputs) -> Plan:
    seg, ref = inp.seg, inp.ref
    limits = ref.rules.humidity
    assert limits is not None
    plan = Plan()
    if not limits.applies(seg.mode):
        return plan  # the class's limits do not hold in the asset's mode (a storage rule on a truck)
    t_ms = inp.t_us // 1000
    runs = humidity_runs(t_ms, inp.v, limits, ref.rules.min_duration.seconds * 1000)
    valid = np.flatnonzero(~np.isnan(inp.v))
    last = int(valid[-1]) if valid.shape[0] else -1
    lo_ms = to_epoch_ms(inp.lo)
    standing = False
    for a, b, peak_pct in runs:
        if int(t_ms[b]) < lo_ms:
            continue  # over before the new data: judged when it arrived
        start, end = from_epoch_us(int(inp.t_us[a])), from_epoch_us(int(inp.t_us[b]))
        reason = catalog.humidity(limits.low_pct, limits.high_pct, peak_pct, (end - start).total_seconds())
        plan.add(alarm(seg, ref, catalog.HUMIDITY, (start, end), None, reason, inp.escalate_after_s))
        standing = b == last
    if seg.mounted_now and not standing and last >= 0:
        rh = float(inp.v[last])
        inside = (limits.low_pct is None or rh >= limits.low_pct) and (
            limits.high_pct is None or rh <= limits.high_pct
        )
        if inside:
            plan.add(
                ResolveAlarm(
                    seg.asset_id, catalog.HUMIDITY.id(ref), inp.latest, catalog.back_to_normal("humidity")
                )
            )
    return plan

"""Stage 4 (dashboards): every panel, variable and alert query of the operators' Grafana, and its expansion.

Each constant is Grafana PostgreSQL SQL: the macros $__timeFrom(), $__timeTo(), $__timeFilter(col) and
$__interval_ms, and the multi-value variables $carrier, $site, $asset_kind, $product_class and $asset,
whose All is the custom value '__all' (quotes included: Grafana inserts a custom all value as it is,
unformatted). `expand` is that expansion, for the tests, the bench and anything else that runs them.

Reading volumes go through readings_binned() (rules/migrations/0009), which reads reading_1d, reading_1h
or reading_1m by the bucket width, so a 90-day panel reads rollups, never the raw rows. The raw rows are
read only by index probes for the latest value of a series (last seen, last position, last battery).
`PANELS_RAW` holds each panel as it reads the raw rows instead (readings_binned_raw): the reference the
tests and `coldchain bench dashboards` hold the rollup path against.

Compliance rate (温度达标率), per product class, carrier or site:
    rate = monitored time in range / monitored time
- monitored time: 60 s for every minute in which a temperature series (channel temp or temp:<probe>)
  of a device mounted on the asset holds at least one non-null reading (the rollups' `minutes`), summed
  over the asset's temperature series, over the range [from, to) to the minute (whole days from
  reading_1d, the edges from reading_1h and reading_1m);
- monitored time out of range: 60 s for every such minute that falls inside one of the series'
  excursions on that asset (excursion rows: from start_time to end_time, both in), clipped to the range
  and to the mount; a minute inside two excursions of one series counts once;
- in range = monitored - out of range. Both are counted in monitored minutes, so a sparse logger (one
  reading every 10 minutes) weighs its excursions as it weighs the rest of its record, and in range is
  never negative. A bucket of the rollups belongs to the mount in effect at its last reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

ALL_VALUE: Final = "'__all'"
VARIABLES: Final = ("carrier", "site", "asset_kind", "product_class", "asset")

T_FROM: Final = "$__timeFrom()::timestamptz"
T_TO: Final = "$__timeTo()::timestamptz"
WIDTH: Final = "make_interval(secs => $__interval_ms / 1000.0)"
# The bucket of a fleet-wide series (every in-scope series summed per bucket): Grafana's interval, but at
# least an hour past 12 hours and a day past 30 days, so a long range reads reading_1h or reading_1d (24
# points a day, 168 a week, 90 a quarter) rather than a row per series and minute.
FLEET_WIDTH: Final = f"""GREATEST({WIDTH}, CASE
    WHEN $__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '30 days' THEN interval '1 day'
    WHEN $__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '12 hours' THEN interval '1 hour'
    ELSE interval '0' END)"""
# The bucket of the compliance rate over time: the fleet's, at least an hour (a rate per minute says little).
COMPLIANCE_WIDTH: Final = f"GREATEST({FLEET_WIDTH}, interval '1 hour')"
ORIGIN: Final = "timestamptz '2000-01-01 00:00Z'"

# --- scope: the five variables, over v_asset_scope `sc` ------------------------------------------------
_SCOPE_COLUMNS: Final = {
    "carrier": "sc.carrier_id",
    "site": "sc.site_id",
    "asset_kind": "sc.asset_kind",
    "product_class": "sc.product_class",
    "asset": "sc.asset_id",
}


def _clause(var: str) -> str:
    return f"('__all' IN (${var}) OR {_SCOPE_COLUMNS[var]} IN (${var}))"


# An asset is in scope when it matches all five variables (a variable at All matches every asset).
ASSET_SCOPE: Final = "\n  AND ".join(_clause(v) for v in VARIABLES)
# Every variable at All (then a query may read every series, mounted or not).
SCOPE_IS_ALL: Final = " AND ".join(f"'__all' IN (${v})" for v in VARIABLES)
SCOPE_CTE: Final = f"scope AS (SELECT sc.* FROM v_asset_scope sc WHERE {ASSET_SCOPE})"


def _mounted(channels: str) -> str:
    """CTE `mounted`: the series (channels: a predicate on v_series_mount sm) of devices mounted on an
    in-scope asset during the range, one row per mount."""
    return f"""mounted AS (
    SELECT sm.series_id, sm.device_id, sm.channel, sm.asset_id, sm.valid_from, sm.valid_to, s.asset_name
    FROM v_series_mount sm JOIN scope s ON s.asset_id = sm.asset_id
    WHERE {channels} AND sm.valid_from < {T_TO} AND sm.valid_to > {T_FROM}
)"""


# Series of `mounted`, as readings_binned's array ('{}' when none: NULL would be every series).
MOUNTED_SERIES: Final = "(SELECT COALESCE(array_agg(DISTINCT series_id), '{}') FROM mounted)"
# Every series at All (unmounted devices' too), else those of `mounted`.
SCOPED_SERIES: Final = f"CASE WHEN {SCOPE_IS_ALL} THEN NULL ELSE {MOUNTED_SERIES} END"
# A rollup bucket `b` belongs to the mount `m` in effect at the bucket's last reading.
IN_MOUNT: Final = "m.series_id = b.series_id AND b.last_time >= m.valid_from AND b.last_time < m.valid_to"


# A device in scope: mounted on an in-scope asset during the range; one mounted nowhere then only at All.
def device_scope(device: str) -> str:
    mounts = f"""device_mount dm WHERE dm.device_id = {device}
          AND dm.valid_from < {T_TO} AND (dm.valid_to IS NULL OR dm.valid_to > {T_FROM})"""
    return f"""(EXISTS (SELECT 1 FROM {mounts}
          AND EXISTS (SELECT 1 FROM v_asset_scope sc WHERE sc.asset_id = dm.asset_id AND {ASSET_SCOPE}))
     OR ({SCOPE_IS_ALL} AND NOT EXISTS (SELECT 1 FROM {mounts})))"""


# Online at $__timeTo(): the device's latest reading is within its asset's allowed interval (d: a row of
# device_last_seen). Offline: older, or none yet.
ONLINE: Final = f"COALESCE(d.last_seen >= {T_TO} - make_interval(secs => d.allowed_s), false)"
# An alarm unresolved at $__timeTo() (a: an alarm row).
ALARM_OPEN_AT_TO: Final = f"a.opened_at <= {T_TO} AND (a.resolved_at IS NULL OR a.resolved_at > {T_TO})"
SEVERITY_RANK: Final = "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


class _Src:
    """Where reading volumes come from: the rollups (readings_binned) or the raw rows (the reference)."""

    def __init__(self, raw: bool) -> None:
        self.raw = raw
        self.binned = "readings_binned_raw" if raw else "readings_binned"

    def exact(self, series: str) -> str:
        """Rows of readings_binned covering [from, to) to the minute: the whole days inside from
        reading_1d, the whole hours around them from reading_1h, the minutes at each edge from
        reading_1m (each piece's edges aligned to its width, so its buckets lie inside it)."""
        f = self.binned
        return f"""(
    WITH e1 AS (
        SELECT LEAST(date_bin('1 hour', {T_FROM} - interval '1 microsecond', {ORIGIN}) + interval '1 hour',
                     {T_TO}) AS h1
    ), e2 AS (
        SELECT h1, GREATEST(date_bin('1 hour', {T_TO}, {ORIGIN}), h1) AS h2 FROM e1
    ), e3 AS (
        SELECT h1, h2, LEAST(date_bin('1 day', h1 - interval '1 microsecond', {ORIGIN}) + interval '1 day',
                             h2) AS d1 FROM e2
    ), e AS (
        SELECT h1, h2, d1, GREATEST(date_bin('1 day', h2, {ORIGIN}), d1) AS d2 FROM e3
    )
    SELECT b.* FROM e, {f}(interval '1 minute', {T_FROM}, e.h1, {series}) b WHERE {T_FROM} < e.h1
    UNION ALL SELECT b.* FROM e, {f}(interval '1 hour', e.h1, e.d1, {series}) b WHERE e.h1 < e.d1
    UNION ALL SELECT b.* FROM e, {f}(interval '1 day', e.d1, e.d2, {series}) b WHERE e.d1 < e.d2
    UNION ALL SELECT b.* FROM e, {f}(interval '1 hour', e.d2, e.h2, {series}) b WHERE e.d2 < e.h2
    UNION ALL SELECT b.* FROM e, {f}(interval '1 minute', e.h2, {T_TO}, {series}) b WHERE e.h2 < {T_TO}
)"""

    def out_minutes(self, lo: str, hi: str) -> str:
        """CTEs `spans` and `out_minutes`: (asset_id, series_id, minute) for every monitored minute of a
        temperature series of `mounted` inside one of its excursions on that asset, within [lo, hi) (whole
        minutes)."""
        lb = f"date_bin('1 minute', GREATEST(e.start_time, {lo}, m.valid_from), {ORIGIN})"
        ub = (
            f"LEAST(date_bin('1 minute', e.end_time, {ORIGIN}) + interval '1 minute',"
            f" date_bin('1 minute', LEAST({hi}, m.valid_to) - interval '1 microsecond', {ORIGIN})"
            " + interval '1 minute')"
        )
        if self.raw:
            minutes = f"""SELECT DISTINCT date_bin('1 minute', r.time, {ORIGIN}) AS minute FROM reading r
        WHERE r.series_id = sp.series_id AND r.time >= sp.lb AND r.time < sp.ub AND r.value IS NOT NULL"""
        else:
            minutes = """SELECT r.bucket AS minute FROM reading_1m r
        WHERE r.series_id = sp.series_id AND r.bucket >= sp.lb AND r.bucket < sp.ub AND r.minutes > 0"""
        # The spans first (materialised): the lateral read then names one series, so its index scan is
        # bounded by the span (else the planner ANDs in a scan of the series' every minute).
        return f"""spans AS MATERIALIZED (
    SELECT m.asset_id, e.series_id, {lb} AS lb, {ub} AS ub
    FROM excursion e
    JOIN mounted m ON m.series_id = e.series_id AND m.asset_id = e.asset_id
    WHERE e.start_time < {hi} AND e.end_time >= {lo} - interval '1 minute'
),
out_minutes AS (
    SELECT DISTINCT sp.asset_id, sp.series_id, om.minute
    FROM spans sp
    CROSS JOIN LATERAL (
        {minutes}
    ) om
)"""


def _sql(text: str) -> str:
    return text.strip() + "\n"


# --- Fleet overview --------------------------------------------------------------------------------------


def _fleet_positions() -> str:
    # Last position at $__timeTo() (latest lat/lon of a device mounted there; else the site's), and the
    # state, first that holds: 'excursion' (one of its excursions spans $__timeTo(), or is still open),
    # 'offline' (no mounted device online), 'broken' (a chain break on it overlaps the range), 'in_range'.
    return _sql(f"""
WITH {SCOPE_CTE},
pos AS (
    SELECT DISTINCT ON (sm.asset_id) sm.asset_id, lat.time, lat.value AS latitude, lon.value AS longitude
    FROM v_series_mount sm
    JOIN scope s ON s.asset_id = sm.asset_id
    CROSS JOIN LATERAL (
        SELECT r.time, r.value FROM reading r
        WHERE r.series_id = sm.series_id AND r.time <= {T_TO} AND r.time >= sm.valid_from
          AND r.time < sm.valid_to AND r.value IS NOT NULL
        ORDER BY r.time DESC LIMIT 1
    ) lat
    JOIN series slon ON slon.device_id = sm.device_id AND slon.channel = 'lon'
    JOIN reading lon ON lon.series_id = slon.series_id AND lon.time = lat.time
    WHERE sm.channel = 'lat' AND sm.valid_from <= {T_TO}
    ORDER BY sm.asset_id, lat.time DESC
),
dev AS (
    SELECT d.asset_id, max(d.last_seen) AS last_seen, bool_or({ONLINE}) AS online
    FROM device_last_seen({T_TO}) d GROUP BY d.asset_id
)
SELECT s.asset_id, s.asset_name,
       COALESCE(p.latitude, s.site_lat) AS latitude,
       COALESCE(p.longitude, s.site_lon) AS longitude,
       CASE WHEN EXISTS (SELECT 1 FROM excursion e WHERE e.asset_id = s.asset_id
                         AND e.start_time <= {T_TO} AND (e.open OR e.end_time >= {T_TO}))
                 THEN 'excursion'
            WHEN NOT COALESCE(dv.online, false) THEN 'offline'
            WHEN EXISTS (SELECT 1 FROM chain_break b WHERE b.asset_id = s.asset_id
                         AND b.start_time <= {T_TO} AND b.end_time >= {T_FROM})
                 THEN 'broken'
            ELSE 'in_range' END AS state,
       dv.last_seen
FROM scope s
LEFT JOIN pos p ON p.asset_id = s.asset_id
LEFT JOIN dev dv ON dv.asset_id = s.asset_id
ORDER BY s.asset_name, s.asset_id
""")


# Devices mounted on in-scope assets at $__timeTo(), online (latest reading within the allowed interval
# of the asset's class and mode) or offline.
FLEET_DEVICES_ONLINE: Final = _sql(f"""
SELECT count(*) FILTER (WHERE {ONLINE}) AS online,
       count(*) FILTER (WHERE NOT {ONLINE}) AS offline
FROM device_last_seen({T_TO}) d
JOIN v_asset_scope sc ON sc.asset_id = d.asset_id
WHERE {ASSET_SCOPE}
""")

# Devices on in-scope assets whose latest battery reading in the range is below 20 %.
FLEET_LOW_BATTERY: Final = _sql(f"""
WITH {SCOPE_CTE},
{_mounted("sm.channel = 'battery'")},
latest AS (
    SELECT DISTINCT ON (m.device_id) m.device_id, m.asset_name, lb.value, lb.time
    FROM mounted m
    CROSS JOIN LATERAL (
        SELECT r.time, r.value FROM reading r
        WHERE r.series_id = m.series_id AND r.value IS NOT NULL
          AND r.time >= GREATEST({T_FROM}, m.valid_from) AND r.time <= {T_TO} AND r.time < m.valid_to
        ORDER BY r.time DESC LIMIT 1
    ) lb
    ORDER BY m.device_id, lb.time DESC
)
SELECT device_id, asset_name, value AS battery_pct, time
FROM latest WHERE value < 20
ORDER BY battery_pct, device_id
""")

# Alarms on in-scope assets unresolved at $__timeTo() (open or acknowledged).
FLEET_OPEN_ALARMS: Final = _sql(f"""
SELECT count(*) AS open_alarms
FROM alarm a JOIN v_asset_scope sc ON sc.asset_id = a.asset_id
WHERE {ASSET_SCOPE} AND {ALARM_OPEN_AT_TO}
""")


def _readings_per_minute(src: _Src) -> str:
    # Readings (dropouts included) of the in-scope assets' series per minute, per fleet bucket; at All, of
    # every series (unmounted devices' too).
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("true")}
SELECT b.bucket AS time,
       (sum(b.readings) / (extract(epoch FROM {FLEET_WIDTH}) / 60.0))::double precision AS readings_per_minute
FROM {src.binned}({FLEET_WIDTH}, {T_FROM}, {T_TO}, {SCOPED_SERIES}) b
GROUP BY b.bucket
ORDER BY 1
""")


# --- Asset detail ----------------------------------------------------------------------------------------


def _asset_channel(src: _Src, channels: str, column: str) -> str:
    # Mean of each series of the channels on the in-scope assets, per bucket, named asset device/channel.
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted(channels)}
SELECT b.bucket AS time,
       format('%s %s/%s', m.asset_name, m.device_id, m.channel) AS metric,
       b.sum_c / NULLIF(b.n, 0) AS {column}
FROM {src.binned}({WIDTH}, {T_FROM}, {T_TO}, {MOUNTED_SERIES}) b
JOIN mounted m ON {IN_MOUNT}
ORDER BY 1, 2
""")


# The limit band of each in-scope asset's product class (NULL: no limit on that side).
ASSET_LIMITS: Final = _sql(f"""
SELECT sc.asset_name, sc.low_c, sc.high_c
FROM v_asset_scope sc
WHERE {ASSET_SCOPE}
ORDER BY sc.asset_name
""")


def _event_annotations(src: _Src) -> str:
    # Door, defrost and power events of devices mounted on the in-scope assets: each opening event (door
    # open, power off or on battery, defrost start) until the device's next event of that kind (or
    # $__timeTo()), from device_event (looking a day back for one open at the range's start); and the
    # door channel's open periods (consecutive buckets whose door reading reached 1).
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("sm.channel = 'door'")},
ev AS (
    SELECT e.time, e.device_id, e.kind, e.value ->> 'state' AS state, s.asset_name,
           lead(e.time) OVER (PARTITION BY e.device_id, e.kind ORDER BY e.time) AS next_time
    FROM device_event e
    JOIN device_mount dm ON dm.device_id = e.device_id AND dm.valid_from <= e.time
                        AND (dm.valid_to IS NULL OR e.time < dm.valid_to)
    JOIN scope s ON s.asset_id = dm.asset_id
    WHERE e.kind IN ('door', 'defrost', 'power')
      AND e.time >= {T_FROM} - interval '1 day' AND e.time <= {T_TO}
),
door AS (
    SELECT b.bucket, m.device_id, m.asset_name,
           b.bucket - (row_number() OVER (PARTITION BY m.device_id ORDER BY b.bucket)) * {WIDTH} AS island
    FROM {src.binned}({WIDTH}, {T_FROM}, {T_TO}, {MOUNTED_SERIES}) b
    JOIN mounted m ON {IN_MOUNT}
    WHERE b.max_c >= 1
)
SELECT time, timeend, text, tags FROM (
    SELECT ev.time, COALESCE(ev.next_time, {T_TO}) AS timeend,
           format('%s: %s %s (%s)', ev.asset_name, ev.kind, ev.state, ev.device_id) AS text,
           ev.kind AS tags
    FROM ev
    WHERE ev.state IN ('open', 'off', 'battery', 'start')
      AND COALESCE(ev.next_time, {T_TO}) >= {T_FROM}
    UNION ALL
    SELECT min(bucket), max(bucket) + {WIDTH},
           format('%s: door open (%s)', asset_name, device_id), 'door'
    FROM door GROUP BY device_id, asset_name, island
) a
ORDER BY time, text
""")


# Excursions and chain breaks on the in-scope assets overlapping the range, as regions.
ASSET_VERDICT_ANNOTATIONS: Final = _sql(f"""
WITH {SCOPE_CTE}
SELECT time, timeend, text, tags FROM (
    SELECT e.start_time AS time, e.end_time AS timeend,
           format('%s: excursion on %s/%s, peak %s °C (%s)%s', e.asset_name, e.device_id, e.channel,
                  e.peak_c, e.rule_id, CASE WHEN e.open THEN ', still open' ELSE '' END) AS text,
           'excursion' AS tags
    FROM v_excursions e JOIN scope s ON s.asset_id = e.asset_id
    WHERE e.start_time <= {T_TO} AND e.end_time >= {T_FROM}
    UNION ALL
    SELECT b.start_time, b.end_time,
           format('%s: chain break (%s), %s s against %s s allowed (%s)', b.asset_name, b.kind,
                  round(b.duration_s::numeric), round(b.allowed_s::numeric), b.rule_id),
           'break,' || b.kind
    FROM v_chain_breaks b JOIN scope s ON s.asset_id = b.asset_id
    WHERE b.start_time <= {T_TO} AND b.end_time >= {T_FROM}
) v
ORDER BY time, text
""")


def _receive_lag(src: _Src, asset: bool) -> str:
    # Receive lag (gateway receive time - device time) p95 of the in-scope series per bucket, from the
    # rollups' histogram (lag_p95_s): per asset with the largest lag seen, or fleet-wide per fleet bucket.
    extra = ", max(b.lag_max_s) AS lag_max_s" if asset else ""
    width = WIDTH if asset else FLEET_WIDTH
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("true")}
SELECT b.bucket AS time,
       lag_p95_s(sum(b.readings), sum(b.lag_le_1s), sum(b.lag_le_5s), sum(b.lag_le_30s), sum(b.lag_le_60s),
                 sum(b.lag_le_300s), sum(b.lag_le_3600s), max(b.lag_max_s)) AS lag_p95_s{extra}
FROM {src.binned}({width}, {T_FROM}, {T_TO}, {SCOPED_SERIES}) b
GROUP BY b.bucket
ORDER BY 1
""")


# The lots the in-scope assets carried during the range (custody legs on them; lots_under), with the
# path of each lot's trace page.
ASSET_LOTS: Final = _sql(f"""
SELECT al.lot_id, l.description, min(al.first_seen) AS first_seen,
       NULLIF(max(COALESCE(al.last_seen, 'infinity')), 'infinity') AS last_seen,
       '/ui/trace/' || url_path_segment(al.lot_id) AS trace_path
FROM v_asset_lots al
JOIN v_asset_scope sc ON sc.asset_id = al.asset_id
LEFT JOIN lot l ON l.lot_id = al.lot_id
WHERE {ASSET_SCOPE}
  AND al.first_seen <= {T_TO} AND COALESCE(al.last_seen, 'infinity') >= {T_FROM}
GROUP BY al.lot_id, l.description
ORDER BY first_seen, al.lot_id
""")

# --- Alarms ----------------------------------------------------------------------------------------------

# Alarms on in-scope assets unresolved at $__timeTo(), as they stood then: most severe, then oldest first.
ALARMS_OPEN: Final = _sql(f"""
SELECT a.alarm_id, a.severity,
       extract(epoch FROM {T_TO} - a.opened_at)::double precision AS age_s,
       CASE WHEN a.acknowledged_at <= {T_TO} THEN 'acknowledged' ELSE 'open' END AS state,
       CASE WHEN a.acknowledged_at <= {T_TO} THEN a.acknowledged_by END AS acknowledged_by,
       sc.asset_name, COALESCE(a.product_class, sc.product_class) AS product_class,
       a.kind, a.reason, a.opened_at
FROM alarm a JOIN v_asset_scope sc ON sc.asset_id = a.asset_id
WHERE {ASSET_SCOPE} AND {ALARM_OPEN_AT_TO}
ORDER BY {SEVERITY_RANK}, a.opened_at, a.alarm_id
""")

# Alarms opened per bucket and severity on the in-scope assets.
ALARMS_OVER_TIME: Final = _sql(f"""
SELECT date_bin({WIDTH}, a.opened_at, {ORIGIN}) AS time, a.severity, count(*) AS alarms
FROM alarm a JOIN v_asset_scope sc ON sc.asset_id = a.asset_id
WHERE {ASSET_SCOPE} AND $__timeFilter(a.opened_at)
GROUP BY 1, 2
ORDER BY 1, 2
""")

# Per carrier: alarms opened in the range on its in-scope assets, and the median and 95th percentile of
# the time from opening to acknowledgement and to resolution (those done by $__timeTo()).
ALARMS_RESPONSE: Final = _sql(f"""
SELECT COALESCE(sc.carrier_name, '(no carrier)') AS carrier, count(*) AS alarms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN a.acknowledged_at <= {T_TO}
           THEN extract(epoch FROM a.acknowledged_at - a.opened_at) END) AS ack_p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY CASE WHEN a.acknowledged_at <= {T_TO}
           THEN extract(epoch FROM a.acknowledged_at - a.opened_at) END) AS ack_p95_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN a.resolved_at <= {T_TO}
           THEN extract(epoch FROM a.resolved_at - a.opened_at) END) AS resolve_p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY CASE WHEN a.resolved_at <= {T_TO}
           THEN extract(epoch FROM a.resolved_at - a.opened_at) END) AS resolve_p95_s
FROM alarm a JOIN v_asset_scope sc ON sc.asset_id = a.asset_id
WHERE {ASSET_SCOPE} AND $__timeFilter(a.opened_at)
GROUP BY 1
ORDER BY 1
""")

# --- Compliance ------------------------------------------------------------------------------------------


def _compliance(src: _Src, group: str) -> str:
    # The compliance rate (module docstring) of the in-scope assets over the range, per `group`.
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("sm.is_temp")},
monitored AS (
    SELECT m.asset_id, sum(b.minutes) * 60.0 AS monitored_s
    FROM {src.exact(MOUNTED_SERIES)} b
    JOIN mounted m ON {IN_MOUNT}
    GROUP BY m.asset_id
),
{src.out_minutes(T_FROM, T_TO)},
out_s AS (
    SELECT o.asset_id, count(*) * 60.0 AS out_s FROM out_minutes o GROUP BY o.asset_id
),
per_asset AS (
    SELECT s.*, mo.monitored_s, COALESCE(o.out_s, 0) AS out_s
    FROM scope s
    JOIN monitored mo ON mo.asset_id = s.asset_id
    LEFT JOIN out_s o ON o.asset_id = s.asset_id
)
SELECT {group} AS group_name, sum(monitored_s)::double precision AS monitored_s,
       sum(monitored_s - out_s)::double precision AS in_range_s,
       (sum(monitored_s - out_s) / NULLIF(sum(monitored_s), 0))::double precision AS rate
FROM per_asset
GROUP BY 1
HAVING sum(monitored_s) > 0
ORDER BY 1
""")


def _compliance_over_time(src: _Src) -> str:
    # The compliance rate per compliance bucket and product class; each bucket whole (also where it crosses
    # an edge of the range), its out-of-range minutes counted over the same whole buckets.
    lo = f"date_bin({COMPLIANCE_WIDTH}, {T_FROM}, {ORIGIN})"
    hi = f"(date_bin({COMPLIANCE_WIDTH}, {T_TO} - interval '1 microsecond', {ORIGIN}) + {COMPLIANCE_WIDTH})"
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("sm.is_temp")},
monitored AS (
    SELECT b.bucket, s.product_class, sum(b.minutes) AS minutes
    FROM {src.binned}({COMPLIANCE_WIDTH}, {T_FROM}, {T_TO}, {MOUNTED_SERIES}) b
    JOIN mounted m ON {IN_MOUNT}
    JOIN scope s ON s.asset_id = m.asset_id
    GROUP BY 1, 2
),
{src.out_minutes(lo, hi)},
out_m AS (
    SELECT date_bin({COMPLIANCE_WIDTH}, o.minute, {ORIGIN}) AS bucket, s.product_class, count(*) AS minutes
    FROM out_minutes o JOIN scope s ON s.asset_id = o.asset_id
    GROUP BY 1, 2
)
SELECT mo.bucket AS time, COALESCE(mo.product_class, '(no class)') AS metric,
       (mo.minutes - COALESCE(o.minutes, 0))::double precision / mo.minutes AS rate
FROM monitored mo
LEFT JOIN out_m o ON o.bucket = mo.bucket AND o.product_class IS NOT DISTINCT FROM mo.product_class
WHERE mo.minutes > 0
ORDER BY 1, 2
""")


# A lot's class is its own: the other four variables scope a lot by the assets that carried it.
_LOT_CARRIERS: Final = "\n  AND ".join(_clause(v) for v in VARIABLES if v != "product_class")
_LOT_CARRIERS_ALL: Final = " AND ".join(f"'__all' IN (${v})" for v in VARIABLES if v != "product_class")

# Lots whose verdict first became 'broken' per week (ISO weeks, from Monday 00:00 UTC), dated by the
# earliest start of the evidence of that verdict version (device time; its computation time without
# one): lots of the selected product classes, carried by an asset matching the other four variables
# (any lot where those are at All).
LOTS_BROKEN_PER_WEEK: Final = _sql(f"""
WITH first_broken AS (
    SELECT DISTINCT ON (h.subject_id) h.subject_id AS lot_id, h.items, h.computed_at
    FROM verdict_history h
    WHERE h.subject_kind = 'lot' AND h.verdict = 'broken'
    ORDER BY h.subject_id, h.version
),
broke AS (
    SELECT f.lot_id,
           COALESCE((SELECT min((i ->> 'start')::timestamptz) FROM jsonb_array_elements(f.items) i
                     WHERE i ->> 'start' IS NOT NULL), f.computed_at) AS broken_at
    FROM first_broken f
)
SELECT date_bin('7 days', b.broken_at, timestamptz '2000-01-03 00:00Z') AS time, count(*) AS lots_broken
FROM broke b JOIN lot l ON l.lot_id = b.lot_id
WHERE $__timeFilter(b.broken_at)
  AND ('__all' IN ($product_class) OR l.product_class IN ($product_class))
  AND (({_LOT_CARRIERS_ALL}) OR EXISTS (
        SELECT 1 FROM v_asset_lots al JOIN v_asset_scope sc ON sc.asset_id = al.asset_id
        WHERE al.lot_id = b.lot_id AND {_LOT_CARRIERS}))
GROUP BY 1
ORDER BY 1
""")


def _top_excursion_assets(src: _Src) -> str:
    # The ten in-scope assets with the most monitored minutes out of range in the range (the compliance
    # rate's measure), with how many excursions overlap the range.
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("sm.is_temp")},
{src.out_minutes(T_FROM, T_TO)}
SELECT s.asset_name,
       (SELECT count(*) FROM excursion e WHERE e.asset_id = s.asset_id
        AND e.start_time < {T_TO} AND e.end_time >= {T_FROM}) AS excursions,
       o.minutes AS excursion_minutes
FROM (SELECT asset_id, count(*) AS minutes FROM out_minutes GROUP BY asset_id) o
JOIN scope s ON s.asset_id = o.asset_id
ORDER BY excursion_minutes DESC, s.asset_name
LIMIT 10
""")


# --- Data quality ----------------------------------------------------------------------------------------

# Per in-scope device: readings received and readings produced but never received (sequence numbers
# passed over beyond a plausible jump excepted), over the device's whole life (the gateway keeps them per
# boot, not per time); gap_rate = missing / (received + missing).
DQ_SEQ_GAP_RATE: Final = _sql(f"""
SELECT g.device_id, g.received, g.missing,
       (g.missing::double precision / NULLIF(g.received + g.missing, 0)) AS gap_rate
FROM (
    SELECT q.device_id, sum(q.received)::bigint AS received,
           sum(GREATEST(q.next_seq - q.received - q.skipped, 0))::bigint AS missing
    FROM device_seq q
    WHERE {device_scope("q.device_id")}
    GROUP BY q.device_id
) g
ORDER BY gap_rate DESC NULLS LAST, g.device_id
""")

# Dead letters received in the range, per reason (fleet-wide: a dead letter names no trusted device).
DQ_DEAD_LETTERS_BY_REASON: Final = _sql("""
SELECT reason, count(*) AS dead_letters
FROM dead_letter
WHERE $__timeFilter(received_at)
GROUP BY reason
ORDER BY dead_letters DESC, reason
""")

# Devices on in-scope assets silent at $__timeTo() beyond their allowed interval: since their latest
# reading (or their mount, with none yet).
DQ_SILENT_DEVICES: Final = _sql(f"""
SELECT d.device_id, sc.asset_name, d.last_seen,
       extract(epoch FROM {T_TO} - COALESCE(d.last_seen, d.mounted_from))::double precision AS silent_s,
       d.allowed_s
FROM device_last_seen({T_TO}) d
JOIN v_asset_scope sc ON sc.asset_id = d.asset_id
WHERE {ASSET_SCOPE} AND NOT {ONLINE}
ORDER BY silent_s DESC, d.device_id
""")


# Devices mounted on in-scope assets at $__timeTo() whose calibration is past due then: from 00:00 UTC of the
# day after calibration_due, as the rules stage judges their readings (rules.engine.calibration_lapse_ms):
# those readings are indeterminate, never a pass. days_overdue counts from the due date.
DQ_CALIBRATION_OVERDUE: Final = _sql(f"""
SELECT d.device_id, sc.asset_name, d.calibration_due,
       (({T_TO}) AT TIME ZONE 'UTC')::date - d.calibration_due AS days_overdue
FROM device d
JOIN device_mount m ON m.device_id = d.device_id
     AND m.valid_from <= {T_TO} AND (m.valid_to IS NULL OR m.valid_to > {T_TO})
JOIN v_asset_scope sc ON sc.asset_id = m.asset_id
WHERE {ASSET_SCOPE} AND d.status = 'active'
  AND {T_TO} >= (d.calibration_due + 1)::timestamp AT TIME ZONE 'UTC'
ORDER BY days_overdue DESC, d.device_id
""")

# Per carrier, over the UTC days the range touches: the gateway's per device-day counters (gateway migration
# 0011) of the devices mounted that day on in-scope assets: messages received and accepted (the scorecards'
# conformance rate, 规范符合率) and readings counted by seq and missing (序号缺失率). A device-day counts for
# the asset of its latest mount overlapping the day, as the scorecards count it.
DQ_CARRIER_CONFORMANCE: Final = _sql(f"""
SELECT COALESCE(sc.carrier_name, sc.carrier_id, '–') AS carrier,
       sum(dd.received)::bigint AS messages, sum(dd.accepted)::bigint AS accepted,
       (sum(dd.accepted)::double precision / NULLIF(sum(dd.received), 0)) AS conformance,
       sum(dd.readings)::bigint AS readings, GREATEST(sum(dd.seq_missing), 0)::bigint AS missing,
       (GREATEST(sum(dd.seq_missing), 0)::double precision
            / NULLIF(sum(dd.readings) + GREATEST(sum(dd.seq_missing), 0), 0)) AS seq_loss
FROM device_day dd
CROSS JOIN LATERAL (
    SELECT m.asset_id FROM device_mount m
    WHERE m.device_id = dd.device_id AND m.valid_from < dd.day + 1
      AND COALESCE(m.valid_to, 'infinity') > dd.day::timestamptz
    ORDER BY m.valid_from DESC LIMIT 1
) on_day
JOIN v_asset_scope sc ON sc.asset_id = on_day.asset_id
WHERE dd.day >= (({T_FROM}) AT TIME ZONE 'UTC')::date AND dd.day <= (({T_TO}) AT TIME ZONE 'UTC')::date
  AND {ASSET_SCOPE}
GROUP BY 1
ORDER BY conformance NULLS LAST, carrier
""")


def _clock_skew(src: _Src) -> str:
    # Per in-scope device with readings in the range: readings, those flagged with the device clock ahead
    # of the receive time (flags bit 0), and their share. Summed per series first, so the device's scope
    # is looked up once a series, not once a bucket.
    return _sql(f"""
WITH {SCOPE_CTE},
{_mounted("true")},
per_series AS (
    SELECT b.series_id, sum(b.readings) AS readings, sum(b.skewed) AS skewed
    FROM {src.exact(SCOPED_SERIES)} b
    GROUP BY b.series_id
)
SELECT s.device_id, sum(p.readings)::bigint AS readings, sum(p.skewed)::bigint AS skewed,
       (sum(p.skewed)::double precision / sum(p.readings)) AS skewed_share
FROM per_series p
JOIN series s ON s.series_id = p.series_id
WHERE {device_scope("s.device_id")}
GROUP BY s.device_id
HAVING sum(p.readings) > 0
ORDER BY skewed_share DESC, s.device_id
""")


# --- Variables -------------------------------------------------------------------------------------------

VAR_CARRIER: Final = _sql("""
SELECT party_id AS __value, name AS __text FROM party WHERE role = 'carrier' ORDER BY name, party_id
""")
VAR_SITE: Final = _sql("""
SELECT DISTINCT l.location_id AS __value, l.name AS __text
FROM location l JOIN asset a ON a.location_id = l.location_id
ORDER BY 2, 1
""")
VAR_ASSET_KIND: Final = _sql("SELECT DISTINCT kind AS __value, kind AS __text FROM asset ORDER BY 1")
VAR_PRODUCT_CLASS: Final = _sql("""
SELECT product_class AS __value, product_class || ' — ' || description AS __text
FROM rule_class ORDER BY 1
""")
# The assets matching the other four variables.
VAR_ASSET: Final = _sql(f"""
SELECT sc.asset_id AS __value, sc.asset_name AS __text
FROM v_asset_scope sc
WHERE {" AND ".join(_clause(v) for v in VARIABLES if v != "asset")}
ORDER BY 2, 1
""")

# --- Alert rules (no variables: an alert sees the whole fleet) -------------------------------------------

# Each asset with an open excursion: minutes since the oldest one began, at $__timeTo().
ALERT_OPEN_EXCURSION_MINUTES: Final = _sql(f"""
SELECT e.asset_id, max(extract(epoch FROM {T_TO} - e.start_time) / 60.0)::double precision AS minutes
FROM excursion e
WHERE e.open AND e.asset_id IS NOT NULL AND e.start_time <= {T_TO}
GROUP BY e.asset_id
ORDER BY e.asset_id
""")
# Each mounted device silent at $__timeTo() beyond its allowed interval: the seconds beyond it.
ALERT_SILENT_DEVICES: Final = _sql(f"""
SELECT d.device_id,
       (extract(epoch FROM {T_TO} - COALESCE(d.last_seen, d.mounted_from)) - d.allowed_s)::double precision
           AS silent_s_over
FROM device_last_seen({T_TO}) d
WHERE NOT {ONLINE}
  AND extract(epoch FROM {T_TO} - COALESCE(d.last_seen, d.mounted_from)) > d.allowed_s
ORDER BY d.device_id
""")


def _panels(src: _Src) -> dict[str, str]:
    return {
        "FLEET_POSITIONS": _fleet_positions(),
        "FLEET_DEVICES_ONLINE": FLEET_DEVICES_ONLINE,
        "FLEET_LOW_BATTERY": FLEET_LOW_BATTERY,
        "FLEET_OPEN_ALARMS": FLEET_OPEN_ALARMS,
        "FLEET_READINGS_PER_MINUTE": _readings_per_minute(src),
        "ASSET_TEMPERATURE": _asset_channel(src, "sm.is_temp", "temp_c"),
        "ASSET_LIMITS": ASSET_LIMITS,
        "ASSET_HUMIDITY": _asset_channel(src, "sm.channel = 'rh'", "rh_pct"),
        "ASSET_SETPOINT": _asset_channel(src, "sm.channel = 'setpoint'", "setpoint_c"),
        "ASSET_EVENT_ANNOTATIONS": _event_annotations(src),
        "ASSET_VERDICT_ANNOTATIONS": ASSET_VERDICT_ANNOTATIONS,
        "ASSET_RECEIVE_LAG": _receive_lag(src, asset=True),
        "ASSET_LOTS": ASSET_LOTS,
        "ALARMS_OPEN": ALARMS_OPEN,
        "ALARMS_OVER_TIME": ALARMS_OVER_TIME,
        "ALARMS_RESPONSE": ALARMS_RESPONSE,
        "COMPLIANCE_BY_CLASS": _compliance(src, "COALESCE(product_class, '(no class)')"),
        "COMPLIANCE_BY_CARRIER": _compliance(src, "COALESCE(carrier_name, '(no carrier)')"),
        "COMPLIANCE_BY_SITE": _compliance(src, "COALESCE(site_name, '(no site)')"),
        "COMPLIANCE_OVER_TIME": _compliance_over_time(src),
        "LOTS_BROKEN_PER_WEEK": LOTS_BROKEN_PER_WEEK,
        "TOP_EXCURSION_ASSETS": _top_excursion_assets(src),
        "DQ_SEQ_GAP_RATE": DQ_SEQ_GAP_RATE,
        "DQ_DEAD_LETTERS_BY_REASON": DQ_DEAD_LETTERS_BY_REASON,
        "DQ_RECEIVE_LAG_P95": _receive_lag(src, asset=False),
        "DQ_SILENT_DEVICES": DQ_SILENT_DEVICES,
        "DQ_CLOCK_SKEW": _clock_skew(src),
        "DQ_CALIBRATION_OVERDUE": DQ_CALIBRATION_OVERDUE,
        "DQ_CARRIER_CONFORMANCE": DQ_CARRIER_CONFORMANCE,
    }


# name -> SQL of every panel query, through the rollups; PANELS_RAW: the same panels on the raw rows.
PANELS: Final[dict[str, str]] = _panels(_Src(raw=False))
PANELS_RAW: Final[dict[str, str]] = _panels(_Src(raw=True))

FLEET_POSITIONS: Final = PANELS["FLEET_POSITIONS"]
FLEET_READINGS_PER_MINUTE: Final = PANELS["FLEET_READINGS_PER_MINUTE"]
ASSET_TEMPERATURE: Final = PANELS["ASSET_TEMPERATURE"]
ASSET_HUMIDITY: Final = PANELS["ASSET_HUMIDITY"]
ASSET_SETPOINT: Final = PANELS["ASSET_SETPOINT"]
ASSET_EVENT_ANNOTATIONS: Final = PANELS["ASSET_EVENT_ANNOTATIONS"]
ASSET_RECEIVE_LAG: Final = PANELS["ASSET_RECEIVE_LAG"]
COMPLIANCE_BY_CLASS: Final = PANELS["COMPLIANCE_BY_CLASS"]
COMPLIANCE_BY_CARRIER: Final = PANELS["COMPLIANCE_BY_CARRIER"]
COMPLIANCE_BY_SITE: Final = PANELS["COMPLIANCE_BY_SITE"]
COMPLIANCE_OVER_TIME: Final = PANELS["COMPLIANCE_OVER_TIME"]
TOP_EXCURSION_ASSETS: Final = PANELS["TOP_EXCURSION_ASSETS"]
DQ_RECEIVE_LAG_P95: Final = PANELS["DQ_RECEIVE_LAG_P95"]
DQ_CLOCK_SKEW: Final = PANELS["DQ_CLOCK_SKEW"]

VARIABLE_QUERIES: Final[dict[str, str]] = {
    "carrier": VAR_CARRIER,
    "site": VAR_SITE,
    "asset_kind": VAR_ASSET_KIND,
    "product_class": VAR_PRODUCT_CLASS,
    "asset": VAR_ASSET,
}
ALERTS: Final[dict[str, str]] = {
    "ALERT_OPEN_EXCURSION_MINUTES": ALERT_OPEN_EXCURSION_MINUTES,
    "ALERT_SILENT_DEVICES": ALERT_SILENT_DEVICES,
}


# --- Grafana's expansion ---------------------------------------------------------------------------------

_MACRO_ARGS = re.compile(r"\$__timeFilter\(([^)]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


def _rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError(f"time range bound {t!r} has no time zone")
    return t.astimezone(UTC).strftime("'%Y-%m-%dT%H:%M:%SZ'")


def quote_values(values: list[str] | None) -> str:
    """A multi-value variable as Grafana's PostgreSQL datasource writes it: each value single-quoted (a
    quote doubled), comma-separated; None (All) as the custom all value '__all', unformatted."""
    if values is None:
        return ALL_VALUE
    if not values:
        raise ValueError("a multi-value variable needs a value, or None for All")
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def expand(
    sql: str,
    *,
    t_from: datetime,
    t_to: datetime,
    interval_ms: int,
    variables: Mapping[str, list[str] | None],
) -> str:
    """`sql` as Grafana's PostgreSQL datasource sends it for the range [t_from, t_to] (whole seconds,
    UTC): $__timeFilter(col) -> col BETWEEN '<from>' AND '<to>', $__timeFrom() / $__timeTo() -> the
    quoted RFC 3339 instant, $__interval_ms -> the bucket width in ms, and each variable ($name, ${name},
    [[name]]) -> its values (None: All). A variable or macro it does not know is an error."""
    if interval_ms <= 0:
        raise ValueError("interval_ms must be > 0")
    f, t = _rfc3339(t_from), _rfc3339(t_to)
    out = _MACRO_ARGS.sub(lambda m: f"{m.group(1).strip()} BETWEEN {f} AND {t}", sql)
    out = out.replace("$__timeFrom()", f).replace("$__timeTo()", t)
    out = out.replace("$__interval_ms", str(interval_ms))

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name.startswith("__") or name not in variables:
            raise ValueError(f"unknown macro or variable ${name}")
        return quote_values(variables[name])

    return _VARIABLE.sub(variable, out)


ALL: Final[dict[str, list[str] | None]] = dict.fromkeys(VARIABLES)

# Grafana's interval rounding (rangeutil.roundInterval): (below this many ms, the interval), in order.
_ROUNDING: Final = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000), (3_500, 2_000),
    (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000),
    (90_000, 60_000), (210_000, 120_000), (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000),
    (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
    (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)  # fmt: skip
# The datasource's minimum interval: readings come once a minute at most often.
MIN_INTERVAL_MS: Final = 60_000


def interval_ms(t_from: datetime, t_to: datetime, max_points: int = 1_000) -> int:
    """$__interval_ms as Grafana computes it for a range: the range over the panel's data points,
    rounded as Grafana rounds it, never under the datasource's minimum interval (1 min)."""
    raw = (t_to - t_from).total_seconds() * 1000 / max_points
    rounded = next((ms for below, ms in _ROUNDING if raw < below), 31_536_000_000)
    return max(rounded, MIN_INTERVAL_MS)

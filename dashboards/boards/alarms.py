"""Stage 4 (dashboards): Alarms: what is open, how the count moves, how fast carriers respond."""

from __future__ import annotations

from grafana_foundation_sdk.models import common as cm

from dashboards import queries
from dashboards.boards import common as c
from dashboards.boards.common import bi

UID = "coldchain-alarms"

# alarm.severity (rules/migrations/0003_alarms_history.sql).
SEVERITIES: dict[str, tuple[str, str]] = {
    "critical": (bi("严重", "Critical"), "red"),
    "warning": (bi("警告", "Warning"), "orange"),
    "info": (bi("提示", "Info"), "blue"),
}
STATES: dict[str, tuple[str, str]] = {
    "open": (bi("未确认", "Open"), "red"),
    "acknowledged": (bi("已确认", "Acknowledged"), "orange"),
    "resolved": (bi("已解决", "Resolved"), "green"),
}


def dashboard() -> c.Json:
    open_alarms = (
        c.sql_table(
            bi("未关闭告警", "Open alarms"),
            "Alarms of assets in scope not resolved at the end of the range, most severe and oldest first: "
            "severity, age (seconds since it opened, shown as a duration), state, who acknowledged it, the "
            "asset, its product class, the kind of verdict and its reason.",
            queries.ALARMS_OPEN,
        )
        .override_by_name(
            "severity",
            [
                c.prop("mappings", c.value_text(SEVERITIES)),
                c.prop("custom.cellOptions", {"type": "color-text"}),
            ],
        )
        .override_by_name("state", [c.prop("mappings", c.value_text(STATES))])
        .override_by_name(
            "age_s",
            [
                c.prop("unit", "s"),
                c.prop("custom.cellOptions", {"type": "color-text"}),
                c.prop("thresholds", c.steps((None, "text"), (1800, "orange"), (7200, "red"))),
            ],
        )
        .grid_pos(c.at(0, 0, 24, 10))
    )
    over_time = (
        c.sql_timeseries(
            bi("告警趋势", "Alarms over time"),
            "Alarms raised per bucket, by severity, for assets in scope.",
            queries.ALARMS_OVER_TIME,
            "short",
        )
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(c.stacking_normal())
        .grid_pos(c.at(0, 10, 24, 8))
    )
    for name, (_text, color) in SEVERITIES.items():
        over_time = over_time.override_by_name(
            name, [c.prop("color", {"mode": "fixed", "fixedColor": color})]
        )
    response = (
        c.sql_table(
            bi("确认与解决时长（按承运商）", "Time to acknowledge and resolve, per carrier"),
            "Per carrier, the alarms raised in the range and the median and 95th percentile of the time from "
            "raising to acknowledgement and to resolution (alarms not yet acknowledged or resolved are left "
            "out of those percentiles).",
            queries.ALARMS_RESPONSE,
        )
        .override_by_regexp("^(ack|resolve)_p(50|95)_s$", [c.prop("unit", "s")])
        .grid_pos(c.at(0, 18, 24, 8))
    )
    return c.to_json(
        c.board(UID, "告警", "Alarms", "Alarms raised by the rules stage and how operators respond to them.")
        .variables(c.scope_variables())
        .with_panel(open_alarms)
        .with_panel(over_time)
        .with_panel(response)
    )

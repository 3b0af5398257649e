"""Stage 4 (dashboards): Compliance (温度达标率): monitored time in range over monitored time, broken lots."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common as cm

from dashboards import queries
from dashboards.boards import common as c
from dashboards.boards.common import bi

UID = "coldchain-compliance"

# Colour of a compliance rate (0..1): the target is every monitored minute in range.
RATE_STEPS = ((None, "red"), (0.95, "orange"), (0.99, "yellow"), (0.999, "green"))


def _rate_table(title: str, group: str, sql: str, x: int) -> table.Panel:
    return (
        c.sql_table(
            title,
            f"Per {group}: monitored time (minutes holding at least one temperature reading) in the range, "
            "the part of it inside the product class's limits, and their ratio, the compliance rate.",
            sql,
        )
        .override_by_regexp("^(monitored|in_range)_s$", [c.prop("unit", "s")])
        .override_by_name(
            "rate",
            [
                c.prop("unit", "percentunit"),
                c.prop("decimals", 2),
                c.prop("min", 0),
                c.prop("max", 1),
                c.prop("thresholds", c.steps(*RATE_STEPS)),
                c.prop("custom.cellOptions", {"type": "gauge", "mode": "basic", "valueDisplayMode": "text"}),
            ],
        )
        .override_by_name("group_name", [c.prop("displayName", bi("分组", "Group"))])
        .grid_pos(c.at(x, 0, 8, 9))
    )


def dashboard() -> c.Json:
    over_time = (
        c.sql_timeseries(
            bi("温度达标率趋势（按类别）", "Compliance rate over time, per class"),
            "Per product class and bucket: monitored time in range over monitored time.",
            queries.COMPLIANCE_OVER_TIME,
            "percentunit",
        )
        .min(0)
        .max(1)
        .decimals(2)
        .thresholds(c.thresholds(*RATE_STEPS))
        .grid_pos(c.at(0, 9, 24, 8))
    )
    broken = (
        c.sql_timeseries(
            bi("每周断链批次", "Lots broken per week"),
            "Lots with at least one chain break (gap, excursion beyond allowance, unmonitored handoff, "
            "power or door), counted in the week the first break started.",
            queries.LOTS_BROKEN_PER_WEEK,
            "short",
        )
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .grid_pos(c.at(0, 17, 12, 8))
    )
    top = (
        c.sql_table(
            bi("超限时长最多的资产", "Assets with the most excursion minutes"),
            "Assets in scope ranked by the minutes their excursions overlapped the range, with the number "
            "of excursions.",
            queries.TOP_EXCURSION_ASSETS,
        )
        .override_by_name("excursion_minutes", [c.prop("unit", "m")])
        .grid_pos(c.at(12, 17, 12, 8))
    )
    return c.to_json(
        c.board(
            UID,
            "温度达标率",
            "Compliance rate",
            "Monitored time in range over monitored time, per class, carrier and site; broken lots.",
        )
        .variables(c.scope_variables())
        .with_panel(
            _rate_table(
                bi("达标率（按类别）", "Compliance per class"),
                "product class",
                queries.COMPLIANCE_BY_CLASS,
                0,
            )
        )
        .with_panel(
            _rate_table(
                bi("达标率（按承运商）", "Compliance per carrier"),
                "carrier",
                queries.COMPLIANCE_BY_CARRIER,
                8,
            )
        )
        .with_panel(
            _rate_table(bi("达标率（按站点）", "Compliance per site"), "site", queries.COMPLIANCE_BY_SITE, 16)
        )
        .with_panel(over_time)
        .with_panel(broken)
        .with_panel(top)
    )

"""Stage 4 (dashboards): Data quality: sequence gaps, dead letters, lag, silent devices, clock skew,
calibration."""

from __future__ import annotations

from dashboards import queries
from dashboards.boards import common as c
from dashboards.boards.common import bi

UID = "coldchain-quality"


def dashboard() -> c.Json:
    gaps = (
        c.sql_table(
            bi("序号缺口率（按设备）", "Sequence-gap rate per device"),
            "Per device: readings received in the range, readings its (boot, seq) numbering says it produced "
            "but never arrived, and the share missing.",
            queries.DQ_SEQ_GAP_RATE,
        )
        .override_by_name(
            "gap_rate",
            [
                c.prop("unit", "percentunit"),
                c.prop("decimals", 2),
                c.prop("custom.cellOptions", {"type": "color-text"}),
                c.prop("thresholds", c.steps((None, "green"), (0.001, "orange"), (0.01, "red"))),
            ],
        )
        .grid_pos(c.at(0, 0, 12, 9))
    )
    dead = c.sql_table(
        bi("死信（按原因）", "Dead letters by reason"),
        "Messages the gateway refused in the range (kept with their payload), counted by reason.",
        queries.DQ_DEAD_LETTERS_BY_REASON,
    ).grid_pos(c.at(12, 0, 12, 9))
    lag = (
        c.sql_timeseries(
            bi("接收延迟 P95", "Receive lag p95"),
            "95th percentile of the seconds between device time and arrival at the gateway per bucket, over "
            "the devices of assets in scope (from the rollups' lag histogram; above 3600 s it reads > 1 h).",
            queries.DQ_RECEIVE_LAG_P95,
            "s",
        )
        .thresholds(c.thresholds((None, "green"), (60, "orange"), (300, "red")))
        .grid_pos(c.at(0, 9, 24, 8))
    )
    silent = (
        c.sql_table(
            bi("超时静默设备", "Devices silent beyond their interval"),
            "Devices whose last reading is older, at the end of the range, than their recording interval "
            "allows: when they were last seen, for how long they have been silent and how long they may be.",
            queries.DQ_SILENT_DEVICES,
        )
        .override_by_regexp("^(silent|allowed)_s$", [c.prop("unit", "s")])
        .grid_pos(c.at(0, 17, 12, 9))
    )
    skew = (
        c.sql_table(
            bi("时钟偏差", "Clock skew"),
            "Per device: readings in the range, those flagged because the device's clock was ahead of the "
            "gateway's receive time, and their share.",
            queries.DQ_CLOCK_SKEW,
        )
        .override_by_name("skewed_share", [c.prop("unit", "percentunit"), c.prop("decimals", 2)])
        .grid_pos(c.at(12, 17, 12, 9))
    )
    calibration = (
        c.sql_table(
            bi("校准过期设备", "Devices past their calibration date"),
            "Devices mounted on assets in scope at the end of the range whose calibration was due before "
            "that day: the rules stage judges their readings indeterminate, never a pass, until they are "
            "calibrated again (GB 31605-2020 and the drug GSP require calibrated monitoring devices).",
            queries.DQ_CALIBRATION_OVERDUE,
        )
        .override_by_name("days_overdue", [c.prop("unit", "d")])
        .grid_pos(c.at(0, 26, 24, 8))
    )
    conformance = (
        c.sql_table(
            bi("规范符合率与序号缺失率（按承运人）", "Conformance and sequence loss per carrier"),
            "Per carrier, over the days of the range: messages the gateway received from its devices and "
            "accepted (the scorecard's conformance rate), readings counted by (boot, seq) and those missing "
            "(its sequence loss rate). `coldchain scorecard` and GET /scorecards give every indicator.",
            queries.DQ_CARRIER_CONFORMANCE,
        )
        .override_by_regexp(
            "^(conformance|seq_loss)$", [c.prop("unit", "percentunit"), c.prop("decimals", 2)]
        )
        .grid_pos(c.at(0, 34, 24, 8))
    )
    return c.to_json(
        c.board(
            UID,
            "数据质量",
            "Data quality",
            "Whether the telemetry can be trusted: gaps, refusals, lag, silence, clocks, calibration.",
        )
        .variables(c.scope_variables())
        .with_panel(gaps)
        .with_panel(dead)
        .with_panel(lag)
        .with_panel(silent)
        .with_panel(skew)
        .with_panel(calibration)
        .with_panel(conformance)
    )

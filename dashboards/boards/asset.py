"""Stage 4 (dashboards): Asset detail: temperature against class limits, events, verdicts, lag, lots."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import queries
from dashboards.boards import common as c
from dashboards.boards.common import bi

UID = "coldchain-asset"

# The web app the data links open (the inspector's trace page); a textbox, so each site can point its
# dashboards at its own address (?var-web_base=https://… in the URL, or edit the variable).
WEB_BASE_DEFAULT = "http://127.0.0.1:8000"
TRACE_LINK = "${web_base}${__data.fields.trace_path}"


def _limit_band() -> dm.DataTransformerConfig:
    """ASSET_LIMITS (refId B) becomes thresholds of the temperature series (refId A).

    "Config from query results" reduces each mapped column of B (last non-null row) and adds it as one
    threshold step of every field of A: low_c in blue (colder than the class allows below the line),
    high_c in red. A class without a low limit (frozen) has low_c NULL and gets only the red line."""
    return dm.DataTransformerConfig(
        id_val="configFromData",
        options={
            "configRefId": "B",
            "applyTo": {"id": "byFrameRefID", "options": "A"},
            "mappings": [
                {"fieldName": "asset_name", "handlerKey": "__ignore"},
                {
                    "fieldName": "low_c",
                    "handlerKey": "threshold1",
                    "handlerArguments": {"threshold": {"color": "blue"}},
                    "reducerId": "lastNotNull",
                },
                {
                    "fieldName": "high_c",
                    "handlerKey": "threshold1",
                    "handlerArguments": {"threshold": {"color": "red"}},
                    "reducerId": "lastNotNull",
                },
            ],
        },
    )


def _temperature() -> timeseries.Panel:
    return (
        c.sql_timeseries(
            bi("各探头温度与类别限值", "Temperature per probe, with class limits"),
            "Average temperature per bucket of each temperature channel (temp, temp:<probe>) of the devices "
            "mounted on the asset at the time. The dashed lines are the limits of the asset's product class "
            "(ASSET_LIMITS, applied as thresholds by the 'Config from query results' transformation): blue "
            "the low limit, red the high limit. With several assets selected the lines are those of the last "
            "one listed.",
            queries.ASSET_TEMPERATURE,
            "celsius",
            points=c.DETAIL_POINTS,
        )
        .with_target(c.Sql(queries.ASSET_LIMITS).format("table").ref_id("B"))
        .with_transformation(_limit_band())
        .decimals(1)
        .thresholds(c.thresholds((None, "transparent")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED))
        .grid_pos(c.at(0, 0, 24, 10))
    )


def _lots() -> table.Panel:
    link = (
        db.DashboardLink(bi("打开追溯页面", "Open the trace page"))
        .url(TRACE_LINK)
        .target_blank(True)
        .tooltip(bi("批次追溯", "Lot trace"))
    )
    return (
        c.sql_table(
            bi("承运批次", "Lots carried"),
            "Lots the asset carried (ASSET_LOTS) with the first and last time they were seen on it. The lot "
            "id links to the web app's trace page: ${web_base} (dashboard variable, default "
            f"{WEB_BASE_DEFAULT}) followed by the row's trace_path.",
            queries.ASSET_LOTS,
        )
        .override_by_name("lot_id", [c.prop("links", [link.build()])])
        .grid_pos(c.at(0, 26, 24, 8))
    )


def dashboard() -> c.Json:
    humidity = (
        c.sql_timeseries(
            bi("相对湿度", "Relative humidity"),
            "Average relative humidity per bucket of each humidity channel (rh) on the asset.",
            queries.ASSET_HUMIDITY,
            "humidity",
            points=c.DETAIL_POINTS,
        )
        .min(0)
        .max(100)
        .grid_pos(c.at(0, 10, 12, 8))
    )
    setpoint = c.sql_timeseries(
        bi("设定温度", "Setpoint"),
        "The reefer controller's setpoint over time, as reported in its setpoint events.",
        queries.ASSET_SETPOINT,
        "celsius",
        points=c.DETAIL_POINTS,
    ).grid_pos(c.at(12, 10, 12, 8))
    lag = (
        c.sql_timeseries(
            bi("接收延迟", "Receive lag"),
            "Seconds between a reading's device time and its arrival at the gateway: 95th percentile "
            "(from the rollups' lag histogram: the smallest bound holding 95 % of the bucket's readings) "
            "and maximum, per bucket.",
            queries.ASSET_RECEIVE_LAG,
            "s",
            points=c.DETAIL_POINTS,
        )
        .thresholds(c.thresholds((None, "green"), (300, "red")))
        .grid_pos(c.at(0, 18, 24, 8))
    )
    return c.to_json(
        c.board(
            UID,
            "资产详情",
            "Asset detail",
            "One asset's temperatures against its class limits, with its events and verdicts.",
        )
        .variables(
            [
                *c.scope_variables(),
                db.TextBoxVariable("web_base")
                .label(bi("Web 地址", "Web app URL"))
                .description("Base URL of the cold-chain web app; the lot links open its trace page.")
                .default_value(WEB_BASE_DEFAULT)
                .current(dm.VariableOption(selected=True, text=WEB_BASE_DEFAULT, value=WEB_BASE_DEFAULT)),
            ]
        )
        .annotation(
            c.sql_annotation(
                bi("门、除霜、断电", "Door, defrost, power"), queries.ASSET_EVENT_ANNOTATIONS, "blue"
            )
        )
        .annotation(
            c.sql_annotation(
                bi("超限与断链", "Excursions and breaks"), queries.ASSET_VERDICT_ANNOTATIONS, "red"
            )
        )
        .with_panel(_temperature())
        .with_panel(humidity)
        .with_panel(setpoint)
        .with_panel(lag)
        .with_panel(_lots())
    )

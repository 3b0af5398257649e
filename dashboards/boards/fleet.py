"""Stage 4 (dashboards): Fleet overview: positions and state, devices, battery, alarms, throughput."""

from __future__ import annotations

from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.builders.common import FrameGeometrySource, MapLayerOptions
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import geomap as gm

from dashboards import queries
from dashboards.boards import common as c
from dashboards.boards.common import bi

UID = "coldchain-fleet"

# FLEET_POSITIONS.state → text and colour, on the map and in its tooltip.
STATES: dict[str, tuple[str, str]] = {
    "in_range": (bi("在范围内", "In range"), "green"),
    "excursion": (bi("温度超限", "In excursion"), "red"),
    "broken": (bi("冷链中断", "Chain broken"), "dark-purple"),
    "offline": (bi("离线", "Offline"), "text"),
}

# Country borders from a GeoJSON file shipped inside Grafana (public/maps/).
BORDERS = "public/maps/countries.geojson"


def offline_basemap() -> MapLayerOptions:
    """The basemap: country borders from a file inside Grafana, so the map needs no tile server and makes
    no request outside the site. For street-level tiles from an intranet server, make this
    `.type("xyz").config({"url": "http://tiles.example.internal/{z}/{x}/{y}.png"})`, or `.type("default")`
    with GF_GEOMAP_DEFAULT_BASELAYER_CONFIG set on the grafana service (docs/grafana.md)."""
    return (
        MapLayerOptions()
        .type("geojson")
        .name(bi("国界（离线）", "Borders (offline)"))
        .config({"src": BORDERS, "rules": [], "style": {"color": {"fixed": "#8080804d"}}})
    )


def _positions_map() -> geomap.Panel:
    markers = (
        MapLayerOptions()
        .type("markers")
        .name(bi("资产位置", "Asset positions"))
        .location(
            FrameGeometrySource()
            .mode(cm.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .tooltip(True)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "state", "fixed": "text"},
                    "opacity": 0.9,
                    "size": {"fixed": 8, "min": 4, "max": 16},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
    )
    return (
        geomap.Panel()
        .title(bi("最新位置与状态", "Last positions and state"))
        .description(
            "Each asset at its last known position (FLEET_POSITIONS), coloured by its state at the end of "
            "the range: in range (green), in an open excursion (red), chain broken (purple), offline, i.e. "
            "silent beyond its devices' expected interval (grey). Basemap: country borders from a file "
            "inside Grafana (public/maps/countries.geojson), so the map needs no internet; Grafana's default "
            "CARTO basemap would load tiles from the internet. For an intranet tile server see "
            "docs/grafana.md."
        )
        .datasource(c.PG)
        .with_target(c.Sql(queries.FLEET_POSITIONS).format("table"))
        .interval(c.MIN_INTERVAL)
        .view(gm_view())
        .controls(
            geomap.ControlsOptions()
            .show_zoom(True)
            .mouse_wheel_zoom(True)
            .show_attribution(True)
            .show_scale(True)
        )
        .basemap(offline_basemap())
        .layers([markers])
        .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
        .override_by_name("state", [c.prop("mappings", c.value_text(STATES))])
        .grid_pos(c.at(0, 0, 16, 14))
    )


def gm_view() -> geomap.MapViewConfig:
    # Fit to the markers; centred on China when there are none.
    return geomap.MapViewConfig().id("fit").lat(35).lon(105).zoom(4).all_layers(True).padding(10)


def dashboard() -> c.Json:
    devices = (
        c.sql_stat(
            bi("设备在线 / 离线", "Devices online / offline"),
            "Devices that reported within their expected recording interval at the end of the range "
            "(online) and those silent beyond it (offline), over the devices mounted on assets in scope.",
            queries.FLEET_DEVICES_ONLINE,
        )
        .thresholds(c.thresholds((None, "green")))
        .override_by_name("online", [c.prop("color", {"mode": "fixed", "fixedColor": "green"})])
        .override_by_name("offline", [c.prop("thresholds", c.steps((None, "green"), (1, "red")))])
        .grid_pos(c.at(16, 0, 8, 4))
    )
    alarms = (
        c.sql_stat(
            bi("未关闭告警", "Open alarms"),
            "Alarms of assets in scope raised before the end of the range and not resolved by then.",
            queries.FLEET_OPEN_ALARMS,
        )
        .thresholds(c.thresholds((None, "green"), (1, "red")))
        .grid_pos(c.at(16, 4, 8, 4))
    )
    battery = (
        c.sql_table(
            bi("低电量设备", "Low battery"),
            "Devices of assets in scope whose last battery reading up to the end of the range is below "
            "20 %, lowest first.",
            queries.FLEET_LOW_BATTERY,
        )
        .override_by_name(
            "battery_pct",
            [
                c.prop("unit", "percent"),
                c.prop("custom.cellOptions", {"type": "color-background"}),
                c.prop("thresholds", c.steps((None, "red"), (10, "orange"))),
            ],
        )
        .grid_pos(c.at(16, 8, 8, 6))
    )
    readings = c.sql_timeseries(
        bi("每分钟读数", "Readings per minute"),
        "Readings stored per minute of device time over the assets in scope, averaged over each bucket "
        "($__interval, at least 1 minute; long ranges read the rollups).",
        queries.FLEET_READINGS_PER_MINUTE,
        "short",
    ).grid_pos(c.at(0, 14, 24, 8))
    return c.to_json(
        c.board(UID, "车队总览", "Fleet overview", "Where every asset is and what needs attention now.")
        .variables(c.scope_variables())
        .with_panel(_positions_map())
        .with_panel(devices)
        .with_panel(alarms)
        .with_panel(battery)
        .with_panel(readings)
    )

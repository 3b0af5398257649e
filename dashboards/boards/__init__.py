"""Stage 4 (dashboards): the six operator dashboards, one module each, built with the Grafana SDK."""

from __future__ import annotations

from collections.abc import Callable

from dashboards.boards import alarms, asset, common, compliance, fleet, quality, stages

# File name under dashboards/grafana/dashboards/ → the function that builds its JSON model.
BOARDS: dict[str, Callable[[], common.Json]] = {
    "coldchain-fleet.json": fleet.dashboard,
    "coldchain-asset.json": asset.dashboard,
    "coldchain-alarms.json": alarms.dashboard,
    "coldchain-compliance.json": compliance.dashboard,
    "coldchain-quality.json": quality.dashboard,
    "coldchain-stages.json": stages.dashboard,
}

"""Tests, stage 4 (dashboards): every metric the Stage-health board and the alert rules read is one a
stage's /metrics really exposes (names taken from the stages' own registries, not from a list)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from rules.metrics import RulesMetrics
from traceability.api.metrics import ApiMetrics
from traceability.metrics import LedgerMetrics

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
METRIC = re.compile(r"\bcoldchain_[a-z0-9_]+")


def exposed(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry serves, as it registered them: a labelled counter not yet counted
    and a gauge not yet set (the ledger's verify_ok before its first verification) included. The registry
    keeps them in a private map; prometheus-client has no public call for it."""
    return set(registry._names_to_collectors)


def test_the_boards_and_rules_read_only_metrics_the_stages_serve(db_url: str) -> None:
    served = (
        exposed(GatewayMetrics().registry)
        | exposed(RulesMetrics(db_url).registry)
        | exposed(LedgerMetrics(db_url).registry)
        | exposed(ApiMetrics().registry)
    )
    used = set(METRIC.findall((GRAFANA / "dashboards" / "coldchain-stages.json").read_text(encoding="utf-8")))
    used |= set(METRIC.findall((GRAFANA / "provisioning" / "alerting" / "coldchain.yaml").read_text("utf-8")))
    assert len(used) >= 10, used
    assert used <= served, sorted(used - served)

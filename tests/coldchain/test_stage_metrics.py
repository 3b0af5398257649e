"""Tests: the runtime serves the rules and ledger workers' /metrics on the ports their settings give, and
none without settings (the embedded runtime of the demo and the tests)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from coldchain.embedded import free_port
from coldchain.runtime import Services
from coldchain.settings import Settings

RULES = {
    "coldchain_rules_queue_depth",
    "coldchain_rules_queue_lag_seconds",
    "coldchain_rules_batch_seconds",
    "coldchain_rules_verdicts",
    "coldchain_rules_alarms",
}
# verify_ok and checkpoint_age_seconds come once a verification has ended and a checkpoint exists
# (tests/traceability/test_ledger_metrics.py).
LEDGER = {
    "coldchain_ledger_queue_depth",
    "coldchain_ledger_queue_lag_seconds",
    "coldchain_ledger_batch_seconds",
    "coldchain_ledger_events_appended",
    "coldchain_ledger_capture_jobs",
    "coldchain_ledger_verify_seconds",
}


def _families(port: int) -> set[str]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return {family.name for family in text_string_to_metric_families(response.text)}


def test_rules_and_ledger_metrics_on_their_settings_ports(db_url: str) -> None:
    rules_port, ledger_port = free_port(), free_port()
    settings = Settings(rules_metrics_port=rules_port, ledger_metrics_port=ledger_port)
    services = Services(db_url, None, stages=("rules", "ledger"), settings=settings)
    services.start()
    try:
        assert _families(rules_port) >= RULES
        assert _families(ledger_port) >= LEDGER
        assert services.liveness()["ledger-verify"]
    finally:
        services.stop()
    for port in (rules_port, ledger_port):  # stopped with their stage
        try:
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"port {port} still serves after stop")


def test_no_metrics_servers_without_settings(db_url: str) -> None:
    services = Services(db_url, None, stages=("rules", "ledger"))
    services.start()
    try:
        assert "ledger-verify" not in services.liveness(), "no timer verifying for nobody"
    finally:
        services.stop()

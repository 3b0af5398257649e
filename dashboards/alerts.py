"""Stage 4 (dashboards): the alert rules, contact point and notification policy, as a provisioning file.

The rules, contact point and policy are built with the Grafana Foundation SDK's alerting models, whose JSON
is the shape of Grafana's alerting provisioning HTTP API (folderUID, ruleGroup, orgID on every rule). File
provisioning (dashboards/grafana/provisioning/alerting/coldchain.yaml, apiVersion 1) wants the same rules
grouped under `groups` with the folder named by title, contact points under `contactPoints` with their
integrations as `receivers`, and the policy tree under `policies`; `provisioning_file()` does that mapping.

Grafana expands $VAR / ${VAR} from its environment in provisioning files, except in a rule's annotations
and query models (read raw): the webhook URL comes from COLDCHAIN_GRAFANA_ALERT_WEBHOOK_URL, and the
annotations' alert templates ({{ $labels.x }}, {{ $values.A }}) and the SQL macros reach Grafana unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as am
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import queries
from dashboards.boards import common as c

Json = dict[str, Any]

# An open excursion older than this many minutes pages the operators (the SQL returns every open
# excursion's age; the rule compares it).
OPEN_EXCURSION_MINUTES = 30
# Gateway commit lag that means ingestion has stalled (seconds since its last committed transaction).
GATEWAY_COMMIT_LAG_S = 120

GROUP_STORAGE = "冷链数据 / Cold-chain data"
GROUP_STAGES = "冷链各阶段 / Cold-chain stages"
EVALUATE_EVERY = "1m"

CONTACT_POINT = "coldchain-webhook"
WEBHOOK_URL_ENV = "COLDCHAIN_GRAFANA_ALERT_WEBHOOK_URL"

EXPR = dm.DataSourceRef(type_val="__expr__", uid="__expr__")


def _window(seconds: int) -> am.RelativeTimeRange:
    return am.RelativeTimeRange(from_val=seconds, to=0)


def _threshold(ref: str, source: str, kind: Literal["gt", "lt"], value: float) -> alerting.Query:
    """Server-side expression: fires for every series/row of `source` with value `kind` `value`."""
    return (
        alerting.Query(ref)
        .datasource_uid(EXPR.uid or "__expr__")
        .relative_time_range(_window(0))
        .model(
            expr.TypeThreshold()
            .ref_id(ref)
            .datasource(EXPR)
            .expression(source)
            .conditions(
                [
                    expr.ExprTypeThresholdConditions().evaluator(
                        expr.ExprTypeThresholdConditionsEvaluator().type(kind).params([value])
                    )
                ]
            )
        )
    )


def _sql(sql: str) -> alerting.Query:
    """A PostgreSQL query in table format: one numeric column is the value, text columns become labels."""
    return (
        alerting.Query("A")
        .datasource_uid(c.PG.uid or "")
        .relative_time_range(_window(600))
        .model(c.Sql(sql).format("table").ref_id("A"))
    )


def _promql(promql: str) -> alerting.Query:
    return (
        alerting.Query("A")
        .datasource_uid(c.PROM.uid or "")
        .relative_time_range(_window(600))
        .model(prometheus.Dataquery().ref_id("A").datasource(c.PROM).expr(promql).instant())
    )


def rules() -> list[tuple[str, list[alerting.Rule]]]:
    """The rule groups, in order: (group name, rules)."""
    excursion = (
        alerting.Rule(c.bi("温度超限未恢复", "Open excursion"))
        .uid("coldchain-open-excursion")
        .with_query(_sql(queries.ALERT_OPEN_EXCURSION_MINUTES))
        .with_query(_threshold("B", "A", "gt", OPEN_EXCURSION_MINUTES))
        .condition("B")
        .for_val("0s")
        # No rows = no open excursion: that is the healthy state, not missing data.
        .no_data_state("OK")
        .exec_err_state("Error")
        .labels({"severity": "critical", "team": "operations"})
        .annotations(
            {
                "summary": "Open excursion on {{ $labels.asset_id }} for {{ $values.A }} min "
                f"(> {OPEN_EXCURSION_MINUTES} min)",
                "summary_zh": "资产 {{ $labels.asset_id }} 温度超限已持续 {{ $values.A }} 分钟"
                f"（超过 {OPEN_EXCURSION_MINUTES} 分钟）",
                "description": "An excursion opened by the rules stage is still out of range. Check the "
                "asset (door, defrost, power, setpoint) on the Asset detail dashboard.",
            }
        )
    )
    silent = (
        alerting.Rule(c.bi("设备超时静默", "Device silent"))
        .uid("coldchain-device-silent")
        .with_query(_sql(queries.ALERT_SILENT_DEVICES))
        .with_query(_threshold("B", "A", "gt", 0))
        .condition("B")
        .for_val("0s")
        .no_data_state("OK")  # no rows = every device within its interval
        .exec_err_state("Error")
        .labels({"severity": "warning", "team": "operations"})
        .annotations(
            {
                "summary": "Device {{ $labels.device_id }} silent {{ $values.A }} s beyond its interval",
                "summary_zh": "设备 {{ $labels.device_id }} 超出记录间隔 {{ $values.A }} 秒未上报",
                "description": "No reading arrived within the device's expected recording interval: "
                "battery, coverage or the device itself. See the Data quality dashboard.",
            }
        )
    )
    gateway = (
        alerting.Rule(c.bi("网关提交停滞", "Gateway commit lag"))
        .uid("coldchain-gateway-commit-lag")
        # Seconds since the last commit while messages wait (0 when none wait): a quiet fleet is no lag.
        .with_query(
            _promql(
                "coldchain_gateway_seconds_since_last_commit"
                " * on(instance, job) (coldchain_gateway_queue_depth > bool 0)"
            )
        )
        .with_query(_threshold("B", "A", "gt", GATEWAY_COMMIT_LAG_S))
        .condition("B")
        .for_val("1m")
        # No series = the gateway is not scraped (down, or Prometheus is): say so, do not stay silent.
        .no_data_state("NoData")
        .exec_err_state("Error")
        .labels({"severity": "critical", "team": "platform"})
        .annotations(
            {
                "summary": "Gateway {{ $labels.instance }} holds messages and has not committed for"
                " {{ $values.A }} s "
                f"(> {GATEWAY_COMMIT_LAG_S} s)",
                "summary_zh": "网关 {{ $labels.instance }} 有待写入的消息，已 {{ $values.A }} 秒未提交"
                f"（超过 {GATEWAY_COMMIT_LAG_S} 秒）",
                "description": "Readings are not reaching the database: check the database, the broker and "
                "the gateway's spool (Stage health dashboard).",
            }
        )
    )
    ledger = (
        alerting.Rule(c.bi("账本校验失败", "Ledger verify failing"))
        .uid("coldchain-ledger-verify")
        .with_query(_promql("coldchain_ledger_verify_ok"))
        .with_query(_threshold("B", "A", "lt", 1))
        .condition("B")
        .for_val("0s")
        .no_data_state("NoData")
        .exec_err_state("Error")
        .labels({"severity": "critical", "team": "platform"})
        .annotations(
            {
                "summary": "The ledger's hash chain failed verification ({{ $labels.instance }})",
                "summary_zh": "账本哈希链校验失败（{{ $labels.instance }}）",
                "description": "coldchain_ledger_verify_ok is 0: an event or checkpoint does not match the "
                "chain. Run `coldchain ledger verify` and keep the database as it is for investigation.",
            }
        )
    )
    return [(GROUP_STORAGE, [excursion, silent]), (GROUP_STAGES, [gateway, ledger])]


def contact_point() -> alerting.ContactPoint:
    """The default receiver: a webhook whose URL is the grafana service's environment variable."""
    return (
        alerting.ContactPoint()
        .uid(CONTACT_POINT)
        .name(CONTACT_POINT)
        .type("webhook")
        .settings({"url": f"${{{WEBHOOK_URL_ENV}}}", "httpMethod": "POST"})
        .disable_resolve_message(False)
    )


def policy() -> alerting.NotificationPolicy:
    """Everything to the webhook, grouped per rule and severity."""
    return (
        alerting.NotificationPolicy()
        .receiver(CONTACT_POINT)
        .group_by(["grafana_folder", "alertname", "severity"])
        .group_wait("30s")
        .group_interval("5m")
        .repeat_interval("4h")
    )


def _plain(model: object) -> Json:
    data: Json = json.loads(JSONEncoder().encode(model))
    return data


# Keys of the HTTP API's rule that file provisioning takes from the group instead.
_GROUP_KEYS = ("folderUID", "ruleGroup", "orgID")


def provisioning_file() -> Json:
    """The alerting provisioning file (apiVersion 1) as a plain structure."""
    groups = []
    for name, group_rules in rules():
        file_rules = []
        for rule in group_rules:
            data = _plain(rule.build())
            for key in _GROUP_KEYS:
                data.pop(key, None)
            data.setdefault("isPaused", False)
            file_rules.append(data)
        groups.append(
            {
                "orgId": 1,
                "name": name,
                "folder": c.FOLDER_TITLE,
                "interval": EVALUATE_EVERY,
                "rules": file_rules,
            }
        )
    receiver = _plain(contact_point().build())
    cp_name = receiver.pop("name")
    return {
        "apiVersion": 1,
        "groups": groups,
        "contactPoints": [{"orgId": 1, "name": cp_name, "receivers": [receiver]}],
        "policies": [{"orgId": 1, **_plain(policy().build())}],
    }

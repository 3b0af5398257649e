"""Tests, stage 4 (dashboards): the alert rules file has Grafana's provisioning format and is consistent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import alerts, build, queries
from dashboards.boards import common as c

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
ALERTING = GRAFANA / build.ALERTING_FILE

CJK = re.compile(r"[\u4e00-\u9fff]")
NO_DATA_STATES = {"Alerting", "NoData", "OK"}
EXEC_ERR_STATES = {"Alerting", "Error", "OK"}
SEVERITIES = {"critical", "warning", "info"}
# Prometheus duration strings as Grafana's provisioning parses them (model.ParseDuration).
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ALERTING.read_text(encoding="utf-8"))
    return data


def provisioned_uids() -> set[str]:
    ds = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "coldchain.yaml").read_text(encoding="utf-8")
    )
    return {d["uid"] for d in ds["datasources"]}


def _rules(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["uid"]: rule for group in doc["groups"] for rule in group["rules"]}


def test_file_is_the_generated_one_and_parses(doc: dict[str, Any]) -> None:
    assert ALERTING.read_text(encoding="utf-8") == build.render_yaml(alerts.provisioning_file())
    assert doc == alerts.provisioning_file()
    assert doc["apiVersion"] == 1
    assert set(doc) == {"apiVersion", "groups", "contactPoints", "policies"}


def test_groups_and_rules_have_the_file_format(doc: dict[str, Any]) -> None:
    uids = provisioned_uids()
    seen_uids = []
    for group in doc["groups"]:
        assert group["orgId"] == 1
        assert group["folder"] == c.FOLDER_TITLE  # the dashboards' folder, by title
        assert DURATION.match(group["interval"]), group["interval"]
        assert group["name"].strip()
        for rule in group["rules"]:
            seen_uids.append(rule["uid"])
            # Keys of the HTTP API's shape that file provisioning does not read must be gone.
            assert not {"folderUID", "ruleGroup", "orgID"} & set(rule), rule["uid"]
            assert CJK.search(rule["title"]), rule["title"]
            assert re.search(r"[A-Za-z]", rule["title"]), rule["title"]
            assert DURATION.match(rule["for"]), rule["for"]
            assert rule["noDataState"] in NO_DATA_STATES
            assert rule["execErrState"] in EXEC_ERR_STATES
            assert rule["isPaused"] is False
            refs = [q["refId"] for q in rule["data"]]
            assert rule["condition"] in refs, rule["uid"]
            assert len(set(refs)) == len(refs)
            for query in rule["data"]:
                assert query["model"]["refId"] == query["refId"]
                if query["datasourceUid"] == "__expr__":
                    assert query["model"]["expression"] in refs  # an expression reads another query
                    continue
                assert query["datasourceUid"] in uids, (rule["uid"], query["datasourceUid"])
                assert query["model"]["datasource"]["uid"] == query["datasourceUid"]
            assert rule["labels"]["severity"] in SEVERITIES
            assert CJK.search(rule["annotations"]["summary_zh"]), rule["uid"]
            assert not CJK.search(rule["annotations"]["summary"]), rule["uid"]
    assert len(seen_uids) == len(set(seen_uids)) == 4


def _threshold(rule: dict[str, Any]) -> tuple[str, float]:
    (cond,) = [q for q in rule["data"] if q["refId"] == rule["condition"]]
    (evaluator,) = [cnd["evaluator"] for cnd in cond["model"]["conditions"]]
    return evaluator["type"], evaluator["params"][0]


def _query(rule: dict[str, Any]) -> dict[str, Any]:
    (query,) = [q for q in rule["data"] if q["datasourceUid"] != "__expr__"]
    model: dict[str, Any] = query["model"]
    return model


def test_the_four_rules(doc: dict[str, Any]) -> None:
    rules = _rules(doc)
    excursion = rules["coldchain-open-excursion"]
    assert _query(excursion)["rawSql"] == queries.ALERT_OPEN_EXCURSION_MINUTES
    assert _query(excursion)["format"] == "table"
    assert _threshold(excursion) == ("gt", alerts.OPEN_EXCURSION_MINUTES) == ("gt", 30)
    assert excursion["noDataState"] == "OK"  # no open excursion returns no rows

    silent = rules["coldchain-device-silent"]
    assert _query(silent)["rawSql"] == queries.ALERT_SILENT_DEVICES
    assert _threshold(silent) == ("gt", 0)
    assert silent["noDataState"] == "OK"

    gateway = rules["coldchain-gateway-commit-lag"]
    # the lag counts only while messages wait: a quiet fleet commits nothing and is no alarm
    assert _query(gateway)["expr"] == (
        "coldchain_gateway_seconds_since_last_commit"
        " * on(instance, job) (coldchain_gateway_queue_depth > bool 0)"
    )
    assert _query(gateway)["instant"] is True
    assert _threshold(gateway) == ("gt", 120)
    assert gateway["noDataState"] == "NoData"  # an unscraped gateway is reported, not ignored

    ledger = rules["coldchain-ledger-verify"]
    assert _query(ledger)["expr"] == "coldchain_ledger_verify_ok"
    assert _threshold(ledger) == ("lt", 1)  # the gauge is 1 or 0
    assert {r["execErrState"] for r in rules.values()} == {"Error"}


def test_webhook_contact_point_and_policy(doc: dict[str, Any]) -> None:
    (cp,) = doc["contactPoints"]
    (receiver,) = cp["receivers"]
    assert receiver["type"] == "webhook"
    assert receiver["settings"]["url"] == "${COLDCHAIN_GRAFANA_ALERT_WEBHOOK_URL}"
    assert receiver["uid"]
    (policy,) = doc["policies"]
    assert policy["receiver"] == cp["name"]
    assert policy["orgId"] == cp["orgId"] == 1
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    env = compose["services"]["grafana"]["environment"]
    assert env["COLDCHAIN_GRAFANA_ALERT_WEBHOOK_URL"].startswith(
        "${COLDCHAIN_GRAFANA_ALERT_WEBHOOK_URL:-http"
    )


def _strings(obj: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [s for i, v in enumerate(obj) for s in _strings(v, f"{path}[{i}]")]
    return [(path, obj)] if isinstance(obj, str) else []


def test_dollar_only_where_grafana_does_not_expand_it(doc: dict[str, Any]) -> None:
    """Grafana expands $VAR in provisioning values, except rule annotations and query models (raw)."""
    raw = re.compile(r"^\.groups\[\d+\]\.rules\[\d+\]\.(annotations|data\[\d+\]\.model)\b")
    expanded = [(p, s) for p, s in _strings(doc) if "$" in s and not raw.match(p)]
    assert expanded == [
        (".contactPoints[0].receivers[0].settings.url", "${COLDCHAIN_GRAFANA_ALERT_WEBHOOK_URL}")
    ]
    # and the annotations do use alert templates, which must reach Grafana unexpanded
    assert any("$labels" in s for p, s in _strings(doc) if ".annotations." in p)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT a.asset_id,\n       x AS minutes\nFROM t\n"
        "WHERE $__timeFilter(time) AND '__all' IN ($carrier)\n",
        "SELECT 1  \n  -- trailing spaces and no final newline",
        "\tindented with a tab\nand 中文 / Chinese",
        "one line: with a colon, # and a hash",
    ],
)
def test_yaml_rendering_keeps_sql_exactly(text: str) -> None:
    """Multi-line SQL is written as a block literal where YAML allows it, and always reads back unchanged."""
    document = {"apiVersion": 1, "groups": [{"rules": [{"data": [{"model": {"rawSql": text}}]}]}]}
    rendered = build.render_yaml(document)
    assert yaml.safe_load(rendered) == document

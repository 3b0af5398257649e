"""Tests, stage 4 (dashboards): the six boards match their code; every SQL they send is a query constant."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import register_dataquery_variant
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel

from dashboards import alerts, build, queries
from dashboards.boards import BOARDS
from dashboards.boards import common as c

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
PROVISIONING = GRAFANA / "provisioning"

UIDS = {
    "coldchain-fleet",
    "coldchain-asset",
    "coldchain-alarms",
    "coldchain-compliance",
    "coldchain-quality",
    "coldchain-stages",
}
SCOPE = ["carrier", "site", "asset_kind", "product_class", "asset"]
VARIABLE_SQL = {
    "carrier": queries.VAR_CARRIER,
    "site": queries.VAR_SITE,
    "asset_kind": queries.VAR_ASSET_KIND,
    "product_class": queries.VAR_PRODUCT_CLASS,
    "asset": queries.VAR_ASSET,
}

# The stages' Prometheus metrics (a histogram's series are <name>_bucket / _sum / _count).
CONTRACT_METRICS = {
    "coldchain_gateway_queue_depth",
    "coldchain_gateway_commit_seconds",
    "coldchain_gateway_seconds_since_last_commit",
    "coldchain_gateway_dead_letters_total",
    "coldchain_rules_queue_depth",
    "coldchain_rules_queue_lag_seconds",
    "coldchain_rules_batch_seconds",
    "coldchain_rules_verdicts_total",
    "coldchain_rules_alarms_total",
    "coldchain_ledger_queue_depth",
    "coldchain_ledger_queue_lag_seconds",
    "coldchain_ledger_batch_seconds",
    "coldchain_ledger_events_appended_total",
    "coldchain_ledger_capture_jobs",
    "coldchain_ledger_checkpoint_age_seconds",
    "coldchain_ledger_verify_ok",
    "coldchain_ledger_verify_seconds",
    "coldchain_api_requests_total",
    "coldchain_api_request_seconds",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# What the brief asks Stage health to show, at least.
STAGE_METRICS_SHOWN = CONTRACT_METRICS - {
    "coldchain_rules_alarms_total",
    "coldchain_ledger_events_appended_total",
    "coldchain_ledger_verify_seconds",
}

CJK = re.compile(r"[\u4e00-\u9fff]")
ASCII_LETTER = re.compile(r"[A-Za-z]")


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    """The committed dashboard files, by uid (the drift test proves they are what the code makes)."""
    out = {}
    for name in BOARDS:
        data = json.loads((GRAFANA / "dashboards" / name).read_text(encoding="utf-8"))
        out[data["uid"]] = data
    return out


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def sql_of(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, where, rawSql) of every SQL the dashboard sends: panel targets, annotations, variables."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if "rawSql" in target:
                yield "panel", f"{panel['title']} / {target['refId']}", target["rawSql"]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        target = annotation.get("target") or {}
        if "rawSql" in target:
            yield "annotation", annotation["name"], target["rawSql"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query" and variable["datasource"]["uid"] == c.PG.uid:
            yield "variable", variable["name"], variable["query"]


def _raw_sql_anywhere(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        if isinstance(obj.get("rawSql"), str):
            yield obj["rawSql"]
        for value in obj.values():
            yield from _raw_sql_anywhere(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _raw_sql_anywhere(value)


def query_constants() -> dict[str, str]:
    """Every SQL constant of dashboards.queries, by name."""
    return {
        name: value
        for name, value in vars(queries).items()
        if name.isupper() and isinstance(value, str) and not name.startswith("_")
    }


def _datasource_refs(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        ds = obj.get("datasource")
        if isinstance(ds, dict):
            yield ds
        for value in obj.values():
            yield from _datasource_refs(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _datasource_refs(value)


def provisioned_datasources() -> dict[str, str]:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "coldchain.yaml").read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    return {ds["uid"]: ds["type"] for ds in doc["datasources"]}


def bilingual(text: str) -> bool:
    return bool(CJK.search(text)) and bool(ASCII_LETTER.search(text))


# --------------------------------------------------------------------------------------------------
# Generated files vs the code


def test_committed_files_match_generator() -> None:
    assert build.drift() == [], "run `python -m dashboards.build` and commit the files"
    names = {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    assert names == set(BOARDS), "a dashboard file no board generates (or one missing)"


def test_check_cli_passes_on_the_committed_files() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dashboards.build", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_fails_on_drift_and_write_repairs_it(tmp_path: Path) -> None:
    assert build.main(["--check", "--out", str(tmp_path)]) == 1  # missing files are drift
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    for rel, needle in [
        (Path("dashboards") / "coldchain-fleet.json", "coldchain-fleet"),
        (build.ALERTING_FILE, "coldchain-open-excursion"),
    ]:
        path = tmp_path / rel
        original = path.read_text(encoding="utf-8")
        path.write_text(original.replace(needle, "hand-edited", 1), encoding="utf-8")
        assert build.main(["--check", "--out", str(tmp_path)]) == 1
        assert any("hand-edited" in d for d in build.drift(tmp_path))
        path.write_text(original, encoding="utf-8")
    assert build.drift(tmp_path) == []


def test_sql_query_type_round_trips_through_the_sdk(boards: dict[str, dict[str, Any]]) -> None:
    """SqlQuery is a registered cog variant: a dashboard decodes to typed SQL targets and encodes back."""
    register_dataquery_variant(c.sql_variant_config())
    data = boards["coldchain-asset"]
    model = DashboardModel.from_json(data)
    targets = [t for p in model.panels or [] for t in getattr(p, "targets", None) or []]
    assert targets
    assert all(isinstance(t, c.SqlQuery) for t in targets)
    again = json.loads(JSONEncoder().encode(model))
    assert [p["targets"] for p in again["panels"]] == [p["targets"] for p in data["panels"]]


# --------------------------------------------------------------------------------------------------
# The SQL every board sends is one of dashboards.queries' constants


def test_every_sql_is_a_query_constant(boards: dict[str, dict[str, Any]]) -> None:
    panels = set(queries.PANELS.values())
    known = set(query_constants().values())
    seen = 0
    for uid, dashboard in boards.items():
        walked = list(sql_of(dashboard))
        # Nothing holds SQL where the walk does not look.
        assert sorted(s for kind, _, s in walked if kind != "variable") == sorted(
            _raw_sql_anywhere(dashboard)
        ), uid
        for kind, where, sql in walked:
            seen += 1
            if kind == "panel":
                assert sql in panels, f"{uid}: {where}: panel SQL is not in queries.PANELS"
            else:
                assert sql in known, f"{uid}: {kind} {where}: SQL is not a dashboards.queries constant"
    assert seen > 30


def test_every_panel_query_is_on_a_board() -> None:
    used = {sql for build_board in BOARDS.values() for _, _, sql in sql_of(build_board())}
    used |= set(_raw_sql_anywhere(alerts.provisioning_file()))  # should PANELS list the alert queries too
    missing = [name for name, sql in queries.PANELS.items() if sql not in used]
    assert missing == [], f"queries.PANELS entries no dashboard shows: {missing}"


def test_annotations_are_the_asset_queries(boards: dict[str, dict[str, Any]]) -> None:
    found = {
        a["target"]["rawSql"]: a for a in boards["coldchain-asset"]["annotations"]["list"] if "target" in a
    }
    assert set(found) == {queries.ASSET_EVENT_ANNOTATIONS, queries.ASSET_VERDICT_ANNOTATIONS}
    for annotation in found.values():
        assert annotation["enable"] is True
        assert annotation["datasource"]["uid"] == c.PG.uid
        assert annotation["target"]["format"] == "table"


# --------------------------------------------------------------------------------------------------
# Datasources, variables, titles


def test_every_reference_names_a_provisioned_datasource(boards: dict[str, dict[str, Any]]) -> None:
    provisioned = provisioned_datasources()
    assert provisioned == {"coldchain-pg": "grafana-postgresql-datasource", "coldchain-prom": "prometheus"}
    for uid, dashboard in boards.items():
        for ref in _datasource_refs(dashboard):
            assert ref["uid"] in provisioned, (uid, ref)
            assert ref["type"] == provisioned[ref["uid"]], (uid, ref)
        for panel in _panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in provisioned, (uid, panel["title"])
            assert panel["targets"], (uid, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], (uid, panel["title"])


def test_boards_uids_folder_and_links(boards: dict[str, dict[str, Any]]) -> None:
    assert set(boards) == UIDS
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "coldchain.yaml").read_text(encoding="utf-8"))
    (prov,) = provider["providers"]
    assert prov["folder"] == c.FOLDER_TITLE
    assert prov["options"]["path"] == "/var/lib/grafana/dashboards"
    for uid, dashboard in boards.items():
        assert c.TAG in dashboard["tags"], uid
        assert dashboard["description"].endswith(c.GENERATED_NOTE), uid
        assert dashboard["schemaVersion"] == c.SCHEMA_VERSION
        (link,) = dashboard["links"]
        assert link["type"] == "dashboards", uid
        assert link["tags"] == [c.TAG], uid
        assert link["includeVars"] is True, uid
        ids = [p["id"] for p in _panels(dashboard)]
        assert ids == list(range(1, len(ids) + 1)), uid


def test_titles_are_bilingual(boards: dict[str, dict[str, Any]]) -> None:
    for uid, dashboard in boards.items():
        assert bilingual(dashboard["title"]), dashboard["title"]
        for panel in _panels(dashboard):
            assert bilingual(panel["title"]), (uid, panel["title"])
            assert len(panel.get("description", "")) > 20, (uid, panel["title"], "says what it computes")
        for variable in dashboard.get("templating", {}).get("list", []):
            assert bilingual(variable["label"]), (uid, variable["name"])
        for annotation in dashboard.get("annotations", {}).get("list", []):
            assert bilingual(annotation["name"]), (uid, annotation["name"])
    assert boards["coldchain-compliance"]["title"] == "温度达标率 / Compliance rate"


def test_scope_variables_on_every_sql_board(boards: dict[str, dict[str, Any]]) -> None:
    for uid, dashboard in boards.items():
        variables = [v for v in dashboard.get("templating", {}).get("list", []) if v["type"] == "query"]
        if uid == "coldchain-stages":
            assert variables == [], "Stage health has no SQL variables"
            continue
        assert [v["name"] for v in variables] == SCOPE, uid
        for v in variables:
            assert v["query"] == VARIABLE_SQL[v["name"]], (uid, v["name"])
            assert v["multi"] is True, (uid, v["name"])
            assert v["includeAll"] is True, (uid, v["name"])
            # Grafana inserts a custom all value verbatim: the quotes make `'__all' IN ($carrier)` SQL.
            assert v["allValue"] == "'__all'", (uid, v["name"])
            assert v["current"]["value"] == ["$__all"], (uid, v["name"])
            assert v["datasource"] == {"type": c.PG_TYPE, "uid": c.PG.uid}


def test_sql_panels_bucket_at_one_minute_or_more(boards: dict[str, dict[str, Any]]) -> None:
    for uid, dashboard in boards.items():
        for panel in _panels(dashboard):
            if panel["datasource"]["uid"] != c.PG.uid:
                continue
            assert panel.get("interval") == c.MIN_INTERVAL, (uid, panel["title"])
            if panel["type"] == "timeseries":
                points = panel.get("maxDataPoints")
                expected = c.DETAIL_POINTS if uid == "coldchain-asset" else c.TREND_POINTS
                assert points == expected, (uid, panel["title"], points)
            formats = {t["format"] for t in panel["targets"]}
            if panel["type"] == "timeseries":
                assert "time_series" in formats, (uid, panel["title"])
            else:
                assert formats == {"table"}, (uid, panel["title"])


# --------------------------------------------------------------------------------------------------
# Board specifics


def test_fleet_map_colours_by_state(boards: dict[str, dict[str, Any]]) -> None:
    (geomap,) = [p for p in boards["coldchain-fleet"]["panels"] if p["type"] == "geomap"]
    assert [t["rawSql"] for t in geomap["targets"]] == [queries.FLEET_POSITIONS]
    markers = next(layer for layer in geomap["options"]["layers"] if layer["type"] == "markers")
    assert markers["location"] == {"mode": "coords", "latitude": "latitude", "longitude": "longitude"}
    assert markers["config"]["style"]["color"]["field"] == "state"
    (override,) = [o for o in geomap["fieldConfig"]["overrides"] if o["matcher"]["options"] == "state"]
    (mappings,) = [p["value"] for p in override["properties"] if p["id"] == "mappings"]
    options = mappings[0]["options"]
    assert set(options) == {"in_range", "excursion", "broken", "offline"}
    assert options["in_range"]["color"] == "green"
    assert options["excursion"]["color"] == "red"
    assert all(bilingual(o["text"]) for o in options.values())
    # No tile server: the basemap is a file inside Grafana, and the description says so.
    assert geomap["options"]["basemap"]["type"] == "geojson"
    assert geomap["options"]["basemap"]["config"]["src"].startswith("public/maps/")
    assert "internet" in geomap["description"]


def test_asset_lots_link_to_the_trace_page(boards: dict[str, dict[str, Any]]) -> None:
    dashboard = boards["coldchain-asset"]
    (web_base,) = [v for v in dashboard["templating"]["list"] if v["name"] == "web_base"]
    assert web_base["type"] == "textbox"
    assert web_base["query"] == "http://127.0.0.1:8000"
    (lots,) = [p for p in dashboard["panels"] if p["targets"][0]["rawSql"] == queries.ASSET_LOTS]
    links = [
        link
        for o in lots["fieldConfig"]["overrides"]
        for prop in o["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert [link["url"] for link in links] == ["${web_base}${__data.fields.trace_path}"]


def test_asset_temperature_takes_its_band_from_the_limits_query(boards: dict[str, dict[str, Any]]) -> None:
    (panel,) = [
        p
        for p in boards["coldchain-asset"]["panels"]
        if p["targets"][0]["rawSql"] == queries.ASSET_TEMPERATURE
    ]
    refs = {t["rawSql"]: t["refId"] for t in panel["targets"]}
    (config,) = [t for t in panel["transformations"] if t["id"] == "configFromData"]
    assert config["options"]["configRefId"] == refs[queries.ASSET_LIMITS]
    assert config["options"]["applyTo"]["options"] == refs[queries.ASSET_TEMPERATURE]
    mapped = {m["fieldName"]: m["handlerKey"] for m in config["options"]["mappings"]}
    assert mapped["low_c"] == mapped["high_c"] == "threshold1"
    assert panel["fieldConfig"]["defaults"]["unit"] == "celsius"


def _promql(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def metric_names(promql: str) -> set[str]:
    """Metric names of a PromQL expression: identifiers outside label matchers, braces and strings."""
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", promql)
    return {m for m in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", stripped) if m.startswith("coldchain_")}


def allowed_metric(name: str) -> bool:
    base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
    return name in CONTRACT_METRICS or base in CONTRACT_METRICS


def test_stage_health_reads_only_contract_metrics(boards: dict[str, dict[str, Any]]) -> None:
    dashboard = boards["coldchain-stages"]
    shown: set[str] = set()
    for title, expr in _promql(dashboard):
        names = metric_names(expr)
        assert names, (title, expr)
        assert all(allowed_metric(n) for n in names), (title, expr, names)
        shown |= {next((n[: -len(s)] for s in HISTOGRAM_SUFFIXES if n.endswith(s)), n) for n in names}
    assert shown >= STAGE_METRICS_SHOWN, STAGE_METRICS_SHOWN - shown
    for panel in _panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "coldchain-prom"}


def test_metric_name_check_catches_an_unknown_metric() -> None:
    assert metric_names('sum by (le) (rate(coldchain_rules_batch_seconds_bucket{job="x"}[5m]))') == {
        "coldchain_rules_batch_seconds_bucket"
    }
    assert allowed_metric("coldchain_rules_batch_seconds_bucket")
    assert not allowed_metric("coldchain_rules_batch_duration_seconds_bucket")
    assert not allowed_metric("coldchain_gateway_commit_seconds_total")


def test_alert_rule_metric_names_are_contract_metrics() -> None:
    for group in alerts.provisioning_file()["groups"]:
        for rule in group["rules"]:
            for query in rule["data"]:
                expr = query["model"].get("expr")
                if expr:
                    assert all(allowed_metric(n) for n in metric_names(expr)), (rule["title"], expr)

"""Tests, stage 4 (dashboards): `coldchain grafana push` against a stand-in that validates every request
against Grafana's published OpenAPI document and keeps state (tests/grafana_standin.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grafana_standin import EXTRACT, GrafanaStandIn

from dashboards import push as gpush

ROOT = Path(__file__).resolve().parents[2]
REPO_GRAFANA = ROOT / "dashboards" / "grafana"
ALERTING_FIXTURE = ROOT / "tests" / "data" / "grafana-alerting.yaml"
OPENAPI_DIR = ROOT / "tests" / "data" / "grafana-openapi"

ENV = {
    "COLDCHAIN_GRAFANA_DB_HOST": "db.example:5432",
    "COLDCHAIN_GRAFANA_DB_NAME": "coldchain",
    "COLDCHAIN_GRAFANA_DB_USER": "grafana_reader",
    "COLDCHAIN_GRAFANA_DB_PASSWORD": "s3cret-pw",
    "COLDCHAIN_GRAFANA_WEBHOOK_URL": "https://hooks.example/coldchain",
}


def _copy_grafana(target: Path, *, fixture_alerting: bool) -> Path:
    shutil.copytree(REPO_GRAFANA, target)
    alerting = target / "provisioning" / "alerting"
    alerting.mkdir(parents=True, exist_ok=True)
    if fixture_alerting or not list(alerting.glob("*.yaml")):
        for old in alerting.glob("*.yaml"):
            old.unlink()
        shutil.copy(ALERTING_FIXTURE, alerting / "coldchain.yaml")
    return target


@pytest.fixture
def grafana_dir(tmp_path: Path) -> Path:
    """A copy of dashboards/grafana/ with the alerting fixture as its alerting file (tests that change
    or count alerting objects need to know them)."""
    return _copy_grafana(tmp_path / "grafana", fixture_alerting=True)


@pytest.fixture
def repo_grafana_dir(tmp_path: Path) -> Path:
    """A copy of dashboards/grafana/ as the repository has it; the fixture only where the repository
    has no alerting file yet."""
    return _copy_grafana(tmp_path / "grafana", fixture_alerting=False)


def env_for(grafana_dir: Path) -> dict[str, str]:
    """ENV, plus a value for every other ${VAR} / $VAR the files name (so new files need no test edit)."""
    names = set()
    for path in (grafana_dir / "provisioning").rglob("*.yaml"):
        names |= {
            a or b for a, b in re.findall(r"\$\{(\w+)\}|\$([A-Za-z_]\w*)", path.read_text(encoding="utf-8"))
        }
    return {**{n: f"test-{n.lower()}" for n in names}, **ENV}


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    with GrafanaStandIn() as standin:
        yield standin
        assert standin.violations == [], "requests that do not conform to Grafana's OpenAPI document"
        assert standin.response_violations == [], "the stand-in answered outside the document"


def run_push(
    g: GrafanaStandIn, grafana_dir: Path, *, dry_run: bool = False, **env: str
) -> list[gpush.Change]:
    return gpush.push(
        g.url,
        g.token,
        dry_run=dry_run,
        grafana_dir=grafana_dir,
        env={**env_for(grafana_dir), **env},
        timeout=10,
    )


def actions(changes: list[gpush.Change]) -> dict[tuple[str, str], str]:
    return {(c.kind, c.key): c.action for c in changes}


def _dashboard_file(grafana_dir: Path) -> Path:
    return sorted((grafana_dir / "dashboards").glob("*.json"))[0]


# --------------------------------------------------------------------------------------------------
# the push


def test_push_creates_everything_then_a_second_push_writes_nothing(
    grafana: GrafanaStandIn, repo_grafana_dir: Path
) -> None:
    """The repository's own files (its alerting file once there is one) go in whole, then nothing."""
    grafana_dir = repo_grafana_dir
    desired = gpush.load(grafana_dir, env_for(grafana_dir))
    changes = run_push(grafana, grafana_dir)
    # everything is new, the route under the policy tree's root too
    assert {c.action for c in changes} == {"create"}
    assert grafana.folders["coldchain"]["title"] == "冷链 / Cold chain"
    # datasources, with their secrets kept apart, as the files say (variables expanded)
    assert set(grafana.datasources) == {d["uid"] for d in desired.datasources}
    assert "coldchain-pg" in grafana.datasources
    for ds in desired.datasources:
        stored = grafana.datasources[ds["uid"]]
        assert {k: stored[k] for k in ds if k != "secureJsonData"} == {
            k: v for k, v in ds.items() if k != "secureJsonData"
        }
        assert grafana.secrets[ds["uid"]] == ds.get("secureJsonData", {})
    assert grafana.datasources["coldchain-pg"]["url"] == "db.example:5432"
    # every dashboard file, in the folder, as written in the file
    files = {
        json.loads(p.read_text(encoding="utf-8"))["uid"]: p
        for p in (grafana_dir / "dashboards").glob("*.json")
    }
    assert set(grafana.dashboards) == set(files)
    for uid, path in files.items():
        stored = grafana.dashboards[uid]
        assert stored["folderUid"] == "coldchain"
        model = json.loads(path.read_text(encoding="utf-8"))
        assert {k: v for k, v in stored["model"].items() if k not in ("id", "version")} == {
            k: v for k, v in model.items() if k not in ("id", "version")
        }
    # alerting: rule groups in the folder, the contact points, the policy tree
    assert desired.rule_groups
    for group in desired.rule_groups:
        stored_group = grafana.rule_groups[("coldchain", group["title"])]
        assert [r["uid"] for r in stored_group["rules"]] == [r["uid"] for r in group["rules"]]
    for cp in desired.contact_points:
        assert grafana.contact_points[cp["uid"]]["settings"] == cp["settings"]
    if desired.policies is not None:  # a route under Grafana's own root, which stays as it was
        assert grafana.policies["receiver"] == "grafana-default-email"
        assert grafana.policies["routes"] == [gpush.our_route(desired.policies)]

    writes = len(grafana.writes)
    assert writes == len([c for c in changes if c.action != "unchanged"])
    again = run_push(grafana, grafana_dir)
    assert {c.action for c in again} == {"unchanged"}
    assert len(grafana.writes) == writes, "a second push must write nothing"
    assert actions(again).keys() == actions(changes).keys()


def test_file_format_is_mapped_to_the_api(grafana_dir: Path) -> None:
    """What Grafana's file format says differently from its API: a rule's panel link, string matchers,
    the group interval, the folder; the fixture holds each."""
    fixture_dir = grafana_dir.parent / "fixture"
    (fixture_dir / "provisioning" / "alerting").mkdir(parents=True)
    shutil.copy(ALERTING_FIXTURE, fixture_dir / "provisioning" / "alerting" / "a.yaml")
    desired = gpush.load(fixture_dir, ENV)
    (group,) = desired.rule_groups
    assert group["interval"] == 60
    rule = group["rules"][0]
    assert rule["folderUID"] == "coldchain"
    assert rule["ruleGroup"] == group["title"]
    assert rule["annotations"]["__dashboardUid__"] == "coldchain-fleet"
    assert rule["annotations"]["__panelId__"] == "1"
    # as Grafana's file provisioning: a query model is raw, annotations expand ${VAR} only
    assert "$__timeFilter(now())" in rule["data"][0]["model"]["rawSql"]
    assert rule["annotations"]["description"] == "{{ $labels.asset_id }}: open for {{ $values.B }} min"
    assert group["rules"][1]["execErrState"] == "Error"
    assert desired.policies is not None
    assert desired.policies["routes"][1]["object_matchers"] == [["severity", "=~", "warning|info"]]
    assert "matchers" not in desired.policies["routes"][1]
    assert desired.contact_points[0]["settings"]["url"] == ENV["COLDCHAIN_GRAFANA_WEBHOOK_URL"]


def test_secrets_never_appear_in_the_dry_run(grafana: GrafanaStandIn, grafana_dir: Path) -> None:
    run_push(grafana, grafana_dir)
    planned = run_push(
        grafana,
        grafana_dir,
        dry_run=True,
        COLDCHAIN_GRAFANA_DB_USER="other",
        COLDCHAIN_GRAFANA_DB_PASSWORD="n3w-pw",
    )
    (update,) = [c for c in planned if c.action == "update"]
    assert update.kind == "datasource"
    assert '+  "user": "other"' in update.diff
    text = gpush.render(planned, dry_run=True)
    assert "s3cret-pw" not in text
    assert "n3w-pw" not in text


def test_webhook_tokens_in_urls_never_appear_in_the_dry_run(
    grafana: GrafanaStandIn, grafana_dir: Path
) -> None:
    """Chat webhooks (DingTalk, WeCom) carry their access token in the URL's query: masked in diffs."""
    hook = "https://oapi.dingtalk.com/robot/send?access_token="
    run_push(grafana, grafana_dir, COLDCHAIN_GRAFANA_WEBHOOK_URL=hook + "old-t0ken")
    planned = run_push(grafana, grafana_dir, dry_run=True, COLDCHAIN_GRAFANA_WEBHOOK_URL=hook + "n3w-t0ken")
    (update,) = [c for c in planned if c.action == "update"]
    assert update.kind == "contact-point"  # the change is planned, its token is not shown
    text = update.diff + gpush.render(planned, dry_run=True)
    assert "old-t0ken" not in text
    assert "n3w-t0ken" not in text


def test_dry_run_writes_nothing_and_lists_what_would_change(
    grafana: GrafanaStandIn, grafana_dir: Path
) -> None:
    planned = run_push(grafana, grafana_dir, dry_run=True)
    assert grafana.writes == []
    assert grafana.folders == {}
    assert grafana.dashboards == {}
    assert {c.action for c in planned if c.kind != "policies"} == {"create"}
    text = gpush.render(planned, dry_run=True)
    assert "would create" in text
    assert "coldchain-pg" in text

    run_push(grafana, grafana_dir)
    writes = len(grafana.writes)
    path = _dashboard_file(grafana_dir)
    model = json.loads(path.read_text(encoding="utf-8"))
    model["title"] = "Edited title"
    path.write_text(json.dumps(model), encoding="utf-8")
    planned = run_push(grafana, grafana_dir, dry_run=True)
    assert len(grafana.writes) == writes
    updates = [c for c in planned if c.action != "unchanged"]
    assert [(c.kind, c.key, c.action) for c in updates] == [("dashboard", model["uid"], "update")]
    assert '+    "title": "Edited title"' in updates[0].diff
    assert "would update" in gpush.render(planned, dry_run=True)


def test_a_changed_dashboard_file_updates_exactly_that_dashboard(
    grafana: GrafanaStandIn, grafana_dir: Path
) -> None:
    run_push(grafana, grafana_dir)
    path = _dashboard_file(grafana_dir)
    model = json.loads(path.read_text(encoding="utf-8"))
    before = grafana.dashboards[model["uid"]]["model"]["version"]
    model["refresh"] = "5m"
    path.write_text(json.dumps(model), encoding="utf-8")
    writes = len(grafana.writes)

    changes = run_push(grafana, grafana_dir)

    assert [(c.kind, c.key) for c in changes if c.action != "unchanged"] == [("dashboard", model["uid"])]
    new_writes = grafana.writes[writes:]
    assert [(w.method, w.path, w.status) for w in new_writes] == [("POST", "/api/dashboards/db", 200)]
    stored = grafana.dashboards[model["uid"]]["model"]
    assert stored["refresh"] == "5m"
    assert stored["version"] == before + 1
    writes = len(grafana.writes)
    assert {c.action for c in run_push(grafana, grafana_dir)} == {"unchanged"}
    assert len(grafana.writes) == writes


def test_changed_environment_and_alerting_update_only_their_objects(
    grafana: GrafanaStandIn, grafana_dir: Path
) -> None:
    run_push(grafana, grafana_dir)
    alerting = next((grafana_dir / "provisioning" / "alerting").glob("*.yaml"))
    alerting.write_text(
        alerting.read_text(encoding="utf-8").replace("group_wait: 30s", "group_wait: 45s"), "utf-8"
    )
    changes = run_push(grafana, grafana_dir, COLDCHAIN_GRAFANA_DB_HOST="db2.example:5432")
    changed = sorted((c.kind, c.key) for c in changes if c.action == "update")
    assert changed == [("datasource", "coldchain-pg"), ("policies", gpush.OUR_ROUTE_KEY)]
    assert grafana.datasources["coldchain-pg"]["url"] == "db2.example:5432"
    assert grafana.datasources["coldchain-pg"]["version"] == 2
    assert grafana.policies["routes"][0]["routes"][0]["group_wait"] == "45s"  # our route's first sub-route
    assert {
        c.action for c in run_push(grafana, grafana_dir, COLDCHAIN_GRAFANA_DB_HOST="db2.example:5432")
    } == {"unchanged"}


def test_a_shared_grafanas_policy_tree_keeps_its_root_and_other_routes(
    grafana: GrafanaStandIn, grafana_dir: Path
) -> None:
    """The push adds one route (the folder's alerts) under the root; the owners' receiver and routes stay."""
    for name in ("ops-email", "ops-pager"):  # the owners' contact points
        grafana.contact_points[name] = {
            "uid": name,
            "name": name,
            "type": "email",
            "settings": {"addresses": "ops@example.com"},
            "disableResolveMessage": False,
        }
    theirs = {"receiver": "ops-pager", "object_matchers": [["team", "=", "ops"]]}
    grafana.policies = {"receiver": "ops-email", "group_by": ["alertname"], "routes": [theirs]}
    run_push(grafana, grafana_dir)
    assert grafana.policies["receiver"] == "ops-email"
    ours, *rest = grafana.policies["routes"]
    assert ours["object_matchers"] == [["grafana_folder", "=", "冷链 / Cold chain"]]
    assert ours["continue"] is False
    assert rest == [theirs]
    assert {c.action for c in run_push(grafana, grafana_dir)} == {"unchanged"}, "no second route"
    assert len(grafana.policies["routes"]) == 2


def test_a_rule_changed_in_grafana_is_put_back(grafana: GrafanaStandIn, grafana_dir: Path) -> None:
    run_push(grafana, grafana_dir)
    (key, group) = next(iter(grafana.rule_groups.items()))
    group["rules"][0]["title"] = "edited in the UI"
    changes = run_push(grafana, grafana_dir)
    assert [(c.kind, c.key) for c in changes if c.action == "update"] == [("rule-group", key[1])]
    assert grafana.rule_groups[key]["rules"][0]["title"] != "edited in the UI"


# --------------------------------------------------------------------------------------------------
# errors: one line, the right kind


def test_a_bad_token_is_a_clear_error(grafana: GrafanaStandIn, grafana_dir: Path) -> None:
    with pytest.raises(gpush.PushError) as err:
        gpush.push(grafana.url, "glsa_wrong", grafana_dir=grafana_dir, env=ENV, timeout=10)
    assert err.value.kind == "unavailable"
    assert "401" in str(err.value)
    assert "--token" in str(err.value)
    assert grafana.writes == []


def test_a_missing_environment_variable_is_named(grafana: GrafanaStandIn, grafana_dir: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "COLDCHAIN_GRAFANA_DB_PASSWORD"}
    with pytest.raises(gpush.PushError) as err:
        gpush.push(grafana.url, grafana.token, grafana_dir=grafana_dir, env=env, timeout=10)
    assert err.value.kind == "input"
    assert "COLDCHAIN_GRAFANA_DB_PASSWORD is not set" in str(err.value)
    assert grafana.seen == []


def test_a_section_the_push_cannot_apply_is_refused(grafana_dir: Path) -> None:
    alerting = next((grafana_dir / "provisioning" / "alerting").glob("*.yaml"))
    alerting.write_text(
        alerting.read_text(encoding="utf-8") + "\ndeleteRules:\n  - orgId: 1\n    uid: old\n",
        encoding="utf-8",
    )
    with pytest.raises(gpush.PushError) as err:
        gpush.load(grafana_dir, ENV)
    assert str(err.value).endswith("deleteRules: not pushed by `coldchain grafana push`")


def test_an_unreachable_grafana_is_a_clear_error(grafana_dir: Path) -> None:
    with GrafanaStandIn() as standin:
        url = standin.url  # a port that was just listening and is closed once the block ends
    with pytest.raises(gpush.PushError) as err:
        gpush.push(url, "t", grafana_dir=grafana_dir, env=ENV, timeout=5)
    assert err.value.kind == "unavailable"
    assert str(err.value).startswith(f"cannot reach Grafana at {url}")


def test_grafana_refusing_a_write_is_reported_not_raised(grafana: GrafanaStandIn, grafana_dir: Path) -> None:
    grafana.datasources["other"] = {"uid": "other", "name": "Coldchain PostgreSQL", "id": 99, "version": 1}
    with pytest.raises(gpush.PushError) as err:
        run_push(grafana, grafana_dir)
    assert err.value.kind == "refused"
    assert str(err.value).startswith("Grafana refused to create datasource coldchain-pg: 409")


def test_cli_one_line_errors_and_exit_codes(
    grafana: GrafanaStandIn, grafana_dir: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLDCHAIN_", "GRAFANA_"))}
    env.update(env_for(REPO_GRAFANA), COLDCHAIN_HOME=str(tmp_path / "home"))
    base = [sys.executable, "-m", "coldchain.cli", "grafana", "push", "--url", grafana.url]

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, env={**env, **extra}, timeout=120, check=False
        )

    bad = cli("--token", "glsa_wrong")
    assert bad.returncode == 3, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "401" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert grafana.writes == []

    # The CLI reads the repository's files: the dry run lists them and writes nothing.
    dry = cli("--dry-run", GRAFANA_TOKEN=grafana.token)
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout.strip().splitlines()[-1])
    assert summary["dry_run"] is True
    assert summary["created"] >= 2
    assert grafana.writes == []

    missing = {k: v for k, v in env.items() if k != "COLDCHAIN_GRAFANA_DB_HOST"}
    res = subprocess.run(
        [*base, "--token", grafana.token],
        capture_output=True,
        text=True,
        env=missing,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2
    assert "COLDCHAIN_GRAFANA_DB_HOST is not set" in res.stderr


# --------------------------------------------------------------------------------------------------
# the stand-in itself: it refuses what the document does not allow


def test_the_standin_refuses_requests_outside_the_document() -> None:
    with GrafanaStandIn() as g:
        auth = {"Authorization": f"Bearer {g.token}", "Content-Type": "application/json"}
        cases: list[tuple[str, str, Any]] = [
            ("POST", "/api/folders", {"title": 5}),  # wrong type
            ("POST", "/api/folders", {"title": "x", "parentUID": "y"}),  # undeclared property
            ("PUT", "/api/v1/provisioning/folder/f/rule-groups/g", {"rules": [{"title": "no orgID"}]}),
            ("GET", "/api/folders/x?unknown=1", None),  # undeclared query parameter
            ("DELETE", "/api/folders/x", None),  # an operation the push never uses
            ("GET", "/api/nowhere", None),
        ]
        for method, path, body in cases:
            raw = json.dumps(body).encode() if body is not None else b""
            status, _ = g.handle(method, path, auth, raw)
            assert status == 400, (method, path)
        assert len(g.violations) == len(cases)
        assert g.handle("GET", "/api/folders/x", {}, b"")[0] == 401
        assert g.handle("GET", "/api/folders/x", auth, b"")[0] == 404


# --------------------------------------------------------------------------------------------------
# the OpenAPI extract: self-contained, and what extract.py makes


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_the_openapi_extract_is_self_contained_and_remade_by_its_script() -> None:
    sys.path.insert(0, str(OPENAPI_DIR))
    try:
        import extract as script
    finally:
        sys.path.remove(str(OPENAPI_DIR))
    doc = json.loads(EXTRACT.read_text(encoding="utf-8"))
    assert doc["swagger"] == "2.0"
    for ref in _refs(doc):
        assert ref.startswith(("#/definitions/", "#/responses/")), ref
        script.resolve(doc, ref)  # KeyError if it does not resolve
    ops = {(p, m) for p, item in doc["paths"].items() for m in item}
    assert ops == set(script.OPERATIONS)
    assert script.extract(doc) == doc  # nothing unreferenced, nothing missing
    readme = (OPENAPI_DIR / "README.md").read_text(encoding="utf-8")
    assert "public/api-merged.json" in readme
    assert "AGPL-3.0" in readme


def test_the_extract_holds_exactly_the_operations_the_push_uses(
    grafana: GrafanaStandIn, grafana_dir: Path
) -> None:
    """Create, then update everything: the operations the push made are the extract's, all of them."""
    run_push(grafana, grafana_dir)
    grafana.folders["coldchain"]["title"] = "renamed in the UI"
    for cp in grafana.contact_points.values():
        cp["disableResolveMessage"] = True
    for path in (grafana_dir / "dashboards").glob("*.json"):
        model = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**model, "refresh": "10m"}), encoding="utf-8")
    changes = run_push(grafana, grafana_dir, COLDCHAIN_GRAFANA_DB_USER="someone_else")
    assert {c.kind for c in changes if c.action == "update"} == {
        "folder",
        "datasource",
        "dashboard",
        "contact-point",
    }
    script_ops = {
        (p, m) for p, item in json.loads(EXTRACT.read_text(encoding="utf-8"))["paths"].items() for m in item
    }
    used = {s.operation for s in grafana.seen}
    assert used == script_ops

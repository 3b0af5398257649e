"""Stage 4 (dashboards): `coldchain grafana push`: the provisioning files, put into an existing Grafana.

For sites with a shared or hosted Grafana, where file provisioning is not available. It reads the same
files Grafana's own file provisioning reads (one truth: nothing here restates a dashboard, a datasource
or a rule):

    dashboards/grafana/dashboards/*.json                  dashboards, into the folder below
    dashboards/grafana/provisioning/datasources/*.yaml    datasources; ${VAR} / $VAR from the environment
    dashboards/grafana/provisioning/alerting/*.yaml       unified alerting: groups, contactPoints, policies

and puts them through Grafana's HTTP API (the `grafana-client` library) with a service-account token:
the folder (uid `coldchain`), then datasources, dashboards, contact points, alert rule groups and the
notification policy (one route under the tree's root, never the root). Every object is read first
(GET) and written only when it differs from the files, so a second push writes nothing; `dry_run` reads
and reports, and writes nothing.

What cannot be compared is said where it is decided: secrets (a datasource's secureJsonData, a contact
point's redacted settings) cannot be read back, so a changed secret alone does not trigger an update.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from dashboards.folder import FOLDER_TITLE, FOLDER_UID

Json = dict[str, Any]

GRAFANA_DIR = Path(__file__).resolve().parent / "grafana"

ORG_ID = 1
PUSH_MESSAGE = "coldchain grafana push"

# Grafana answers a secure contact-point setting with this instead of its value.
REDACTED = "[REDACTED]"
MASK = "********"

# Provisioning-file keys of a datasource and the API field each becomes (AddDataSourceCommand).
_DATASOURCE_FIELDS = (
    "name",
    "uid",
    "type",
    "access",
    "url",
    "user",
    "database",
    "basicAuth",
    "basicAuthUser",
    "withCredentials",
    "isDefault",
    "jsonData",
    "secureJsonData",
)
# Keys a provisioning file may hold that the API has no field for (Grafana-side bookkeeping).
_DATASOURCE_IGNORED = ("orgId", "editable", "version")

# Alert-rule keys: provisioning file (AlertRuleExport) -> HTTP API (ProvisionedAlertRule).
_RULE_FIELDS = {
    "uid": "uid",
    "title": "title",
    "condition": "condition",
    "data": "data",
    "noDataState": "noDataState",
    "execErrState": "execErrState",
    "for": "for",
    "keepFiringFor": "keep_firing_for",
    "annotations": "annotations",
    "labels": "labels",
    "isPaused": "isPaused",
    "notification_settings": "notification_settings",
    "missing_series_evals_to_resolve": "missingSeriesEvalsToResolve",
    "record": "record",
}
# What Grafana's file provisioning makes of a rule that leaves these out (alerting/rules_types.go).
_RULE_DEFAULTS = {"noDataState": "NoData", "execErrState": "Alerting", "for": "0s"}

Kind = Literal["folder", "datasource", "dashboard", "contact-point", "rule-group", "policies"]
Action = Literal["create", "update", "unchanged"]
ErrorKind = Literal["input", "unavailable", "refused"]


class PushError(Exception):
    """One line for the user. `kind`: `input` (the files or the environment are wrong), `unavailable`
    (Grafana cannot be reached, or refused the token), `refused` (Grafana answered a request with an
    error)."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Change:
    """What the push did (or, dry, would do) to one object; `diff` is a unified diff for an update."""

    kind: Kind
    key: str
    action: Action
    diff: str = ""


@dataclass
class Desired:
    """Everything the files ask for, in API shapes."""

    datasources: list[Json] = field(default_factory=list)
    dashboards: list[Json] = field(default_factory=list)
    contact_points: list[Json] = field(default_factory=list)
    rule_groups: list[Json] = field(default_factory=list)
    policies: Json | None = None


# --- the files ----------------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_BRACED_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Where Grafana's alerting file provisioning does not expand variables (rules_types.go): a query's
# `model` is taken raw (its SQL holds macros such as $__timeFilter), and `annotations` expand ${VAR} only
# (their templates hold {{ $labels.x }} and {{ $values.B }}).
ALERTING_RAW_KEYS = frozenset({"model"})
ALERTING_BRACED_KEYS = frozenset({"annotations"})


def expand_env(
    value: Any,
    env: Mapping[str, str],
    where: str,
    *,
    raw_keys: frozenset[str] = frozenset(),
    braced_keys: frozenset[str] = frozenset(),
    braced_only: bool = False,
) -> Any:
    """`value` with ${VAR} and $VAR in every string replaced from `env`, as Grafana's provisioning does
    (`$$` is a literal `$`); a variable that is not set is an error naming it. Under a key in `raw_keys`
    nothing is replaced; under one in `braced_keys` only ${VAR}."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) or (m.group(2) if m.re is _ENV_REF else None)
            if name is None or name not in env:
                raise PushError(f"{where}: environment variable {name} is not set", "input")
            return env[name]

        return (_BRACED_REF if braced_only else _ENV_REF).sub(sub, value)
    kw = {"raw_keys": raw_keys, "braced_keys": braced_keys}
    if isinstance(value, list):
        return [expand_env(v, env, where, braced_only=braced_only, **kw) for v in value]
    if isinstance(value, dict):
        return {
            k: v
            if k in raw_keys
            else expand_env(v, env, where, braced_only=braced_only or k in braced_keys, **kw)
            for k, v in value.items()
        }
    return value


def _read_yaml(path: Path) -> Json:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PushError(f"{path}: cannot read it: {_first_line(exc)}", "input") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PushError(f"{path}: not a YAML mapping", "input")
    return data


def _list_of_maps(data: Json, key: str, path: Path) -> list[Json]:
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise PushError(f"{path}: {key}: not a list of mappings", "input")
    return items


def _org(item: Json, path: Path, what: str) -> None:
    if item.get("orgId", ORG_ID) != ORG_ID:
        raise PushError(
            f"{path}: {what}: orgId {item['orgId']!r}: only organisation {ORG_ID} is pushed", "input"
        )


def parse_duration(text: Any, where: str) -> int:
    """Seconds in a Grafana/Prometheus duration such as `1m`, `90s`, `1h30m` (or a bare number)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.fullmatch(r"(?:\d+[smhdw])+", text) if isinstance(text, str) else None
    if parts is None:
        raise PushError(f"{where}: {text!r} is not a duration such as 1m or 30s", "input")
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhdw])", text))


def _datasource(item: Json, path: Path) -> Json:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise PushError(f"{path}: a datasource without a name", "input")
    if not isinstance(item.get("uid"), str) or not item["uid"]:
        raise PushError(f"{path}: datasource {name!r}: no uid (the push matches datasources by uid)", "input")
    _org(item, path, f"datasource {name!r}")
    unknown = sorted(set(item) - set(_DATASOURCE_FIELDS) - set(_DATASOURCE_IGNORED))
    if unknown:
        raise PushError(
            f"{path}: datasource {name!r}: keys the push does not know: {', '.join(unknown)}", "input"
        )
    return {k: item[k] for k in _DATASOURCE_FIELDS if k in item}


def _group_folder(group: Json, path: Path) -> None:
    folder = group.get("folder", FOLDER_TITLE)
    if folder not in (FOLDER_TITLE, FOLDER_UID):
        raise PushError(
            f"{path}: group {group.get('name')!r}: folder {folder!r}: the push puts rules in the "
            f"{FOLDER_TITLE!r} folder only",
            "input",
        )


def _rule(rule: Json, group_name: str, path: Path) -> Json:
    where = f"{path}: group {group_name!r}"
    if not isinstance(rule.get("uid"), str) or not rule["uid"]:
        raise PushError(f"{where}: a rule without a uid (the push matches rules by uid)", "input")
    unknown = sorted(set(rule) - set(_RULE_FIELDS) - {"orgId", "dashboardUid", "panelId"})
    if unknown:
        raise PushError(
            f"{where}: rule {rule['uid']!r}: keys the push does not know: {', '.join(unknown)}", "input"
        )
    out: Json = {"uid": rule["uid"], "orgID": ORG_ID, "folderUID": FOLDER_UID, "ruleGroup": group_name}
    for src, dst in _RULE_FIELDS.items():
        if src in rule:
            out[dst] = rule[src]
    for key, default in _RULE_DEFAULTS.items():
        out.setdefault(key, default)
    # The file's panel link is, in the API, two reserved annotations (as Grafana stores it).
    if "dashboardUid" in rule:
        out["annotations"] = {**(out.get("annotations") or {}), "__dashboardUid__": str(rule["dashboardUid"])}
    if "panelId" in rule:
        out["annotations"] = {**(out.get("annotations") or {}), "__panelId__": str(rule["panelId"])}
    if isinstance(out.get("record"), dict):
        rec = out["record"]
        out["record"] = {_RECORD_FIELDS.get(k, k): v for k, v in rec.items()}
    return out


# A recording rule's keys: file (AlertRuleRecordExport) -> API (Record).
_RECORD_FIELDS = {"targetDatasourceUid": "target_datasource_uid"}

_MATCHER = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^\s=!~"]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


def _unquote(text: str) -> str:
    return json.loads(text) if len(text) >= 2 and text[0] == text[-1] == '"' else text


def policy_route(route: Any, where: str) -> Any:
    """A policy route of the file as the API takes it. String `matchers` (`severity = critical`) become
    `object_matchers` (`[severity, =, critical]`), the same matching in the form Grafana's API document
    declares; everything else is kept."""
    if not isinstance(route, dict):
        raise PushError(f"{where}: a policy route that is not a mapping", "input")
    out = {k: v for k, v in route.items() if k not in ("orgId", "matchers", "routes")}
    matchers = route.get("matchers") or []
    if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
        raise PushError(f"{where}: matchers: not a list of strings such as 'severity = critical'", "input")
    parsed = []
    for text in matchers:
        m = _MATCHER.fullmatch(text)
        if m is None:
            raise PushError(f"{where}: matcher {text!r} is not of the form 'label = value'", "input")
        parsed.append([_unquote(m.group(1)), m.group(2), _unquote(m.group(3))])
    if parsed:
        out["object_matchers"] = [*(route.get("object_matchers") or []), *parsed]
    if "routes" in route:
        subs = route["routes"] or []
        if not isinstance(subs, list):
            raise PushError(f"{where}: routes: not a list", "input")
        out["routes"] = [policy_route(r, where) for r in subs]
    return out


def _group(group: Json, path: Path) -> Json:
    name = group.get("name")
    if not isinstance(name, str) or not name:
        raise PushError(f"{path}: a rule group without a name", "input")
    _org(group, path, f"group {name!r}")
    _group_folder(group, path)
    rules = group.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise PushError(f"{path}: group {name!r}: rules: not a list of mappings", "input")
    return {
        "title": name,
        "folderUid": FOLDER_UID,
        "interval": parse_duration(group.get("interval", "1m"), f"{path}: group {name!r}: interval"),
        "rules": [_rule(r, name, path) for r in rules],
    }


def _contact_points(cp: Json, path: Path) -> list[Json]:
    name = cp.get("name")
    if not isinstance(name, str) or not name:
        raise PushError(f"{path}: a contact point without a name", "input")
    _org(cp, path, f"contact point {name!r}")
    out = []
    for rec in _list_of_maps(cp, "receivers", path):
        if not isinstance(rec.get("uid"), str) or not rec["uid"]:
            raise PushError(f"{path}: contact point {name!r}: a receiver without a uid", "input")
        out.append(
            {
                "uid": rec["uid"],
                "name": name,
                "type": rec.get("type"),
                "settings": rec.get("settings") or {},
                "disableResolveMessage": bool(rec.get("disableResolveMessage", False)),
            }
        )
    return out


def _only(data: Json, keys: tuple[str, ...], path: Path) -> None:
    """A non-empty top-level section the push does not put into Grafana (deletions, mute timings,
    templates...) is an error: pushing without it would leave Grafana unlike the files."""
    extra = sorted(k for k, v in data.items() if k not in ("apiVersion", *keys) and v not in (None, [], {}))
    if extra:
        raise PushError(f"{path}: {', '.join(extra)}: not pushed by `coldchain grafana push`", "input")


def load(grafana_dir: Path = GRAFANA_DIR, env: Mapping[str, str] | None = None) -> Desired:
    """What the provisioning files under `grafana_dir` ask for. Raises PushError (`input`)."""
    env = os.environ if env is None else env
    desired = Desired()
    for path in sorted((grafana_dir / "provisioning" / "datasources").glob("*.yaml")):
        data = expand_env(_read_yaml(path), env, str(path))
        _only(data, ("datasources",), path)
        desired.datasources += [_datasource(d, path) for d in _list_of_maps(data, "datasources", path)]
    for path in sorted((grafana_dir / "dashboards").glob("*.json")):
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PushError(f"{path}: cannot read it: {_first_line(exc)}", "input") from None
        if not isinstance(model, dict) or not isinstance(model.get("uid"), str) or not model["uid"]:
            raise PushError(f"{path}: not a dashboard with a uid", "input")
        desired.dashboards.append(model)
    for path in sorted((grafana_dir / "provisioning" / "alerting").glob("*.yaml")):
        raw, braced = ALERTING_RAW_KEYS, ALERTING_BRACED_KEYS
        data = expand_env(_read_yaml(path), env, str(path), raw_keys=raw, braced_keys=braced)
        _only(data, ("groups", "contactPoints", "policies"), path)
        desired.rule_groups += [_group(g, path) for g in _list_of_maps(data, "groups", path)]
        for cp in _list_of_maps(data, "contactPoints", path):
            desired.contact_points += _contact_points(cp, path)
        for policy in _list_of_maps(data, "policies", path):
            _org(policy, path, "policies")
            if desired.policies is not None:
                raise PushError(
                    f"{path}: a second notification policy tree for organisation {ORG_ID}", "input"
                )
            desired.policies = policy_route(policy, f"{path}: policies")
    for kind, uids in (
        ("datasource", [d["uid"] for d in desired.datasources]),
        ("dashboard", [d["uid"] for d in desired.dashboards]),
        ("contact point receiver", [c["uid"] for c in desired.contact_points]),
        ("rule group", [g["title"] for g in desired.rule_groups]),
        ("alert rule", [r["uid"] for g in desired.rule_groups for r in g["rules"]]),
    ):
        dupes = sorted({u for u in uids if uids.count(u) > 1})
        if dupes:
            raise PushError(f"{grafana_dir}: {kind} {', '.join(dupes)} defined twice", "input")
    return desired


# --- comparing ----------------------------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)


def _diff(kind: str, key: str, current: Any, desired: Any) -> str:
    lines = difflib.unified_diff(
        _canonical(current).splitlines(),
        _canonical(desired).splitlines(),
        f"grafana/{kind}/{key}",
        f"files/{kind}/{key}",
        lineterm="",
    )
    return "\n".join(lines)


def _subset(desired: Any, current: Any) -> bool:
    """Every key of `desired` is in `current` with a matching value (lists element-wise, same length)."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            k in current and _subset(v, current[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list) and len(desired) == len(current) and all(map(_subset, desired, current))
        )
    return bool(desired == current)


# Keys whose values a diff never shows: datasource secrets, and contact-point settings Grafana keeps secret.
SECRET_KEYS = ("secureJsonData", "password", "authorization_credentials", "token", "apiKey", "secret")


def _masked(obj: Any, secret_keys: Sequence[str] = SECRET_KEYS) -> Any:
    if isinstance(obj, dict):
        return {
            k: _mask_all(v)
            if k in secret_keys
            else _mask_query(v)
            if k == "url" and isinstance(v, str)
            else _masked(v, secret_keys)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_masked(v, secret_keys) for v in obj]
    return obj


def _mask_query(url: str) -> str:
    """A URL with its query masked: chat webhooks (DingTalk, WeCom, Slack) carry their token there."""
    base, sep, _query = url.partition("?")
    return base + sep + MASK if sep else url


def _mask_all(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: MASK for k in obj}
    return MASK


def _datasource_view(ds: Json) -> Json:
    """The comparable part of a datasource: its fields, and which secrets are set (never their values)."""
    view = {k: v for k, v in ds.items() if k in _DATASOURCE_FIELDS and k != "secureJsonData"}
    if "secureJsonData" in ds:
        view["secureJsonFields"] = sorted(ds["secureJsonData"])
    return view


def _current_datasource_view(current: Json, desired: Json) -> Json:
    view = {k: current.get(k) for k in desired if k in _DATASOURCE_FIELDS and k != "secureJsonData"}
    if "secureJsonData" in desired:
        fields = current.get("secureJsonFields") or {}
        view["secureJsonFields"] = sorted(k for k, on in fields.items() if on)
    return view


def _dashboard_view(model: Json) -> Json:
    return {k: v for k, v in model.items() if k not in ("id", "version")}


def _query_view(query: Any, want: Any) -> Any:
    """A stored query as compared with the file's: its keys; its `model` only as far as the file sets it
    (Grafana adds defaults such as intervalMs and maxDataPoints to a stored model)."""
    if not isinstance(query, dict) or not isinstance(want, dict):
        return query
    view = {k: query.get(k) for k in want}
    if "model" in want and _subset(want["model"], query.get("model")):
        view["model"] = want["model"]
    return view


def _rule_view(rule: Json, want: Json | None) -> Json:
    """A stored rule as compared with the file's (`want`, matched by uid): the keys the file sets. A
    stored rule the files do not have is compared whole, so it never matches."""
    if want is None:
        return rule
    view = {k: rule.get(k) for k in want}
    data, wanted = view.get("data"), want.get("data")
    if isinstance(data, list) and isinstance(wanted, list) and len(data) == len(wanted):
        view["data"] = [_query_view(q, w) for q, w in zip(data, wanted, strict=True)]
    return view


def _group_view(current: Json, want: Json) -> Json:
    wanted = {r["uid"]: r for r in want["rules"]}
    rules = [r for r in current.get("rules") or [] if isinstance(r, dict)]
    return {
        "title": current.get("title"),
        "interval": current.get("interval"),
        "rules": [_rule_view(r, wanted.get(r.get("uid"))) for r in rules],
    }


def _desired_group_view(group: Json) -> Json:
    return {"title": group["title"], "interval": group["interval"], "rules": group["rules"]}


def _contact_point_view(current: Json, desired: Json) -> Json:
    settings = dict(current.get("settings") or {})
    for k, v in settings.items():
        if v == REDACTED and k in desired["settings"]:
            settings[k] = desired["settings"][k]  # a secret Grafana will not show: taken as unchanged
    return {
        "uid": current.get("uid"),
        "name": current.get("name"),
        "type": current.get("type"),
        "settings": settings,
        "disableResolveMessage": bool(current.get("disableResolveMessage", False)),
    }


def _policy_view(route: Any) -> Any:
    if isinstance(route, dict):
        return {k: _policy_view(v) for k, v in route.items() if k != "provenance"}
    if isinstance(route, list):
        return [_policy_view(v) for v in route]
    return route


# --- Grafana ------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def normalise_url(url: str) -> str:
    """The base URL as grafana-client needs it (a sub-path ends with `/`); a URL that is not http(s) is
    an input error."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"--url: {url!r} is not an http:// or https:// URL of a Grafana", "input")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path + "/" if path else "", parts.query, ""))


class _Grafana:
    """The grafana-client calls the push makes, each turning Grafana's errors into one PushError line."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        from grafana_client import GrafanaApi

        self.url = url
        self.api = GrafanaApi.from_url(url=normalise_url(url), credential=token, timeout=timeout)

    def call(self, what: str, fn: Callable[[], Any], *, missing_ok: bool = False) -> Any:
        import requests
        from grafana_client.client import GrafanaClientError, GrafanaException

        try:
            result = fn()
        except requests.exceptions.Timeout as exc:
            raise PushError(
                f"Grafana at {self.url}: no answer to {what}: {_first_line(exc)}", "unavailable"
            ) from None
        except GrafanaClientError as exc:
            status = exc.status_code
            if status == 404 and missing_ok:
                return None
            message = _grafana_message(exc.response)
            if status == 401:
                raise PushError(
                    f"Grafana at {self.url} refused the token (401 Unauthorized): give a valid "
                    "service-account token with --token",
                    "unavailable",
                ) from None
            if status == 403:
                raise PushError(
                    f"Grafana at {self.url}: the token may not {what} (403 Forbidden): give the service "
                    f"account the Admin role{': ' + message if message else ''}",
                    "unavailable",
                ) from None
            raise PushError(
                f"Grafana refused to {what}: {status}{': ' + message if message else ''}", "refused"
            ) from None
        except GrafanaException as exc:
            if exc.status_code:
                raise PushError(
                    f"Grafana failed to {what}: {exc.status_code}: {_grafana_message(exc.response)}",
                    "refused",
                ) from None
            raise PushError(
                f"cannot reach Grafana at {self.url}: {_first_line(exc)}", "unavailable"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise PushError(
                f"cannot reach Grafana at {self.url}: {_first_line(exc)}", "unavailable"
            ) from None
        except ValueError:
            raise PushError(f"Grafana at {self.url}: the answer to {what} is not JSON", "refused") from None
        return result


def _grafana_message(response: Any) -> str:
    if isinstance(response, dict):
        return str(response.get("message") or response.get("error") or "").strip()
    return str(response or "").strip().splitlines()[0][:200] if str(response or "").strip() else ""


@dataclass
class _Plan:
    grafana: _Grafana
    dry_run: bool
    changes: list[Change] = field(default_factory=list)

    def record(self, kind: Kind, key: str, current: Any, desired: Any, write: Callable[[], Any]) -> None:
        if current is None:
            action: Action = "create"
            diff = ""
        elif current == desired:
            self.changes.append(Change(kind, key, "unchanged"))
            return
        else:
            action = "update"
            diff = _diff(kind, key, _masked(current), _masked(desired))
        self.changes.append(Change(kind, key, action, diff))
        if not self.dry_run:
            self.grafana.call(f"{action} {kind} {key}", write)


def push(
    url: str,
    token: str,
    *,
    dry_run: bool = False,
    grafana_dir: Path = GRAFANA_DIR,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[Change]:
    """Make the Grafana at `url` hold what the files under `grafana_dir` say; the changes, in order.
    Raises PushError."""
    desired = load(grafana_dir, env)
    if not token.strip():
        raise PushError("--token: empty; give a Grafana service-account token", "input")
    g = _Grafana(url, token, timeout)
    api = g.api
    plan = _Plan(g, dry_run)

    # The folder the dashboards and the rules live in.
    folder = g.call(f"read folder {FOLDER_UID}", partial(api.folder.get_folder, FOLDER_UID), missing_ok=True)
    want_folder = {"title": FOLDER_TITLE}
    if folder is None:
        plan.record(
            "folder",
            FOLDER_UID,
            None,
            want_folder,
            partial(api.folder.create_folder, FOLDER_TITLE, uid=FOLDER_UID),
        )
    else:
        update = partial(
            api.folder.update_folder, FOLDER_UID, title=FOLDER_TITLE, version=folder.get("version")
        )
        plan.record("folder", FOLDER_UID, {"title": folder.get("title")}, want_folder, update)

    for ds in desired.datasources:
        uid = ds["uid"]
        read = partial(api.datasource.get_datasource_by_uid, uid)
        current = g.call(f"read datasource {uid}", read, missing_ok=True)
        if current is None:
            plan.record(
                "datasource", uid, None, _datasource_view(ds), partial(api.datasource.create_datasource, ds)
            )
        else:
            body: Json = {**ds, "version": current["version"]} if current.get("version") is not None else ds
            update = partial(api.datasource.update_datasource_by_uid, uid, body)
            plan.record(
                "datasource", uid, _current_datasource_view(current, ds), _datasource_view(ds), update
            )

    for model in desired.dashboards:
        uid = model["uid"]
        current = g.call(f"read dashboard {uid}", partial(api.dashboard.get_dashboard, uid), missing_ok=True)
        want: Json = {"folderUid": FOLDER_UID, "dashboard": _dashboard_view(model)}
        stored = (current or {}).get("dashboard") or {}
        body = {
            # A new dashboard gets its id from Grafana; an update names the version it replaces, so a
            # dashboard changed in between is refused (412) rather than overwritten.
            "dashboard": {**want["dashboard"], "id": stored.get("id"), "version": stored.get("version")},
            "folderUid": FOLDER_UID,
            "overwrite": False,
            "message": PUSH_MESSAGE,
        }
        if current is None:
            body["dashboard"] = {k: v for k, v in body["dashboard"].items() if k != "version"}
            have = None
        else:
            have = {
                "folderUid": (current.get("meta") or {}).get("folderUid"),
                "dashboard": _dashboard_view(stored),
            }
        plan.record("dashboard", uid, have, want, partial(api.dashboard.update_dashboard, body))

    if desired.contact_points:
        listed = g.call("list contact points", api.alertingprovisioning.get_contactpoints) or []
        by_uid = {cp.get("uid"): cp for cp in listed if isinstance(cp, dict)}
        for cp in desired.contact_points:
            uid = cp["uid"]
            if uid not in by_uid:
                create = partial(api.alertingprovisioning.create_contactpoint, cp)
                plan.record("contact-point", uid, None, cp, create)
            else:
                update = partial(api.alertingprovisioning.update_contactpoint, uid, cp)
                plan.record("contact-point", uid, _contact_point_view(by_uid[uid], cp), cp, update)

    for group in desired.rule_groups:
        name = group["title"]
        path_name = quote(name, safe="")  # grafana-client puts it into the path as given
        read = partial(api.alertingprovisioning.get_rule_group, FOLDER_UID, path_name)
        current = g.call(f"read rule group {name}", read, missing_ok=True)
        update = partial(api.alertingprovisioning.update_rule_group, FOLDER_UID, path_name, group)
        have = None if current is None else _group_view(current, group)
        plan.record("rule-group", name, have, _desired_group_view(group), update)

    if desired.policies is not None:
        current = g.call(
            "read the notification policy tree", api.alertingprovisioning.get_notification_policy_tree
        )
        tree, ours_now = with_our_route(current, desired.policies)
        update = partial(api.alertingprovisioning.set_notification_policy_tree, tree)
        have = None if ours_now is None else _policy_view(ours_now)
        plan.record("policies", OUR_ROUTE_KEY, have, _policy_view(our_route(desired.policies)), update)
    return plan.changes


# A shared Grafana's notification policy tree is its owners': the push never replaces it. The files' tree
# goes in as one route under the root, matching the alerts of the folder (Grafana labels every alert with
# its folder's title), first among the root's routes so it is matched before the others.
OUR_MATCHER: Final = ["grafana_folder", "=", FOLDER_TITLE]
OUR_ROUTE_KEY: Final = f"route grafana_folder={FOLDER_TITLE}"


def our_route(policies: Json) -> Json:
    """The files' policy tree as a route under someone else's root: its settings and sub-routes, matching
    the folder's alerts, and not continuing to the root's other routes."""
    route = {k: v for k, v in policies.items() if k not in ("object_matchers", "continue")}
    return {**route, "object_matchers": [OUR_MATCHER], "continue": False}


def _is_ours(route: Any) -> bool:
    return isinstance(route, dict) and OUR_MATCHER in (route.get("object_matchers") or [])


def with_our_route(tree: Json, policies: Json) -> tuple[Json, Json | None]:
    """The tree with our route in front of its root's routes (an earlier one of ours replaced, every other
    route kept as it was); and our route as the tree held it (None: not there yet)."""
    routes = [r for r in (tree.get("routes") or []) if not _is_ours(r)]
    ours_now = next((r for r in (tree.get("routes") or []) if _is_ours(r)), None)
    kept = {k: v for k, v in tree.items() if k != "provenance"}
    return {**kept, "routes": [our_route(policies), *routes]}, ours_now


def render(changes: Sequence[Change], *, dry_run: bool) -> str:
    """The changes for a person: one line per object, an update's diff indented under it."""
    lines = []
    for c in changes:
        verb = {
            "create": "would create" if dry_run else "created",
            "update": "would update" if dry_run else "updated",
        }
        lines.append(f"{verb.get(c.action, c.action):<12} {c.kind:<13} {c.key}")
        lines += ["    " + line for line in c.diff.splitlines()]
    return "\n".join(lines)


def summary(changes: Sequence[Change], *, dry_run: bool) -> Json:
    counts = {a: sum(1 for c in changes if c.action == a) for a in ("create", "update", "unchanged")}
    return {
        "dry_run": dry_run,
        "created": counts["create"],
        "updated": counts["update"],
        "unchanged": counts["unchanged"],
        "objects": [{"kind": c.kind, "key": c.key, "action": c.action} for c in changes],
    }

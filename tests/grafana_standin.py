"""Tests, stage 4 (dashboards): a stand-in for Grafana's HTTP API that checks every request against the
extract of Grafana's OpenAPI document (tests/data/grafana-openapi/) and keeps state, so what one request
writes the next one reads.

It proves requests conform to the published schema and that a client is idempotent against a stateful
model; it does not prove Grafana's own behaviour (see docs/grafana.md, "What the stand-in test proves").

Per request: the path must be one the extract holds, under basePath /api, with that method; query
parameters must be declared (and of their type); a body must be JSON and validate against the operation's
body schema (Swagger 2.0 definitions read as JSON Schema draft 4), and request objects may carry no
property their definition does not declare (Grafana's JSON decoding would drop it silently). A request
that fails any of this gets 400 and its reason in `violations`; a test asserts there are none. Without
`Authorization: Bearer <token>` the answer is 401, as Grafana's. Each answer the stand-in gives is checked
against the operation's declared response schema too (`response_violations`), so the model cannot drift
from the document either.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema

EXTRACT = Path(__file__).resolve().parent / "data" / "grafana-openapi" / "grafana-api-extract.json"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDACTED = "[REDACTED]"
# Contact-point settings Grafana stores encrypted and answers as REDACTED (webhook, slack, email...).
SECURE_SETTINGS = frozenset({"password", "authorization_credentials", "url_secret", "token", "apiKey"})

Json = dict[str, Any]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    status: int
    operation: tuple[str, str] | None = None  # (path template, method) of the extract, if one matched


def _strict(schema: Any) -> Any:
    """`schema` with additionalProperties false on every object that declares properties."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


class _Operation:
    def __init__(self, spec: Json, path: str, method: str, op: Json) -> None:
        self.path = path
        self.method = method.upper()
        self.op_id: str = op["operationId"]
        self.params = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
        names = re.findall(r"\{([^}]+)\}", path)
        self.regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path)) + "$")
        self.path_names = names
        body = next((p for p in op.get("parameters", []) if p["in"] == "body"), None)
        self.body_required = bool(body and body.get("required"))
        self.body: jsonschema.protocols.Validator | None = None
        definitions = spec["definitions"]
        if body is not None:
            schema = {**_strict(body["schema"]), "definitions": _strict(definitions)}
            self.body = jsonschema.Draft4Validator(schema)
        self.responses: dict[int, jsonschema.protocols.Validator | None] = {}
        for code, resp in op["responses"].items():
            if "$ref" in resp:
                resp = spec["responses"][resp["$ref"].rsplit("/", 1)[1]]
            schema = resp.get("schema")
            self.responses[int(code)] = (
                jsonschema.Draft4Validator({**schema, "definitions": definitions})
                if schema is not None
                else None
            )


def _errors(validator: jsonschema.protocols.Validator, value: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    ]


class GrafanaStandIn:
    """`with GrafanaStandIn() as g:` serves on g.url until the block ends."""

    def __init__(self, token: str = "glsa_standin_token") -> None:  # noqa: S107
        self.token = token
        self.spec: Json = json.loads(EXTRACT.read_text(encoding="utf-8"))
        self.base = self.spec["basePath"]
        self.operations = [
            _Operation(self.spec, path, method, op)
            for path, item in self.spec["paths"].items()
            for method, op in item.items()
        ]
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self.response_violations: list[str] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.folders: dict[str, Json] = {}
        self.datasources: dict[str, Json] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.dashboards: dict[str, Json] = {}
        self.rule_groups: dict[tuple[str, str], Json] = {}
        self.contact_points: dict[str, Json] = {
            "default-email": {
                "uid": "default-email",
                "name": "grafana-default-email",
                "type": "email",
                "settings": {"addresses": "<example@email.com>"},
                "disableResolveMessage": False,
            }
        }
        self.policies: Json = {
            "receiver": "grafana-default-email",
            "group_by": ["grafana_folder", "alertname"],
        }
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> GrafanaStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = standin.handle(self.command, self.path, dict(self.headers), raw)
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._any()

            def do_POST(self) -> None:
                self._any()

            def do_PUT(self) -> None:
                self._any()

            def do_PATCH(self) -> None:
                self._any()

            def do_DELETE(self) -> None:
                self._any()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="grafana-standin", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def writes(self) -> list[Seen]:
        return [s for s in self.seen if s.method in WRITE_METHODS]

    # -- one request -----------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        with self._lock:
            parts = urlsplit(target)
            status, payload, op = self._handle(
                method, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, raw
            )
            template = (op.path, op.method.lower()) if op is not None else None
            self.seen.append(Seen(method, parts.path, status, template))
            if op is not None and status != 401:
                self._check_response(op, status, payload)
            return status, payload

    def _invalid(self, method: str, path: str, why: str) -> tuple[int, Any, None]:
        self.violations.append(f"{method} {path}: {why}")
        return (
            400,
            {"message": f"stand-in: request does not conform to Grafana's OpenAPI document: {why}"},
            None,
        )

    def _handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, _Operation | None]:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if not path.startswith(self.base + "/"):
            return self._invalid(method, path, f"not under basePath {self.base}")
        rel = path[len(self.base) :]
        matches = [(op, m) for op in self.operations if (m := op.regex.match(rel))]
        if not matches:
            return self._invalid(method, path, "no such path in the extract")
        found = next(((op, m) for op, m in matches if op.method == method), None)
        if found is None:
            return self._invalid(method, path, f"method {method} not in the extract for this path")
        op, m = found
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Unauthorized"}, op
        args = dict(zip(op.path_names, map(unquote, m.groups()), strict=True))
        for name, values in query.items():
            param = op.params.get(("query", name))
            if param is None:
                return self._invalid(method, path, f"query parameter {name!r} is not declared")
            if param.get("type") == "integer" and not all(re.fullmatch(r"-?\d+", v) for v in values):
                return self._invalid(method, path, f"query parameter {name!r} is not an integer")
            if param.get("type") == "boolean" and not all(v in ("true", "false") for v in values):
                return self._invalid(method, path, f"query parameter {name!r} is not a boolean")
        missing = [
            n
            for (where, n), p in op.params.items()
            if where == "query" and p.get("required") and n not in query
        ]
        if missing:
            return self._invalid(method, path, f"required query parameter(s) missing: {', '.join(missing)}")
        body: Any = None
        if raw:
            ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
            if not ctype.startswith("application/json"):
                return self._invalid(method, path, f"body with Content-Type {ctype!r}, not application/json")
            try:
                body = json.loads(raw)
            except ValueError as exc:
                return self._invalid(method, path, f"body is not JSON: {exc}")
        if op.body is None and body is not None:
            return self._invalid(method, path, "a body, where the operation takes none")
        if op.body is not None:
            if body is None and op.body_required:
                return self._invalid(method, path, "the required body is missing")
            if body is not None:
                errors = _errors(op.body, body)
                if errors:
                    return self._invalid(method, path, "; ".join(errors))
        status, payload = getattr(self, "_" + op.op_id)(body, **args, **{k: v[0] for k, v in query.items()})
        return status, payload, op

    def _check_response(self, op: _Operation, status: int, payload: Any) -> None:
        if status not in op.responses:
            if status != 404:
                self.response_violations.append(f"{op.method} {op.path}: answered {status}, not declared")
            return
        validator = op.responses[status]
        if validator is not None:
            for error in _errors(validator, payload):
                self.response_violations.append(f"{op.method} {op.path} -> {status}: {error}")

    # -- folders ---------------------------------------------------------------------------------------

    def _folder_view(self, f: Json) -> Json:
        return {**f, "url": f"/dashboards/f/{f['uid']}/", "orgId": 1, "canSave": True, "canEdit": True}

    def _getFolderByUID(self, body: None, folder_uid: str) -> tuple[int, Any]:  # noqa: N802
        f = self.folders.get(folder_uid)
        return (200, self._folder_view(f)) if f else (404, {"message": "folder not found"})

    def _createFolder(self, body: Json) -> tuple[int, Any]:  # noqa: N802
        uid = body.get("uid") or f"f{next(self._ids)}"
        if uid in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        if any(f["title"] == body.get("title") for f in self.folders.values()):
            return 409, {"message": "a folder with the same name already exists"}
        self.folders[uid] = {"id": next(self._ids), "uid": uid, "title": body.get("title", ""), "version": 1}
        return 200, self._folder_view(self.folders[uid])

    def _updateFolder(self, body: Json, folder_uid: str) -> tuple[int, Any]:  # noqa: N802
        f = self.folders.get(folder_uid)
        if f is None:
            return 404, {"message": "folder not found"}
        if "version" in body and body["version"] != f["version"] and not body.get("overwrite"):
            return 409, {"message": "the folder has been changed by someone else"}
        f.update(title=body.get("title", f["title"]), version=f["version"] + 1)
        return 200, self._folder_view(f)

    # -- datasources -----------------------------------------------------------------------------------

    def _ds_view(self, ds: Json) -> Json:
        return {
            **ds,
            "orgId": 1,
            "readOnly": False,
            "secureJsonFields": {k: True for k in self.secrets.get(ds["uid"], {})},
        }

    def _getDataSourceByUID(self, body: None, uid: str) -> tuple[int, Any]:  # noqa: N802
        ds = self.datasources.get(uid)
        return (200, self._ds_view(ds)) if ds else (404, {"message": "Data source not found"})

    def _store_ds(self, uid: str, body: Json, version: int, ds_id: int) -> Json:
        secrets = body.get("secureJsonData") or {}
        self.secrets[uid] = {**self.secrets.get(uid, {}), **secrets}
        fields = {k: v for k, v in body.items() if k not in ("secureJsonData", "version")}
        self.datasources[uid] = {**fields, "uid": uid, "id": ds_id, "version": version}
        return self._ds_view(self.datasources[uid])

    def _addDataSource(self, body: Json) -> tuple[int, Any]:  # noqa: N802
        uid = body.get("uid") or f"ds{next(self._ids)}"
        if uid in self.datasources or any(
            d.get("name") == body.get("name") for d in self.datasources.values()
        ):
            return 409, {"message": "data source with the same name or uid already exists"}
        view = self._store_ds(uid, body, 1, next(self._ids))
        return 200, {
            "datasource": view,
            "id": view["id"],
            "message": "Datasource added",
            "name": view["name"],
        }

    def _updateDataSourceByUID(self, body: Json, uid: str) -> tuple[int, Any]:  # noqa: N802
        ds = self.datasources.get(uid)
        if ds is None:
            return 404, {"message": "Data source not found"}
        if "version" in body and body["version"] != ds["version"]:
            return 409, {
                "message": "Datasource has already been updated by someone else. Please reload and try again"
            }
        view = self._store_ds(uid, body, ds["version"] + 1, ds["id"])
        return 200, {
            "datasource": view,
            "id": view["id"],
            "message": "Datasource updated",
            "name": view["name"],
        }

    # -- dashboards ------------------------------------------------------------------------------------

    def _getDashboardByUID(self, body: None, uid: str) -> tuple[int, Any]:  # noqa: N802
        d = self.dashboards.get(uid)
        if d is None:
            return 404, {"message": "Dashboard not found"}
        model = copy.deepcopy(d["model"])
        folder = self.folders.get(d["folderUid"], {})
        meta = {
            "folderUid": d["folderUid"],
            "folderTitle": folder.get("title", "General"),
            "version": model["version"],
            "slug": d["slug"],
            "url": f"/d/{uid}/{d['slug']}",
            "provisioned": False,
            "canSave": True,
        }
        return 200, {"dashboard": model, "meta": meta}

    def _postDashboard(self, body: Json) -> tuple[int, Any]:  # noqa: N802
        model = copy.deepcopy(body.get("dashboard") or {})
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        uid = model.get("uid") or f"d{next(self._ids)}"
        title = str(model.get("title") or "")
        if not title:
            return 400, {"message": "Dashboard title cannot be empty"}
        existing = self.dashboards.get(uid)
        if (
            existing is not None
            and not body.get("overwrite")
            and model.get("version") != existing["model"]["version"]
        ):
            return 412, {
                "message": "The dashboard has been changed by someone else",
                "status": "version-mismatch",
            }
        version = existing["model"]["version"] + 1 if existing else 1
        dash_id = existing["model"]["id"] if existing else next(self._ids)
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or uid
        model.update(id=dash_id, uid=uid, version=version)
        self.dashboards[uid] = {"model": model, "folderUid": folder_uid, "slug": slug}
        return 200, {
            "id": dash_id,
            "uid": uid,
            "url": f"/d/{uid}/{slug}",
            "status": "success",
            "version": version,
            "title": slug,
            "folderUid": folder_uid,
        }

    # -- alerting --------------------------------------------------------------------------------------

    def _RouteGetAlertRuleGroup(self, body: None, FolderUID: str, Group: str) -> tuple[int, Any]:  # noqa: N802, N803
        group = self.rule_groups.get((FolderUID, Group))
        return (200, copy.deepcopy(group)) if group else (404, {"message": "rule group not found"})

    def _RoutePutAlertRuleGroup(self, body: Json, FolderUID: str, Group: str) -> tuple[int, Any]:  # noqa: N802, N803
        if FolderUID not in self.folders:
            return 400, {"message": f"folder {FolderUID} does not exist"}
        uids = [r.get("uid") for r in body.get("rules", [])]
        elsewhere = {
            r["uid"] for key, g in self.rule_groups.items() if key != (FolderUID, Group) for r in g["rules"]
        }
        for rule in body.get("rules", []):
            if rule["folderUID"] != FolderUID or rule["ruleGroup"] != Group:
                return 400, {"message": f"rule {rule.get('uid')}: folderUID/ruleGroup differ from the path"}
            if rule.get("uid") in elsewhere or uids.count(rule.get("uid")) > 1:
                return 400, {"message": f"rule uid {rule.get('uid')} is already used"}
        stored = {"title": Group, "folderUid": FolderUID, "interval": body.get("interval", 60), "rules": []}
        for rule in body.get("rules", []):
            stored["rules"].append(
                {
                    **copy.deepcopy(rule),
                    "id": next(self._ids),
                    "provenance": "api",
                    "updated": "2026-01-01T00:00:00Z",
                }
            )
        self.rule_groups[(FolderUID, Group)] = stored
        return 200, copy.deepcopy(stored)

    def _cp_view(self, cp: Json) -> Json:
        settings = {k: (REDACTED if k in SECURE_SETTINGS else v) for k, v in cp.get("settings", {}).items()}
        return {**cp, "settings": settings, "provenance": cp.get("provenance", "")}

    def _RouteGetContactpoints(self, body: None, name: str | None = None) -> tuple[int, Any]:  # noqa: N802
        return 200, [
            self._cp_view(cp) for cp in self.contact_points.values() if name is None or cp["name"] == name
        ]

    def _RoutePostContactpoints(self, body: Json) -> tuple[int, Any]:  # noqa: N802
        uid = body.get("uid") or f"cp{next(self._ids)}"
        if uid in self.contact_points:
            return 400, {"message": f"contact point uid {uid} is already used"}
        self.contact_points[uid] = {**copy.deepcopy(body), "uid": uid, "provenance": "api"}
        return 202, self._cp_view(self.contact_points[uid])

    def _RoutePutContactpoint(self, body: Json, UID: str) -> tuple[int, Any]:  # noqa: N802, N803
        if UID not in self.contact_points:
            return 404, {"message": "contact point not found"}
        self.contact_points[UID] = {**copy.deepcopy(body), "uid": UID, "provenance": "api"}
        return 202, {}

    def _receivers(self, route: Json) -> Iterator[str]:
        if "receiver" in route:
            yield route["receiver"]
        for sub in route.get("routes") or []:
            yield from self._receivers(sub)

    def _RouteGetPolicyTree(self, body: None) -> tuple[int, Any]:  # noqa: N802
        return 200, copy.deepcopy(self.policies)

    def _RoutePutPolicyTree(self, body: Json) -> tuple[int, Any]:  # noqa: N802
        names = {cp["name"] for cp in self.contact_points.values()}
        unknown = sorted(set(self._receivers(body)) - names)
        if unknown:
            return 400, {"message": f"receiver(s) {', '.join(unknown)} do not exist"}
        self.policies = {**copy.deepcopy(body), "provenance": "api"}
        return 202, {}

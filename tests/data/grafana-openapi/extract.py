"""Tests, stage 4 (dashboards): cuts Grafana's OpenAPI document down to what `coldchain grafana push` uses.

    python tests/data/grafana-openapi/extract.py FULL.json [OUT.json]

FULL.json is Grafana's public/api-merged.json (Swagger 2.0). OUT.json (default: grafana-api-extract.json
beside this file) keeps the document's header, exactly the operations in OPERATIONS (verbatim), and every
definition and response they reference, transitively (verbatim). Nothing else is kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXTRACT = HERE / "grafana-api-extract.json"

# (path, method) of every request dashboards/push.py makes.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("/folders/{folder_uid}", "get"),
    ("/folders", "post"),
    ("/folders/{folder_uid}", "put"),
    ("/datasources/uid/{uid}", "get"),
    ("/datasources", "post"),
    ("/datasources/uid/{uid}", "put"),
    ("/dashboards/uid/{uid}", "get"),
    ("/dashboards/db", "post"),
    ("/v1/provisioning/contact-points", "get"),
    ("/v1/provisioning/contact-points", "post"),
    ("/v1/provisioning/contact-points/{UID}", "put"),
    ("/v1/provisioning/folder/{FolderUID}/rule-groups/{Group}", "get"),
    ("/v1/provisioning/folder/{FolderUID}/rule-groups/{Group}", "put"),
    ("/v1/provisioning/policies", "get"),
    ("/v1/provisioning/policies", "put"),
)

HEADER_KEYS = (
    "consumes",
    "produces",
    "schemes",
    "swagger",
    "info",
    "basePath",
    "securityDefinitions",
    "security",
)


def refs(node: Any) -> set[str]:
    """Every "$ref" string anywhere in `node`."""
    found: set[str] = set()
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "$ref" and isinstance(v, str):
                    found.add(v)
                else:
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(x)
    return found


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """The object a local "#/section/name" reference points to; KeyError if it does not exist."""
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def extract(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: doc[k] for k in HEADER_KEYS if k in doc}
    paths: dict[str, dict[str, Any]] = {}
    for path, method in OPERATIONS:
        paths.setdefault(path, {})[method] = doc["paths"][path][method]
    out["paths"] = {p: paths[p] for p in sorted(paths)}
    kept: dict[str, dict[str, Any]] = {"definitions": {}, "responses": {}}
    todo = sorted(refs(out["paths"]))
    while todo:
        ref = todo.pop()
        section, name = ref[2:].split("/", 1)
        if name in kept[section]:
            continue
        kept[section][name] = resolve(doc, ref)
        todo.extend(sorted(refs(kept[section][name])))
    out["definitions"] = dict(sorted(kept["definitions"].items()))
    out["responses"] = dict(sorted(kept["responses"].items()))
    return out


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    doc = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    target = Path(argv[1]) if len(argv) == 2 else EXTRACT
    target.write_text(json.dumps(extract(doc), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

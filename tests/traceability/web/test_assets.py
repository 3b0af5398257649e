"""Tests: every static file of the web pages is listed in ASSETS.md with its true SHA-256 and a licence, and
no page or stylesheet loads anything from another site."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from traceability.web.pages import STATIC

TEMPLATES = STATIC.parent / "templates"
ROW = re.compile(r"^\|\s*([^|\s]+)\s*\|\s*([0-9a-f]{64})\s*\|\s*([^|]+?)\s*\|$")


def listed() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (STATIC / "ASSETS.md").read_text(encoding="utf-8").splitlines():
        found = ROW.match(line.strip())
        if found:
            rows[found.group(1)] = (found.group(2), found.group(3))
    return rows


def served_files() -> dict[str, Path]:
    found = (p for p in sorted(STATIC.rglob("*")) if p.is_file() and p.name != "ASSETS.md")
    return {str(p.relative_to(STATIC)): p for p in found}


def test_every_static_file_is_listed_with_its_checksum_and_licence() -> None:
    rows = listed()
    files = served_files()
    expected = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    lines = "\n".join(f"| {n} | {h} | ... |" for n, h in expected.items())
    assert {n: rows.get(n, ("", ""))[0] for n in files} == expected, f"ASSETS.md should list:\n{lines}"
    assert set(rows) == set(files), "ASSETS.md lists files that are not there"
    assert all(licence for _, licence in rows.values())


def test_nothing_is_loaded_from_elsewhere() -> None:
    for path in [*served_files().values(), *TEMPLATES.glob("*.html")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), path
        assert "@import" not in text
        assert "@font-face" not in text

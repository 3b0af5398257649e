"""Tests: every message of the web pages (templates and Python) has its zh-CN translation in the catalogs."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract
from jinja2.ext import babel_extract

from traceability import i18n

WEB = Path(i18n.__file__).parent.parent / "web"


def web_messages() -> dict[str, str]:
    """Every msgid the web pages use, and where (file:line)."""
    found: dict[str, str] = {}
    for path in sorted(WEB.rglob("*")):
        if path.suffix == ".html":
            method = babel_extract
            options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
        elif path.suffix == ".py":
            method, options = "python", {}
        else:
            continue
        with path.open("rb") as f:
            for lineno, message, _comments, _context in extract(
                method, f, keywords=DEFAULT_KEYWORDS, options=options
            ):
                msgids = message if isinstance(message, tuple) else (message,)
                for msgid in msgids:
                    if msgid:
                        found.setdefault(msgid, f"{path.relative_to(WEB)}:{lineno}")
    return found


def test_the_pages_have_messages() -> None:
    messages = web_messages()
    assert len(messages) > 100
    assert {"Sign in", "Evidence", "open"} <= messages.keys()


def test_every_web_message_is_translated() -> None:
    translated = {**i18n.read_catalog("common"), **i18n.read_catalog("web")}
    missing = {m: where for m, where in web_messages().items() if not translated.get(m)}
    assert missing == {}

"""Stage 3 (faces): languages, message catalogs and time zones of the pages and reports (zh-CN and en).

Catalogs are gettext ``.po`` files under ``zh_CN/LC_MESSAGES/``, one per domain: ``common`` (verdicts,
reasons, chart labels: what both the pages and the reports say), ``web`` (the pages) and ``reports``.
They are read with Babel when first asked for, so running needs no compile step. English is the source
language: its catalog is the identity.
"""

from __future__ import annotations

import gettext
import re
import string
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.messages.pofile import read_po

from rules.engine.catalog import REASON_PARTS, REASON_TEMPLATES, REASON_WORDS

Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")
DEFAULT_LANG: Lang = "zh-CN"
DOMAINS = ("common", "web", "reports")
CATALOGS = Path(__file__).parent
# Whose zone a page shows when the viewer names none: Chinese readers are in China (UTC+8, no DST).
DEFAULT_ZONES: dict[Lang, str] = {"zh-CN": "Asia/Shanghai", "en": "UTC"}
# Babel's locale names for the two languages.
LOCALES: dict[Lang, str] = {"zh-CN": "zh_Hans_CN", "en": "en"}

Gettext = Callable[[str], str]


def catalog_path(domain: str) -> Path:
    """The zh-CN catalog file of ``domain``."""
    return CATALOGS / "zh_CN" / "LC_MESSAGES" / f"{domain}.po"


class _Catalog(gettext.NullTranslations):
    """Messages read from ``.po`` files: a msgid without a translation falls back to itself."""

    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self._messages = messages

    def gettext(self, message: str) -> str:
        return self._messages.get(message, message)


def read_catalog(domain: str) -> dict[str, str]:
    """The translated, non-fuzzy messages of ``domain``'s zh-CN catalog (empty when it has none)."""
    path = catalog_path(domain)
    if not path.exists():
        return {}
    with path.open("rb") as f:
        catalog = read_po(f, locale="zh_CN", domain=domain)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy}


@cache
def translations(lang: Lang) -> gettext.NullTranslations:
    """Every domain's messages for ``lang`` merged into one (English: the identity)."""
    if lang == "en":
        return gettext.NullTranslations()
    merged: dict[str, str] = {}
    for domain in DOMAINS:
        merged.update(read_catalog(domain))
    return _Catalog(merged)


def gettext_for(lang: Lang) -> Gettext:
    """The ``_`` of ``lang``."""
    return translations(lang).gettext


def negotiate(accept_language: str | None, chosen: str | None = None) -> Lang:
    """The page's language: the viewer's explicit choice (cookie or ``lang``) when it is one of ours, else
    the first of ``Accept-Language`` (by q) that is, else zh-CN."""
    if chosen in LANGS:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for negq, _, tag in sorted(ranked):
        if negq >= 0:
            continue
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANG


def zone(name: str | None, lang: Lang) -> ZoneInfo:
    """The viewer's zone: ``name`` when it is a known IANA zone, else the language's default."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(DEFAULT_ZONES[lang])


def format_time(t: datetime | None, lang: Lang, tz: ZoneInfo, *, seconds: bool = False) -> str:
    """``t`` in the viewer's zone, with the zone named (``2026-11-03 14:05 CST`` style); '–' for none."""
    if t is None:
        return "–"
    pattern = "yyyy-MM-dd HH:mm:ss" if seconds else "yyyy-MM-dd HH:mm"
    local = format_datetime(t.astimezone(tz), pattern, locale=LOCALES[lang])
    return f"{local} {tz.key}"


# -- reasons -------------------------------------------------------------------------------------------
# A reason is stored as English text filled from one of the rules catalog's templates; it is translated by
# matching it against them (the longest literal first, so a specific template wins) and filling the
# translated template with the fields, each field translated in turn where it is a word or a template.


def _pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P<{field}>.*?)")
    return re.compile("".join(parts), re.DOTALL)


def _literal_length(template: str) -> int:
    return sum(len(literal) for literal, *_ in string.Formatter().parse(template))


def _patterns(templates: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    return [(t, _pattern(t)) for t in sorted(templates, key=_literal_length, reverse=True)]


_WHOLE = _patterns(REASON_TEMPLATES)
_FIELD = _patterns(REASON_TEMPLATES + REASON_PARTS)


def translate_reason(text: str, _: Gettext, *, depth: int = 3, field: bool = False) -> str:
    """A stored reason in the language of ``_``; text no template matches is returned as it is."""
    if text in REASON_WORDS:
        return _(text)
    if depth == 0:
        return text
    for template, pattern in _FIELD if field else _WHOLE:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        fields = {
            k: translate_reason(v, _, depth=depth - 1, field=True) if v else v
            for k, v in m.groupdict().items()
        }
        return _(template).format(**fields)
    return text

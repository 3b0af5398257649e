"""The languages of the pages and reports: negotiation, catalogs, and stored reasons translated."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.engine import catalog
from traceability.i18n import (
    format_time,
    gettext_for,
    negotiate,
    read_catalog,
    translate_reason,
    zone,
)

ZH = gettext_for("zh-CN")
EN = gettext_for("en")


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


@pytest.mark.parametrize(
    "template", [*catalog.REASON_TEMPLATES, *catalog.REASON_PARTS, *catalog.REASON_WORDS]
)
def test_every_reason_template_and_word_has_a_chinese_text_with_the_same_fields(template: str) -> None:
    messages = read_catalog("common")
    assert template in messages, f"no zh-CN text for {template!r}"
    assert _fields(messages[template]) == _fields(template)


@pytest.mark.parametrize(
    ("header", "chosen", "lang"),
    [
        ("en-US,en;q=0.9,zh;q=0.8", None, "en"),
        ("zh-CN,zh;q=0.9", None, "zh-CN"),
        ("fr-FR, en;q=0.5", None, "en"),
        ("en;q=0.2, zh-TW;q=0.8", None, "zh-CN"),
        ("fr", None, "zh-CN"),
        (None, None, "zh-CN"),
        ("zh-CN", "en", "en"),
        ("en", "de", "en"),
        ("en;q=0", None, "zh-CN"),
    ],
)
def test_language_follows_the_choice_then_accept_language(
    header: str | None, chosen: str | None, lang: str
) -> None:
    assert negotiate(header, chosen) == lang


def test_times_are_shown_in_the_viewers_zone_with_the_zone_named() -> None:
    t = datetime(2026, 11, 3, 6, 5, tzinfo=UTC)
    assert format_time(t, "zh-CN", zone(None, "zh-CN")) == "2026-11-03 14:05 Asia/Shanghai"
    assert format_time(t, "en", zone(None, "en")) == "2026-11-03 06:05 UTC"
    assert format_time(t, "en", zone("Asia/Bangkok", "en")) == "2026-11-03 13:05 Asia/Bangkok"
    assert zone("Not/AZone", "zh-CN").key == "Asia/Shanghai"


seconds = st.floats(min_value=0, max_value=1e7, allow_nan=False)
temps = st.floats(min_value=-80, max_value=80, allow_nan=False).map(lambda x: round(x, 2))
ints = st.integers(min_value=0, max_value=10**6)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
reasons = st.one_of(
    st.builds(catalog.within_accuracy, temps, temps),
    st.builds(catalog.single_event, seconds, ints, temps, still=st.booleans()),
    st.builds(catalog.cumulative, seconds, ints, ints),
    st.builds(catalog.band, temps, temps, temps),
    st.builds(catalog.mkt, temps, ints, temps),
    st.builds(catalog.gap, seconds, seconds, st.sampled_from(["storage", "transport"])),
    st.builds(catalog.state, st.sampled_from(["door", "power"]), seconds, ints),
    st.builds(catalog.near_limit, ints, temps),
    st.builds(catalog.faults, ints, ints, ints),
    st.builds(
        lambda kind, start, d: catalog.evidence(
            kind, "cn-gsp/frozen/gap", start, start + timedelta(seconds=d)
        ),
        st.sampled_from(["gap", "excursion", "door", "power"]),
        instants,
        seconds,
    ),
    st.builds(catalog.leg_without_asset, st.text("0123456789", min_size=1, max_size=6)),
    st.builds(catalog.leg_not_covered, st.text("0123456789", min_size=1, max_size=6)),
    st.builds(catalog.back_in_range, temps),
    st.just(catalog.NO_EVIDENCE),
    st.just(catalog.NO_LEG),
)
assets = st.one_of(st.none(), st.sampled_from(["TRUCK-GXA-12345", "MSCU1234565"]))
# As a lot's verdict states them: a series' reason under its asset, a leg named by its asset and start.
lot_reasons = st.one_of(
    reasons,
    st.builds(catalog.series_reason, st.sampled_from(["TRUCK-GXA-12345"]), st.integers(1, 999), reasons),
    st.builds(lambda a, t: catalog.leg_without_asset(catalog.leg_name(a, t)), assets, instants),
    st.builds(lambda a, t: catalog.leg_not_covered(catalog.leg_name(a, t)), assets, instants),
)


@given(lot_reasons)
def test_a_stored_reason_reads_in_chinese_keeping_its_figures_and_unchanged_in_english(text: str) -> None:
    assert translate_reason(text, EN) == text
    zh = translate_reason(text, ZH)
    assert zh != text
    assert any("\u4e00" <= c <= "\u9fff" for c in zh)
    for number in re.findall(r"-?\d+(?:\.\d+)?", text):
        assert number in zh


def test_text_no_template_matches_is_shown_as_stored() -> None:
    assert translate_reason("a reason from an older rule pack", ZH) == "a reason from an older rule pack"

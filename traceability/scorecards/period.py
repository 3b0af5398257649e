"""Stage 3, scorecards: the period a scorecard covers: a calendar quarter, a month or a date range (UTC)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

_QUARTER: Final = re.compile(r"^(\d{4})Q([1-4])$")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})$")


class PeriodError(ValueError):
    """A period label that is none of the accepted forms; the message says which forms are."""


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC. ``label`` is how it was named: ``2026Q4``, ``2026-11`` or
    ``2026-10-01/2026-12-31`` (a range names its last day, included)."""

    label: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def previous(self) -> Period:
        """The period of the same kind just before: the previous quarter or month, or for a range the
        range of the same number of days ending where this one starts."""
        if m := _QUARTER.match(self.label):
            year, q = int(m[1]), int(m[2])
            return parse_period(f"{year - 1}Q4" if q == 1 else f"{year}Q{q - 1}")
        if m := _MONTH.match(self.label):
            year, month = int(m[1]), int(m[2])
            return parse_period(f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}")
        days = (self.end - self.start).days
        first = self.start.date() - timedelta(days=days)
        last = self.start.date() - timedelta(days=1)
        return parse_period(f"{first.isoformat()}/{last.isoformat()}")


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def parse_period(label: str) -> Period:
    """``2026Q4`` (a calendar quarter), ``2026-11`` (a month) or ``2026-10-01/2026-12-31`` (from the first
    day to the last, both included); all in UTC. Anything else raises PeriodError."""
    text = label.strip()
    if m := _QUARTER.match(text):
        year, q = int(m[1]), int(m[2])
        return Period(text, _month_start(year, 3 * q - 2), _month_start(year, 3 * q + 1))
    if m := _MONTH.match(text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"period {label!r}: month {month} is not 01 to 12")
        return Period(text, _month_start(year, month), _month_start(year, month + 1))
    if m := _RANGE.match(text):
        try:
            first, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        except ValueError:
            raise PeriodError(f"period {label!r}: not a calendar date") from None
        if last < first:
            raise PeriodError(f"period {label!r}: the last day is before the first")
        return Period(text, _midnight(first), _midnight(last) + timedelta(days=1))
    raise PeriodError(
        f"period {label!r}: expected a quarter (2026Q4), a month (2026-11) or a range of days "
        "(2026-10-01/2026-12-31)"
    )


def quarter_of(t: datetime) -> Period:
    """The calendar quarter holding ``t`` (UTC)."""
    u = t.astimezone(UTC)
    return parse_period(f"{u.year}Q{(u.month - 1) // 3 + 1}")

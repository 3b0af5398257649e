"""Stage 3, EPCIS subscriptions: query schedules (cron-like second/minute/hour/dayOfMonth/month/dayOfWeek
fields) and their next firing time, in UTC.

A field is a comma-separated list of elements; an element is a number (``5``), a range (``[1-5]`` as
the EPCIS standard writes it, or ``1-5``), ``*`` (every value), or a start and a step (``0/30``,
``*/15``). dayOfWeek counts 1 = Monday to 7 = Sunday. A field left out matches every value, except the
fields finer than the finest one given, which match their first value only: ``{"hour": "1",
"minute": "5"}`` fires once a day at 01:05:00, not every second of that minute. When both dayOfMonth and
dayOfWeek are given, a day must match both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# (field, first value, last value), finest first.
FIELDS: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("dayOfMonth", 1, 31),
    ("month", 1, 12),
    ("dayOfWeek", 1, 7),
)
_BOUNDS = {name: (lo, hi) for name, lo, hi in FIELDS}
_NUMBER = re.compile("[0-9]{1,2}")  # ASCII digits only: str.isdigit() also takes '¹' and '٣'
# A schedule that matches no time within this long (``dayOfMonth 31`` with ``month 2``) is refused: the
# calendar repeats every 400 years, but any real schedule fires within the 28 years of the weekday cycle.
HORIZON = timedelta(days=366 * 28)


class ScheduleError(ValueError):
    """A schedule that cannot be used (its message is written for the client)."""


def _element(name: str, text: str) -> set[int]:
    lo, hi = _BOUNDS[name]

    def number(part: str) -> int:
        if _NUMBER.fullmatch(part) is None or not lo <= int(part) <= hi:
            raise ScheduleError(f"schedule {name}: {text!r} is not a value from {lo} to {hi}")
        return int(part)

    base, slash, step_text = text.partition("/")
    if base == "*":
        start, end = lo, hi
    elif (base.startswith("[") and base.endswith("]")) or "-" in base:
        first, dash, last = base.strip("[]").partition("-")
        if not dash:
            raise ScheduleError(f"schedule {name}: {text!r} is not a range")
        start, end = number(first), number(last)
        if start > end:
            raise ScheduleError(f"schedule {name}: the range {text!r} is empty")
    else:
        start = number(base)
        end = hi if slash else start
    step = 1
    if slash:
        if _NUMBER.fullmatch(step_text) is None or not 1 <= int(step_text) <= hi:
            raise ScheduleError(f"schedule {name}: {text!r} has no step from 1 to {hi}")
        step = int(step_text)
    return set(range(start, end + 1, step))


@dataclass(frozen=True, slots=True)
class Schedule:
    """The values each field matches."""

    second: frozenset[int]
    minute: frozenset[int]
    hour: frozenset[int]
    day_of_month: frozenset[int]
    month: frozenset[int]
    day_of_week: frozenset[int]

    @classmethod
    def parse(cls, fields: Mapping[str, str | None]) -> Schedule:
        unknown = sorted(set(fields) - set(_BOUNDS))
        if unknown:
            raise ScheduleError(f"schedule has no field {unknown[0]!r} (one of {[f for f, _, _ in FIELDS]})")
        given = [name for name, _, _ in FIELDS if fields.get(name) not in (None, "")]
        if not given:
            raise ScheduleError("schedule names no field: give at least one of second, minute, hour, ...")
        finest = min(i for i, (name, _, _) in enumerate(FIELDS) if name in given)
        values: dict[str, frozenset[int]] = {}
        for i, (name, lo, hi) in enumerate(FIELDS):
            text = fields.get(name)
            if text not in (None, ""):
                assert text is not None
                found: set[int] = set()
                for part in str(text).split(","):
                    found |= _element(name, part.strip())
                values[name] = frozenset(found)
            elif i < finest and name not in ("dayOfMonth", "dayOfWeek"):
                values[name] = frozenset({lo})
            else:
                values[name] = frozenset(range(lo, hi + 1))
        schedule = cls(
            values["second"],
            values["minute"],
            values["hour"],
            values["dayOfMonth"],
            values["month"],
            values["dayOfWeek"],
        )
        probe = datetime(2000, 1, 1, tzinfo=UTC)
        if schedule.next_after(probe) is None:
            raise ScheduleError("schedule matches no time (a day that its months do not have?)")
        return schedule

    def matches(self, t: datetime) -> bool:
        return t.second in self.second and t.minute in self.minute and t.hour in self.hour and self._day(t)

    def _day(self, t: datetime) -> bool:
        return t.month in self.month and t.day in self.day_of_month and t.isoweekday() in self.day_of_week

    def next_after(self, t: datetime) -> datetime | None:
        """The first whole second after ``t`` (UTC) that the schedule matches; None within ``HORIZON``."""
        t = t.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        end = t + HORIZON
        while t < end:
            if not self._day(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            elif t.hour not in self.hour:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
            elif t.minute not in self.minute:
                t = (t + timedelta(minutes=1)).replace(second=0)
            elif t.second not in self.second:
                t += timedelta(seconds=1)
            else:
                return t
        return None

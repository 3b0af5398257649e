"""Stage 2 (verdicts): alarm duties: who is told of an alarm, in which order, and the GSP check at load.

A duties file (TOML, `COLDCHAIN_ALARM_DUTIES_FILE`) names the designated people and, per product class
(or a `default` for the others), the levels of recipients an alarm goes to: level 0 when it opens, the
next level each time it stays unacknowledged past its severity's escalation time::

    [escalation_s]            # seconds an open, unacknowledged alarm waits before the next level
    info = 14400
    warning = 3600
    critical = 900

    [people.wang]
    name = "王工 (QA)"
    email = "wang@example.cn"            # by e-mail (SMTP)
    webhook = "https://ops.example/wang"  # by a signed webhook POST
    mqtt = true                           # on cc/v1/alerts/duty/wang (QoS 1)

    [classes.pharma_2_8]
    levels = [["wang", "li", "zhang"], ["qa_head"], ["director"]]

    [default]
    levels = [["ops"]]

The drug GSP requires alarms to reach at least three designated people, so every drug class (a class
of a pack whose `goods` are drugs) must have at least `GSP_MIN_RECIPIENTS` distinct people at level 0, through
its own entry or the default. A file that does not validate raises `DutiesError` naming the file and
the key path of every error; the settings load it, so a bad file stops the process.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from rules.packs import PackSet, key_path_errors

# The drug GSP appendix on automatic temperature and humidity monitoring: alarms go out on site and by
# message to at least three designated people (shared/design/DOMAIN.md, "Recording and alarm rules").
GSP_MIN_RECIPIENTS = 3

# The MQTT topic of one designated person: under the alerts tree the rules stage may write (the broker
# ACL), beside the fleet-wide cc/v1/alerts/{severity}/{asset}; "duty" is no severity, so they never meet.
DUTY_TOPIC_PREFIX = "cc/v1/alerts/duty"

MAX_DUTIES_BYTES = 1_000_000

Severity = Literal["info", "warning", "critical"]
Channel = Literal["email", "webhook", "mqtt"]
PersonId = str


class DutiesError(ValueError):
    """The duties file is unreadable or invalid; the message names the file and every bad key path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Model):
    """A designated person and the channels they are reached by (at least one)."""

    name: str = Field(min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook: str | None = Field(default=None, pattern=r"^https?://\S+$")
    mqtt: bool = False

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        if self.email is None and self.webhook is None and not self.mqtt:
            raise ValueError("a person needs at least one of email, webhook, mqtt = true")
        return self


def _distinct(level: list[PersonId]) -> list[PersonId]:
    if len(set(level)) != len(level):
        raise ValueError("names someone twice")
    return level


# One level of recipients: at least one person, each once.
Level = Annotated[list[PersonId], Field(min_length=1), AfterValidator(_distinct)]


class Route(_Model):
    """Recipient levels of an alarm: levels[0] when it opens, then one level per escalation."""

    levels: list[Level] = Field(min_length=1)


class EscalationTimes(_Model):
    """Seconds an open, unacknowledged alarm of each severity waits before going to the next level."""

    info: int = Field(default=14_400, gt=0)  # project default: 4 h
    warning: int = Field(default=3_600, gt=0)  # project default: 1 h
    critical: int = Field(default=900, gt=0)  # project default: 15 min

    def of(self, severity: str) -> int:
        if severity not in ("info", "warning", "critical"):
            raise ValueError(f"unknown alarm severity {severity!r}")
        return int(getattr(self, severity))


class Duties(_Model):
    """The whole duties file."""

    escalation_s: EscalationTimes = Field(default_factory=EscalationTimes)
    people: dict[PersonId, Person] = Field(min_length=1)
    classes: dict[str, Route] = Field(default_factory=dict)
    default: Route | None = None

    def route(self, product_class: str | None) -> Route | None:
        """The recipient levels for an alarm of this class (its own entry, else the default)."""
        if product_class is not None and product_class in self.classes:
            return self.classes[product_class]
        return self.default

    def recipients(self, product_class: str | None, level: int) -> list[tuple[PersonId, Channel, str]]:
        """(person, channel, address) of every channel of every person at `level`; [] past the last."""
        route = self.route(product_class)
        if route is None or level >= len(route.levels):
            return []
        out: list[tuple[PersonId, Channel, str]] = []
        for pid in route.levels[level]:
            p = self.people[pid]
            if p.email is not None:
                out.append((pid, "email", p.email))
            if p.webhook is not None:
                out.append((pid, "webhook", p.webhook))
            if p.mqtt:
                out.append((pid, "mqtt", duty_topic(pid)))
        return out

    @property
    def needs_smtp(self) -> bool:
        return any(p.email is not None for p in self.people.values())


def duty_topic(person: PersonId) -> str:
    return f"{DUTY_TOPIC_PREFIX}/{person}"


def check(duties: Duties, packs: PackSet) -> list[str]:
    """Key paths and messages of every reference the file makes that does not hold, and of every drug
    class whose alarms would reach fewer than GSP_MIN_RECIPIENTS designated people at level 0."""
    problems: list[str] = []
    routes = [(f"classes.{code}", r) for code, r in duties.classes.items()]
    if duties.default is not None:
        routes.append(("default", duties.default))
    for where, r in routes:
        for k, level in enumerate(r.levels):
            for j, pid in enumerate(level):
                if pid not in duties.people:
                    problems.append(f"{where}.levels.{k}.{j}: no person {pid!r} in [people]")
    for code in duties.classes:
        if code not in packs:
            problems.append(f"classes.{code}: no such product class in the rule packs")
    for ref in packs.classes():
        if ref.pack.goods != "drugs":  # food: GB 31605 asks for alarm devices, names no number of people
            continue
        own = ref.code in duties.classes
        route = duties.route(ref.code)
        first: set[str] = set() if route is None else set(route.levels[0])
        if len(first) < GSP_MIN_RECIPIENTS:
            where = f"classes.{ref.code}.levels.0" if own else f"classes.{ref.code}"
            via = ""
            if not own:
                via = " (through [default])" if route is not None else " (no entry, no [default])"
            problems.append(
                f"{where}: drug class {ref.code!r} ({ref.pack_id}) must alarm at least {GSP_MIN_RECIPIENTS}"
                f" designated people (drug GSP), has {len(first)}{via}"
            )
    return problems


def parse_duties(raw: bytes, name: str, packs: PackSet) -> Duties:
    """Validate a duties file's bytes against the schema and the loaded packs; DutiesError if invalid."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DutiesError(f"{name}: byte {exc.start} (from 0) is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise DutiesError(f"{name}: invalid TOML: {exc}") from None
    try:
        duties = Duties.model_validate(data)
    except ValidationError as exc:
        raise DutiesError(key_path_errors(name, exc)) from None
    problems = check(duties, packs)
    if problems:
        raise DutiesError("; ".join(f"{name}: {p}" for p in problems))
    return duties


def load_duties(path: Path, packs: PackSet) -> Duties:
    """Read and validate a duties file (see the module's docstring); DutiesError if invalid."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_DUTIES_BYTES + 1)
    except OSError as exc:
        raise DutiesError(f"{path.name}: cannot read: {exc.strerror or 'input/output error'}") from None
    if len(raw) > MAX_DUTIES_BYTES:
        raise DutiesError(f"{path.name}: larger than {MAX_DUTIES_BYTES} bytes (not a duties file?)")
    return parse_duties(raw, path.name, packs)

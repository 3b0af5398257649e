"""Stage 2 (verdicts): load and validate the versioned rule packs (rules/packs/*.toml).

A pack is data, not code: product classes with their limits, each limit citing its source. A pack
that does not validate raises `PackError` naming the file and the key path of every error, e.g.
``cn_food.toml: classes.chilled.low_c: Input should be a valid number``; the service must not start
on a bad pack. Later rule kinds (hysteresis, cumulative budgets, MKT, accuracy, shelf life, alarms)
slot in as further optional tables under a class, each a model here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

DEFAULT_PACKS_DIR = Path(__file__).with_name("packs")

Mode = Literal["storage", "transport"]

# Codes appear in rule ids ("cn_food/chilled/range") and in the registry (asset.product_class).
_CODE_PATTERN = r"^[a-z][a-z0-9_]*$"
ClassCode = Annotated[str, StringConstraints(pattern=_CODE_PATTERN)]


class PackError(ValueError):
    """A rule pack could not be read or did not validate; the message names file and key path."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class Limit(_Model):
    """A duration limit in whole seconds, with the standard/clause (or project default) it comes from."""

    seconds: int = Field(gt=0)
    source: str = Field(min_length=1)


class RecordingInterval(_Model):
    """Longest allowed spacing between temperature records, per asset mode."""

    transport: Limit
    storage: Limit


class ClassRules(_Model):
    """The rules of one product class. Absent `low_c`/`high_c` means no limit on that side."""

    description: str = Field(min_length=1)
    low_c: float | None = None
    high_c: float | None = None
    low_inclusive: bool = True  # True: a reading equal to low_c is in range
    high_inclusive: bool = True  # True: a reading equal to high_c is in range
    source: str = Field(min_length=1)  # source of the temperature range
    min_duration: Limit  # how long out-of-range readings must persist before an excursion counts
    max_interval: RecordingInterval

    @model_validator(mode="after")
    def _check_range(self) -> ClassRules:
        if self.low_c is None and self.high_c is None:
            raise ValueError("a class needs low_c, high_c or both")
        if self.low_c is not None and self.high_c is not None:
            if self.low_c > self.high_c:
                raise ValueError(f"low_c ({self.low_c}) is above high_c ({self.high_c})")
            if self.low_c == self.high_c and not (self.low_inclusive and self.high_inclusive):
                raise ValueError("low_c equals high_c, so both bounds must be inclusive")
        return self

    def max_interval_s(self, mode: Mode) -> int:
        """The longest allowed recording interval for an asset in this mode."""
        return (
            self.max_interval.transport.seconds if mode == "transport" else self.max_interval.storage.seconds
        )

    @property
    def lookback_s(self) -> int:
        """Longest rule window of this class: how far before/after a touched window to re-read."""
        return max(
            self.min_duration.seconds, self.max_interval.transport.seconds, self.max_interval.storage.seconds
        )


class RulePack(_Model):
    """One pack file: identity, version and its product classes keyed by class code."""

    format: Literal[1]
    id: str = Field(pattern=_CODE_PATTERN)
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    classes: dict[ClassCode, ClassRules] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ClassRef:
    """A product class resolved to the pack that defines it."""

    pack: RulePack
    code: str
    rules: ClassRules

    @property
    def pack_id(self) -> str:
        return self.pack.id

    @property
    def pack_version(self) -> str:
        return self.pack.version

    def rule_id(self, rule: str) -> str:
        """Stable rule identifier recorded on verdicts, e.g. ``cn_food/chilled/range``."""
        return f"{self.pack.id}/{self.code}/{rule}"


@dataclass(frozen=True, slots=True)
class PackSet:
    """All loaded packs; class codes are unique across them."""

    packs: Mapping[str, RulePack]
    _by_class: Mapping[str, ClassRef]

    def lookup(self, product_class: str) -> ClassRef | None:
        """The class with this code, or None when no loaded pack defines it."""
        return self._by_class.get(product_class)

    def __getitem__(self, product_class: str) -> ClassRef:
        return self._by_class[product_class]

    def __contains__(self, product_class: object) -> bool:
        return product_class in self._by_class

    def classes(self) -> Iterator[ClassRef]:
        """Every class of every pack, in class-code order."""
        for code in sorted(self._by_class):
            yield self._by_class[code]


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_pack(path: Path) -> RulePack:
    """Read and validate one pack file; raise PackError naming the file and key path."""
    name = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PackError(f"{name}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PackError(f"{name}: invalid TOML: {exc}") from exc
    try:
        pack = RulePack.model_validate(data)
    except ValidationError as exc:
        lines = [f"{name}: {_format_loc(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise PackError("\n".join(lines)) from exc
    if pack.id != path.stem:
        raise PackError(f"{name}: id: pack id {pack.id!r} must equal the file name stem {path.stem!r}")
    return pack


def load_packs(packs_dir: Path | None = None) -> PackSet:
    """Load every ``*.toml`` pack in `packs_dir` (default: the packs shipped in rules/packs/)."""
    folder = packs_dir if packs_dir is not None else DEFAULT_PACKS_DIR
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise PackError(f"{folder}: no rule packs (*.toml) found")
    packs: dict[str, RulePack] = {}
    by_class: dict[str, ClassRef] = {}
    for path in files:
        pack = load_pack(path)
        for code, rules in pack.classes.items():
            if code in by_class:
                other = by_class[code].pack.id
                raise PackError(f"{path.name}: classes.{code}: class already defined by pack {other!r}")
            by_class[code] = ClassRef(pack=pack, code=code, rules=rules)
        packs[pack.id] = pack
    return PackSet(packs=packs, _by_class=by_class)

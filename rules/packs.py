"""Stage 2 (verdicts): load and validate the versioned rule packs (rules/packs/*.toml).

A pack is data, not code: product classes with their limits, each limit citing its source. A pack
that does not validate raises `PackError` naming the file and the key path of every error, e.g.
``cn_food.toml: classes.chilled.low_c: Input should be a valid number``; the service must not start
on a bad pack. Optional tables per class: hysteresis, allowances (single event, cumulative over a
window), the recording interval per mode (storage, transport, and road / rail / sea where a source
gives one) and while out of range, excursion band (with its inclusive bounds and a transient-spike
allowance), WHO-PQS-style triggers, MKT, door-open and power-loss limits, defrost suspension,
sensor-fault thresholds, device accuracy, humidity limits and shelf life; a pack may state a default
device accuracy. What each verdict means is written in docs/rule-semantics.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

DEFAULT_PACKS_DIR = Path(__file__).with_name("packs")
# A pack is a few kilobytes of TOML; 1 MiB refuses a device file or a mistaken binary before it fills memory.
MAX_PACK_BYTES = 1024 * 1024
# Absolute zero in °C: a shelf-life reference temperature must lie above it (the Arrhenius rate
# divides by the absolute temperature).
_ABSOLUTE_ZERO_C = -273.15

# The mode an asset's recording interval is chosen by: the registry's asset_transport_mode (one mapping from
# asset kind and mounting, registry/migrations/0003_evidence_quality.sql); 'transport' is a conveyance of no
# known mode.
Mode = Literal["storage", "transport", "road", "rail", "sea"]
MODES: tuple[Mode, ...] = ("storage", "transport", "road", "rail", "sea")

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


class Figure(_Model):
    """A number (°C or °C-based) with its source."""

    value: float = Field(ge=0)
    source: str = Field(min_length=1)


class RecordingInterval(_Model):
    """Longest allowed spacing between temperature records, per asset mode; tighter while out of range.

    `road`, `rail` and `sea` are the figures for one transport mode where a source gives one; where the
    asset's transport mode has none, `transport` applies (`limit`)."""

    transport: Limit
    storage: Limit
    out_of_range: Limit | None = None  # applies after an out-of-range reading, whatever the mode
    road: Limit | None = None
    rail: Limit | None = None
    sea: Limit | None = None

    def limit(self, mode: Mode) -> Limit:
        """The interval that applies to an asset in `mode` (the one place that chooses it)."""
        if mode == "storage":
            return self.storage
        specific = {"road": self.road, "rail": self.rail, "sea": self.sea}.get(mode)
        return self.transport if specific is None else specific


class WindowLimit(_Model):
    """At most `seconds` of something within any sliding window of `window_s` seconds."""

    seconds: int = Field(ge=0)
    window_s: int = Field(gt=0)
    source: str = Field(min_length=1)


class Allowances(_Model):
    """Excursion budgets: beyond them an excursion breaks the chain (a `broken` verdict)."""

    single_event: Limit | None = None  # longest single excursion tolerated
    cumulative: WindowLimit | None = None  # total time out of range within any window


class Spike(_Model):
    """Transient spikes above a band's upper limit that are still permitted: a run of readings above
    the band that stays at or below `high_c` and lasts at most `seconds` (first to last reading above
    the band, as an excursion's duration) is not a break (e.g. USP <659> CRT: up to 40 °C, ≤ 24 h)."""

    high_c: float
    seconds: int = Field(gt=0)
    source: str = Field(min_length=1)


class Band(_Model):
    """Hard limits around the labelled range (e.g. USP CRT excursions 15-30 °C): outside is `broken`.

    An inclusive bound is permitted (a reading equal to it is inside the band); an exclusive one is
    not (a freeze-sensitive vaccine's ``low_c = 0.0`` with ``low_inclusive = false``: a reading at
    or below 0 °C breaks the chain)."""

    low_c: float | None = None
    high_c: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    spike: Spike | None = None
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_band(self) -> Band:
        if self.low_c is None and self.high_c is None:
            raise ValueError("a band needs low_c, high_c or both")
        if self.low_c is not None and self.high_c is not None and self.low_c >= self.high_c:
            raise ValueError(f"band low_c ({self.low_c}) must lie below band high_c ({self.high_c})")
        if self.spike is not None and (self.high_c is None or self.spike.high_c <= self.high_c):
            raise ValueError("spike.high_c must lie above the band's high_c")
        return self


class Humidity(_Model):
    """Relative-humidity limits (%RH) of a class, at least one bound; inclusive (at the bound is in).
    `modes`: the asset modes the limits hold in, where the source says (the drug GSP's 35–75 %RH is a
    storage rule, 储存); absent, every mode."""

    low_pct: float | None = Field(default=None, ge=0, le=100)
    high_pct: float | None = Field(default=None, ge=0, le=100)
    source: str = Field(min_length=1)
    modes: list[Mode] | None = Field(default=None, min_length=1)

    def applies(self, mode: Mode) -> bool:
        """Whether the limits judge an asset in `mode` (the one place that says so)."""
        return self.modes is None or mode in self.modes

    @model_validator(mode="after")
    def _check_bounds(self) -> Humidity:
        if self.low_pct is None and self.high_pct is None:
            raise ValueError("a humidity limit needs low_pct, high_pct or both")
        if self.low_pct is not None and self.high_pct is not None and self.low_pct > self.high_pct:
            raise ValueError(f"low_pct ({self.low_pct}) is above high_pct ({self.high_pct})")
        return self


TriggerKind = Literal["instant", "consecutive", "cumulative"]


class Trigger(_Model):
    """A WHO PQS E006-style alarm trigger; thresholds are inclusive (at the threshold = triggered)."""

    name: str = Field(pattern=_CODE_PATTERN)
    kind: TriggerKind
    side: Literal["high", "low"]
    threshold_c: float
    seconds: int = Field(default=0, ge=0)  # consecutive: run length; cumulative: total in the window
    window_s: int | None = Field(default=None, gt=0)  # cumulative only
    severity: Literal["info", "warning", "critical"] = "warning"
    # The verdict a firing implies. A device standard's alarm (WHO PQS E006 recorders and shipping
    # indicators) is `broken`: the product's exposure has to be assessed before use.
    verdict: Literal["excursion", "broken"] = "broken"
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_kind(self) -> Trigger:
        if self.kind == "cumulative" and self.window_s is None:
            raise ValueError("a cumulative trigger needs window_s")
        if self.kind != "cumulative" and self.window_s is not None:
            raise ValueError("window_s applies to cumulative triggers only")
        if self.kind == "instant" and self.seconds != 0:
            raise ValueError("an instant trigger takes no seconds")
        return self


class Mkt(_Model):
    """Mean kinetic temperature limit over a rolling window (ΔH/R in kelvin, 10 000 K by default)."""

    limit_c: float
    window_s: int = Field(gt=0)
    delta_h_r_k: float = Field(default=10_000.0, gt=0)
    source: str = Field(min_length=1)


class Defrost(_Model):
    """Defrost-cycle suspension: high-side excursions no longer than `max_s` and peaking at most
    `max_rise_c` above the upper limit are suspended (not counted)."""

    max_s: int = Field(gt=0)
    max_rise_c: float = Field(gt=0)
    source: str = Field(min_length=1)


class Faults(_Model):
    """Sensor-fault thresholds; a detected fault makes a verdict at best `indeterminate`."""

    flatline_s: int = Field(gt=0)  # identical values for this long
    spike_c: float = Field(gt=0)  # a reading this far from both neighbours, same direction
    max_rate_c_per_min: float = Field(gt=0)  # impossible rate of change
    source: str = Field(min_length=1)


class ShelfLife(_Model):
    """Remaining shelf life: reference life at a reference temperature, additive consumption.

    arrhenius: rate(T) = exp(Ea/R · (1/T_ref − 1/T)); sqrt (Ratkowsky): rate(T) = ((T − T_min) /
    (T_ref − T_min))², 0 at or below T_min."""

    model: Literal["arrhenius", "sqrt"]
    ref_c: float = Field(gt=_ABSOLUTE_ZERO_C)
    ref_life_h: float = Field(gt=0)
    ea_kj_mol: float | None = Field(default=None, gt=0)
    t_min_c: float | None = None
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_model(self) -> ShelfLife:
        if self.model == "arrhenius" and self.ea_kj_mol is None:
            raise ValueError("the arrhenius model needs ea_kj_mol")
        if self.model == "sqrt":
            if self.t_min_c is None:
                raise ValueError("the sqrt model needs t_min_c")
            if self.t_min_c >= self.ref_c:
                raise ValueError("t_min_c must be below ref_c")
        return self


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
    hysteresis: Figure | None = None  # dead band: an excursion ends only this far back inside
    allowances: Allowances | None = None
    band: Band | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    mkt: Mkt | None = None
    door_open: Limit | None = None  # longest door-open period
    power_loss: Limit | None = None  # longest power loss
    defrost: Defrost | None = None
    faults: Faults | None = None
    accuracy: Figure | None = None  # default device accuracy when the device states none
    humidity: Humidity | None = None  # relative-humidity limits, where a source gives them
    shelf_life: ShelfLife | None = None

    @model_validator(mode="after")
    def _check_range(self) -> ClassRules:
        if self.low_c is None and self.high_c is None:
            raise ValueError("a class needs low_c, high_c or both")
        if self.low_c is not None and self.high_c is not None:
            if self.low_c > self.high_c:
                raise ValueError(f"low_c ({self.low_c}) is above high_c ({self.high_c})")
            if self.low_c == self.high_c and not (self.low_inclusive and self.high_inclusive):
                raise ValueError("low_c equals high_c, so both bounds must be inclusive")
        if self.band is not None:
            if self.band.low_c is not None and (self.low_c is None or self.band.low_c > self.low_c):
                raise ValueError("band.low_c must lie at or below low_c")
            if self.band.high_c is not None and (self.high_c is None or self.band.high_c < self.high_c):
                raise ValueError("band.high_c must lie at or above high_c")
            b = self.band
            if b.low_c is not None and not b.low_inclusive and b.low_c == self.low_c:
                raise ValueError("an exclusive band.low_c must lie below low_c")
            if b.high_c is not None and not b.high_inclusive and b.high_c == self.high_c:
                raise ValueError("an exclusive band.high_c must lie above high_c")
        hyst = self.hysteresis
        span = None if self.low_c is None or self.high_c is None else self.high_c - self.low_c
        if hyst is not None and span is not None and 2 * hyst.value > span:
            raise ValueError("hysteresis wider than half the range")
        names = [t.name for t in self.triggers]
        if len(set(names)) != len(names):
            raise ValueError("trigger names must be unique within a class")
        return self

    @property
    def hysteresis_c(self) -> float:
        return 0.0 if self.hysteresis is None else self.hysteresis.value

    def oor_interval_s(self, mode: Mode) -> int:
        """The recording interval that applies after an out-of-range reading."""
        tight = self.max_interval.out_of_range
        base = self.max_interval_s(mode)
        return base if tight is None else min(base, tight.seconds)

    def max_interval_s(self, mode: Mode) -> int:
        """The longest allowed recording interval for an asset in this mode."""
        return self.max_interval.limit(mode).seconds

    @property
    def lookback_s(self) -> int:
        """Longest rule window of this class: how far before/after a touched window to re-read."""
        spans = [self.min_duration.seconds, *(self.max_interval_s(mode) for mode in MODES)]
        if self.band is not None and self.band.spike is not None:
            spans.append(self.band.spike.seconds)
        if self.allowances is not None and self.allowances.cumulative is not None:
            spans.append(self.allowances.cumulative.window_s)
        spans.extend(t.window_s or t.seconds for t in self.triggers)
        if self.door_open is not None:
            spans.append(self.door_open.seconds)
        if self.power_loss is not None:
            spans.append(self.power_loss.seconds)
        return max(spans)


class RulePack(_Model):
    """One pack file: identity, version and its product classes keyed by class code."""

    format: Literal[1]
    id: str = Field(pattern=_CODE_PATTERN)
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    # What the classes protect: food (GB 31605's duties) or drugs and vaccines (the drug GSP's, among them
    # alarms to at least three designated people: rules.alarms.duties).
    goods: Literal["food", "drugs"]
    accuracy: Figure | None = None  # the pack's default device accuracy, after the device's and the class's
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


def key_path_errors(name: str, exc: ValidationError) -> str:
    """A validation error of the TOML file `name` as one line: each error as `name: key.path: message`
    (the form every TOML file the rules stage reads is refused in)."""
    return "; ".join(
        f"{name}: {'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}"
        for err in exc.errors()
    )


def load_pack(path: Path) -> RulePack:
    """Read and validate one pack file; raise PackError naming the file and key path."""
    name = path.name
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_PACK_BYTES + 1)
        if len(raw) > MAX_PACK_BYTES:
            raise PackError(f"{name}: larger than {MAX_PACK_BYTES} bytes (not a rule pack?)")
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise PackError(f"{name}: cannot read: {exc.strerror or 'input/output error'}") from exc
    except UnicodeDecodeError as exc:
        raise PackError(f"{name}: byte {exc.start} (from 0) is not UTF-8 text (not a rule pack?)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PackError(f"{name}: invalid TOML: {exc}") from exc
    try:
        pack = RulePack.model_validate(data)
    except ValidationError as exc:
        raise PackError(key_path_errors(name, exc)) from exc
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

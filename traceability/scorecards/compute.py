"""Stage 3, scorecards: indicators per subject from the atoms, the weighted score, the ranking against the
previous period, and the drill-down rows behind one indicator of one subject."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from traceability import queries as trace_queries
from traceability.scorecards import queries
from traceability.scorecards.atoms import (
    Atom,
    Conn,
    alarm_atoms,
    asset_atoms,
    calibration_atoms,
    device_day_atoms,
    load_exemptions,
    mount_atoms,
)
from traceability.scorecards.model import (
    INDICATOR_KEYS,
    LOWER_IS_BETTER_SHARES,
    SPECS,
    SUBJECTS,
    Card,
    Exemption,
    Indicator,
    Scoreboard,
)
from traceability.scorecards.period import Period
from traceability.scorecards.transit import shipment_atoms
from traceability.scorecards.weights import Weights, default_weights

SeenBy = Mapping[str, str | None]


class ScorecardError(ValueError):
    """A request that names no subject kind or indicator there is."""


class UnknownSubjectError(LookupError):
    """No card of that subject in the period, or not one the caller may see (the same answer: 404)."""


def collect(
    conn: Conn,
    period: Period,
    w: Weights,
    subject: str,
    only: Sequence[str] | None = None,
    *,
    facts: bool = True,
) -> tuple[list[Atom], list[Exemption]]:
    """Every atom of every indicator over the period that counts for subjects of kind ``subject``, and the
    exemptions the period holds. The shipment-side atoms come summed per subject id, or, when ``only``
    names subject ids, row by row for those subjects (``facts``: see transit.shipment_atoms)."""
    # One transaction (a savepoint inside the caller's), so its settings hold for every statement, also on
    # a connection in autocommit (the API's pool), where each statement would be a transaction of its own.
    with conn.transaction():
        conn.execute(queries.TRANSACTION_SETTINGS)
        exs = load_exemptions(conn, period)
        atoms, mounts = mount_atoms(conn, period, exs, w)
        atoms += device_day_atoms(conn, period, exs, mounts)
        atoms += shipment_atoms(conn, period, exs, w, subject, only, facts=facts)
        atoms += alarm_atoms(conn, period, exs, w)
        atoms += calibration_atoms(period, exs, mounts)
        atoms += asset_atoms(conn, period, exs)
    return atoms, exs


def _check(subject: str, indicator: str | None = None) -> None:
    if subject not in SUBJECTS:
        raise ScorecardError(f"subject {subject!r}: one of {', '.join(SUBJECTS)}")
    if indicator is not None and indicator not in SPECS:
        raise ScorecardError(f"indicator {indicator!r}: one of {', '.join(INDICATOR_KEYS)}")


def _indicator(key: str, atoms: Sequence[Atom], exs: Sequence[Exemption]) -> Indicator:
    num = sum(a.numerator for a in atoms)
    den = sum(a.denominator for a in atoms)
    used = sorted({i for a in atoms for i in a.exemptions})
    listed = [exs[i] for i in used]
    kind = SPECS[key].kind
    note: str | None = None
    ratio: float | None
    if kind == "seconds":
        values = [a.value for a in atoms if a.value is not None]
        ratio = statistics.median(values) if values else None
        if den > 0 and not values:
            note = "no alarm was acknowledged"
    elif den <= 0:
        ratio = None
    elif kind == "per_100h":
        ratio = num * 100.0 / den
    else:
        ratio = num / den
    if den <= 0 and note is None:
        note = "nothing to judge in the period" if not atoms else "everything was exempt or not applicable"
    return Indicator(key, float(num), float(den), ratio, listed, note)


def score_of(indicators: Mapping[str, Indicator], w: Weights) -> float | None:
    """The weighted score (0..100) over the indicators that have a ratio and a weight; None when none has.
    A share counts as is (sequence integrity as 1 - missing share); a rate per 100 h and a duration count
    1 at 0, falling linearly to 0 at their cap."""
    total = part = 0.0
    for key, ind in indicators.items():
        weight = w.weights.get(key, 0.0)
        if ind.ratio is None or weight <= 0:
            continue
        kind = SPECS[key].kind
        if kind == "share":
            value = 1.0 - ind.ratio if key in LOWER_IS_BETTER_SHARES else ind.ratio
        elif kind == "per_100h":
            value = max(0.0, 1.0 - ind.ratio / w.cap_anomalies_per_100h)
        else:
            value = max(0.0, 1.0 - ind.ratio / w.cap_ack_median_s)
        total += weight
        part += weight * min(max(value, 0.0), 1.0)
    return round(100.0 * part / total, 4) if total > 0 else None


def _cards(conn: Conn, period: Period, subject: str, w: Weights, facts: bool = True) -> list[Card]:
    atoms, exs = collect(conn, period, w, subject, facts=facts)
    per: dict[str, dict[str, list[Atom]]] = {}
    for a in atoms:
        for sid in a.subjects.get(subject, frozenset()):
            per.setdefault(sid, {}).setdefault(a.indicator, []).append(a)
    ids = sorted(per)
    names = dict(conn.execute(queries.NAMES[subject], (ids,)).fetchall())
    cards = []
    for sid in sorted(set(ids) | set(names)):
        got = per.get(sid, {})
        indicators = {k: _indicator(k, got.get(k, []), exs) for k in INDICATOR_KEYS}
        cards.append(Card(sid, str(names.get(sid, sid)), indicators, score_of(indicators, w), None, None))
    return cards


def _rank(cards: list[Card]) -> list[Card]:
    """Best score first (ties: the same rank, then by id), unscored last without a rank."""
    cards.sort(key=lambda c: (c.score is None, -(c.score or 0.0), c.subject_id))
    rank = 0
    prev: float | None = None
    for i, c in enumerate(cards, start=1):
        if c.score is None:
            continue
        if c.score != prev:
            rank, prev = i, c.score
        c.rank = rank
    return cards


def _visible(conn: Conn, subject: str, ids: list[str], seen_by: SeenBy) -> set[str]:
    params = {"ids": ids, "role": seen_by.get("role"), "party": seen_by.get("party")}
    return {str(r[0]) for r in conn.execute(queries.VISIBLE[subject], params).fetchall()}


def scoreboard(
    conn: Conn,
    period: Period,
    subject: str,
    *,
    seen_by: SeenBy = trace_queries.EVERYTHING,
    weights: Weights | None = None,
    facts: bool = True,
) -> Scoreboard:
    """Every card of ``subject`` kind over ``period``, ranked among all of them, with the previous period's
    score; only the cards ``seen_by`` may see (a carrier: its own). ``facts``: see transit.shipment_atoms."""
    _check(subject)
    w = weights or default_weights()
    cards = _rank(_cards(conn, period, subject, w, facts))
    before = {c.subject_id: c.score for c in _cards(conn, period.previous(), subject, w, facts)}
    for c in cards:
        c.previous_score = before.get(c.subject_id)
    seen = _visible(conn, subject, [c.subject_id for c in cards], seen_by)
    return Scoreboard(period, subject, w.version, [c for c in cards if c.subject_id in seen])


def card(
    conn: Conn,
    period: Period,
    subject: str,
    subject_id: str,
    *,
    seen_by: SeenBy = trace_queries.EVERYTHING,
    weights: Weights | None = None,
) -> Card:
    """One subject's card (ranked among all), or UnknownSubjectError."""
    board = scoreboard(conn, period, subject, seen_by=seen_by, weights=weights)
    for c in board.cards:
        if c.subject_id == subject_id:
            return c
    raise UnknownSubjectError(f"no {subject} {subject_id!r} in {period.label}")


def _row(a: Atom, exs: Sequence[Exemption]) -> dict[str, Any]:
    row = dict(a.row)
    row["numerator"] = a.numerator
    row["denominator"] = a.denominator
    if a.value is not None:
        row["value"] = a.value
    row["exemptions"] = [exs[i] for i in a.exemptions]
    return row


def drill_all(
    conn: Conn,
    period: Period,
    subject: str,
    subject_ids: Sequence[str],
    *,
    seen_by: SeenBy = trace_queries.EVERYTHING,
    weights: Weights | None = None,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The rows behind every indicator of each of ``subject_ids`` the caller sees (subject id -> indicator
    -> rows), from one reading of the period."""
    _check(subject)
    seen = _visible(conn, subject, list(subject_ids), seen_by)
    atoms, exs = collect(
        conn, period, weights or default_weights(), subject, [s for s in subject_ids if s in seen]
    )
    out: dict[str, dict[str, list[dict[str, Any]]]] = {
        sid: {k: [] for k in INDICATOR_KEYS} for sid in subject_ids if sid in seen
    }
    for a in atoms:
        for sid in a.subjects.get(subject, frozenset()):
            if sid in out:
                out[sid][a.indicator].append(_row(a, exs))
    return out


def drill(
    conn: Conn,
    period: Period,
    subject: str,
    subject_id: str,
    indicator: str,
    *,
    seen_by: SeenBy = trace_queries.EVERYTHING,
    weights: Weights | None = None,
) -> list[dict[str, Any]]:
    """The rows behind one indicator of one subject: each with its numerator and denominator (and the
    exemptions that took it out), in the order they were read. UnknownSubjectError when the subject is
    not registered and has no row in the period, or is not the caller's to see."""
    _check(subject, indicator)
    found = drill_all(conn, period, subject, [subject_id], seen_by=seen_by, weights=weights)
    if subject_id not in found:
        raise UnknownSubjectError(f"no {subject} {subject_id!r} in {period.label}")
    rows = found[subject_id]
    if not any(rows.values()):
        names = dict(conn.execute(queries.NAMES[subject], ([subject_id],)).fetchall())
        if subject_id not in names:
            raise UnknownSubjectError(f"no {subject} {subject_id!r} in {period.label}")
    return rows[indicator]


def grant_exemption(conn: Conn, e: Exemption) -> None:
    """Record an exemption (in the caller's transaction); refused when it names no indicator or subject
    kind there is, or ends before it starts."""
    if e.indicator != "*":
        _check(e.subject_kind, e.indicator)
    else:
        _check(e.subject_kind)
    if e.end <= e.start:
        raise ScorecardError("an exemption ends after it starts")
    if not e.reason.strip() or not e.granted_by.strip():
        raise ScorecardError("an exemption states its reason and who granted it")
    conn.execute(
        queries.INSERT_EXEMPTION,
        (e.indicator, e.subject_kind, e.subject_id, e.start, e.end, e.reason, e.granted_by, e.granted_at),
    )

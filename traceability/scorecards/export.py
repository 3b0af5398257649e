"""Stage 3, scorecards: a scoreboard, a card and drill-down rows as plain JSON values (the API, the CLI's
--json and the reports' tables read these)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from traceability.scorecards.model import Card, Exemption, Indicator, Scoreboard


def plain(value: Any) -> Any:
    """A JSON value of ``value``: times as RFC 3339, dates ISO, exemptions as objects, containers walked."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Exemption):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def indicator_dict(ind: Indicator) -> dict[str, Any]:
    return {
        "key": ind.key,
        "numerator": ind.numerator,
        "denominator": ind.denominator,
        "ratio": ind.ratio,
        "exemptions": plain(ind.exemptions),
        "note": ind.note,
    }


def card_dict(card: Card) -> dict[str, Any]:
    return {
        "subject_id": card.subject_id,
        "name": card.name,
        "score": card.score,
        "rank": card.rank,
        "previous_score": card.previous_score,
        "trend": card.trend,
        "indicators": {k: indicator_dict(v) for k, v in card.indicators.items()},
    }


def board_dict(board: Scoreboard) -> dict[str, Any]:
    return {
        "period": {
            "label": board.period.label,
            "start": board.period.start.isoformat(),
            "end": board.period.end.isoformat(),
        },
        "subject": board.subject,
        "weights_version": board.weights_version,
        "cards": [card_dict(c) for c in board.cards],
    }


def rows_list(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [plain(r) for r in rows]

"""Tests: instant-trigger and accuracy alarms resolve when their condition clears at the latest reading,
not only when the reading that raised them leaves the look-back (real worker, real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rules_support import Conn, add_asset, add_device, add_readings, add_series, drain

from rules import alarms, engine
from rules.packs import load_packs
from rules.worker import RulesWorker

# A class of its own, so the test reads only the figures it sets: a 10-min look-back (the longest rule
# window), an instant trigger at 9 °C and a ±0.5 °C probe accuracy.
PACK = """
format = 1
id = "clearing"
version = "1"
title = "Alarm clearing test pack"
goods = "food"

[classes.clear_2_8]
description = "2 to 8 °C with an instant heat trigger"
low_c = 2.0
high_c = 8.0
source = "test"

[classes.clear_2_8.min_duration]
seconds = 600
source = "test"

[classes.clear_2_8.max_interval.storage]
seconds = 600
source = "test"

[classes.clear_2_8.max_interval.transport]
seconds = 600
source = "test"

[classes.clear_2_8.accuracy]
value = 0.5
source = "test"

[[classes.clear_2_8.triggers]]
name = "heat_instant"
kind = "instant"
side = "high"
threshold_c = 9.0
severity = "critical"
source = "test"
"""


def alarm_states(conn: Conn, asset: str) -> dict[str, list[tuple[str, Any]]]:
    out: dict[str, list[tuple[str, Any]]] = {}
    for a in reversed(alarms.list_alarms(conn, asset_id=asset)):
        out.setdefault(a["rule_id"].rsplit("/", 1)[1], []).append((a["state"], a["resolve_note"]))
    return out


def test_instant_and_accuracy_alarms_resolve_when_the_condition_clears(
    conn: Conn, db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "clearing.toml").write_text(PACK)
    add_asset(conn, "ROOM-C", "cold_room", "clear_2_8", "storage")
    add_device(conn, "probe-c", "ROOM-C")
    sid = add_series(conn, "probe-c", "temp")
    worker = RulesWorker(db_url, tmp_path)
    try:
        # One reading at 9.5 °C: the instant trigger fires (too short for an excursion).
        add_readings(conn, sid, [(m, 5.0) for m in range(0, 10)] + [(10, 9.5)])
        drain(worker)
        assert alarm_states(conn, "ROOM-C") == {"trigger.heat_instant": [("open", None)]}
        # Back at 5 °C a minute later, the 9.5 °C reading still inside the 10-min look-back: resolved.
        add_readings(conn, sid, [(m, 5.0) for m in range(11, 16)])
        drain(worker)
        assert alarm_states(conn, "ROOM-C") == {
            "trigger.heat_instant": [("resolved", "trigger.heat_instant clear at the latest reading")]
        }
        # More normal readings do not open it again while the old reading stays in the look-back.
        add_readings(conn, sid, [(m, 5.0) for m in range(16, 19)])
        drain(worker)
        assert [s for s, _ in alarm_states(conn, "ROOM-C")["trigger.heat_instant"]] == ["resolved"]

        # 7.8 °C lies within the ±0.5 °C accuracy of the 8 °C limit: indeterminate, an info alarm ...
        add_readings(conn, sid, [(m, 5.0) for m in range(19, 30)] + [(30, 7.8)])
        drain(worker)
        assert alarm_states(conn, "ROOM-C")["accuracy"] == [("open", None)]
        # ... resolved by the next reading well inside the range.
        add_readings(conn, sid, [(31, 5.0)])
        drain(worker)
        assert alarm_states(conn, "ROOM-C")["accuracy"] == [
            ("resolved", "accuracy clear at the latest reading")
        ]
        # A late batch that brings a new 9.6 °C reading before the latest one opens the alarm (it
        # happened) and resolves it (it is over).
        add_readings(conn, sid, [(30.5, 9.6)])
        drain(worker)
        assert [s for s, _ in alarm_states(conn, "ROOM-C")["trigger.heat_instant"]] == [
            "resolved",
            "resolved",
        ]
    finally:
        worker.close()


def test_momentary_clear_reads_the_latest_non_nan_reading(tmp_path: Path) -> None:
    (tmp_path / "clearing.toml").write_text(PACK)
    ref = load_packs(tmp_path).lookup("clear_2_8")
    assert ref is not None
    trigger, accuracy = "clearing/clear_2_8/trigger.heat_instant", "clearing/clear_2_8/accuracy"
    assert engine.momentary_clear(ref, np.array([9.5, np.nan])) == {accuracy}
    assert engine.momentary_clear(ref, np.array([9.5, 9.0])) == {accuracy}  # inclusive threshold
    assert engine.momentary_clear(ref, np.array([9.5, 7.5])) == {trigger}  # 8 − 0.5: inclusive
    assert engine.momentary_clear(ref, np.array([9.5, 7.4])) == {trigger, accuracy}
    assert engine.momentary_clear(ref, np.array([7.4]), accuracy_c=0.7) == {trigger}  # the device's own
    assert engine.momentary_clear(ref, np.array([np.nan])) == {trigger, accuracy}

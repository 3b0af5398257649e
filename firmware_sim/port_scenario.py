"""Stage 0, devices: the port scenario's reefer containers and trucks around Qinzhou, planned and played."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from firmware_sim import encode
from firmware_sim.devices import MINUTE_MS, DoorOpening, Fix, TrackedReefer
from firmware_sim.port_timeline import PORT_SCENARIO_MS, PortTimeline, port_timeline
from firmware_sim.scenario import BATCH_MINUTES, Action, Publication, play

# The devices' noise is seeded by the scenario, not by its start: every run is the same run, shifted in time.
PORT_SEED: Final = 2611


@dataclass(frozen=True)
class PortReport:
    start_ms: int
    end_ms: int
    messages: int
    telemetry_messages: int
    readings_published: int
    status_messages: int
    silent_devices: tuple[str, ...]  # devices whose telemetry stopped before the end
    steps: int  # human steps run as actions (captured by the caller)
    wall_s: float


def plan_port(start_ms: int, timeline: PortTimeline | None = None) -> list[Publication]:
    """Every publish of the port scenario in scenario-time order. Pure: the same plan for every start,
    shifted by it.

    Each reefer samples every minute and sends a batch every 10 minutes of its clock; a track that falls
    silent sends what it sampled before, then nothing (its broker session's Last Will says offline)."""
    w = timeline or port_timeline()
    s = start_ms
    rng = random.Random(PORT_SEED)
    pubs: list[Publication] = []
    for track in w.tracks:
        boot = rng.randrange(1, 50)
        model = TrackedReefer(
            track.device_id,
            random.Random(rng.random()),
            tuple(Fix(s + f.t_ms, f.at) for f in track.fixes),
            track.setpoint_c,
            tuple(DoorOpening(s + d.from_ms, s + d.to_ms, d.outside_c) for d in track.doors),
        )
        dev = track.device_id
        pubs.append(_status(dev, "online", s))
        end = PORT_SCENARIO_MS if track.silent_from_offset_ms is None else track.silent_from_offset_ms
        seq = 0
        pending: list[encode.Reading] = []
        first_seq = 0
        for minute in range(end // MINUTE_MS):
            t = s + minute * MINUTE_MS
            rows = model.sample(t)
            if not pending:
                first_seq = seq
            pending.extend(rows)
            seq += len(rows)
            if (minute + 1) % BATCH_MINUTES == 0:
                pubs.append(_telemetry(dev, boot, first_seq, pending, t))
                pending = []
        if pending:
            pubs.append(_telemetry(dev, boot, first_seq, pending, s + end - MINUTE_MS))
        pubs.append(_status(dev, "offline", s + end))
    pubs.sort(key=lambda p: p.t_ms)  # stable: a device's own messages keep their order
    return pubs


def _telemetry(dev: str, boot: int, first_seq: int, rows: Sequence[encode.Reading], t_ms: int) -> Publication:
    payload = encode.telemetry(dev, boot, first_seq, rows)
    return Publication(t_ms, dev, encode.topic(dev, "telemetry"), payload, "telemetry", len(rows))


def _status(dev: str, state: Literal["online", "offline"], t_ms: int) -> Publication:
    payload = encode.status(dev, state, t_ms)
    return Publication(t_ms, dev, encode.topic(dev, "status"), payload, "status", 1, True)


def run_port(
    host: str,
    port: int,
    *,
    start_ms: int,
    speedup: float,
    on_step: Callable[[int], None] | None = None,
    on_handling: Callable[[int], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    username: str | None = None,
    password: str | None = None,
    mqtt5: bool = True,
    publish_timeout_s: float = 60.0,
) -> PortReport:
    """Play the port scenario's devices against a broker; `on_step(i)` runs at the scenario time of the
    timeline's i-th human step, `on_handling(i)` at that of its i-th handling inside the devices' window
    (the caller records them, as the port's systems would; those after the window are the caller's)."""
    timeline = port_timeline()
    plan = plan_port(start_ms, timeline)
    actions: list[Action] = []
    if on_step is not None:
        step_cb = on_step
        actions = [(start_ms + st.t_offset_ms, _bind(step_cb, i)) for i, st in enumerate(timeline.steps)]
    if on_handling is not None:
        handling_cb = on_handling
        actions += [
            (start_ms + h.t_offset_ms, _bind(handling_cb, i))
            for i, h in enumerate(timeline.handlings)
            if h.t_offset_ms <= PORT_SCENARIO_MS
        ]
    wall_s = play(
        host,
        port,
        plan,
        start_ms=start_ms,
        speedup=speedup,
        on_progress=on_progress,
        username=username,
        password=password,
        mqtt5=mqtt5,
        publish_timeout_s=publish_timeout_s,
        actions=actions,
    )
    telemetry = [p for p in plan if p.kind == "telemetry"]
    return PortReport(
        start_ms=start_ms,
        end_ms=start_ms + PORT_SCENARIO_MS,
        messages=len(plan),
        telemetry_messages=len(telemetry),
        readings_published=sum(p.items for p in telemetry),
        status_messages=sum(1 for p in plan if p.kind == "status"),
        silent_devices=tuple(t.device_id for t in timeline.tracks if t.silent_from_offset_ms is not None),
        steps=len(actions),
        wall_s=wall_s,
    )


def _bind(callback: Callable[[int], None], index: int) -> Callable[[], None]:
    return lambda: callback(index)

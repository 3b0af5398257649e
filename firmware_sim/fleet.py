"""Stage 0, devices: the fleet generator: samples, injected faults, the ratios they imply, a stepped player.

Every truck's logger samples temp, lat and lon once a minute and sends each sample as one message at
once. A fault profile takes exactly round(share × samples) of each device's samples, chosen by a seeded
generator (the same fleet and start give the same choice): lost ones are never sent, late ones are sent
LATE_MS after their device time, malformed ones are sent as a message the gateway must refuse. So every
count the scorecards see is exact, and ``implied`` states each ratio with tolerance 0. ``play_stepped``
publishes on a stepped clock that the receiving side follows.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from firmware_sim import encode
from firmware_sim.devices import HOUR_MS, MINUTE_MS
from firmware_sim.fleet_world import CHANNELS, SETPOINT_C, FaultProfile, Fleet, Trip
from firmware_sim.scenario import DeviceLink, Publication, SimulatorError

FLEET_SEED: Final = 2612
SAMPLE_MS: Final = MINUTE_MS  # one sample (temp, lat, lon) a minute
# Late samples arrive 2 h after their device time: beyond 3600 s, the widest receive-lag bucket of the
# rollups, so late under any mode's timeliness limit they can express.
LATE_MS: Final = 2 * HOUR_MS
BOOT: Final = 1
TEMP_NOISE_C: Final = 0.1  # probe noise; the box holds its 2 degC setpoint, well inside 0..4 degC

# What happens to a sample (one message of len(CHANNELS) readings).
SENT, LOST, LATE, MALFORMED = 0, 1, 2, 3


@dataclass(frozen=True)
class DeviceSamples:
    """One logger's samples over the period, as arrays (index i = sample at start + i × SAMPLE_MS)."""

    device_id: str
    carrier_party_id: str
    t_ms: npt.NDArray[np.int64]  # device time
    temp_c: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    fate: npt.NDArray[np.int8]  # SENT, LOST, LATE or MALFORMED

    @property
    def upload_ms(self) -> npt.NDArray[np.int64]:
        """When each sample is sent (scenario time): at once, or LATE_MS later."""
        return self.t_ms + np.where(self.fate == LATE, LATE_MS, 0).astype(np.int64)

    def seq(self, i: int) -> int:
        return i * len(CHANNELS)


def fates(fleet: Fleet, device_id: str, profile: FaultProfile) -> npt.NDArray[np.int8]:
    """Which samples of a device the faults take: disjoint, seeded by the fleet seed and the device id.

    The last sample is always sent at once (so the gateway sees every earlier gap by seq); a late sample is
    one whose upload still falls within the period."""
    n = fleet.period_ms // SAMPLE_MS
    rng = random.Random(f"{FLEET_SEED}:{device_id}")
    out = np.zeros(n, dtype=np.int8)
    free = list(range(n - 1))
    for fate, share, last in (
        (LOST, profile.lost, n - 2),
        (MALFORMED, profile.malformed, n - 2),
        (LATE, profile.late, n - 1 - LATE_MS // SAMPLE_MS),
    ):
        k = round(share * n)  # exactly, of all n samples
        if not k:
            continue
        eligible = [i for i in free if i <= last]
        if k > len(eligible):
            raise ValueError(f"{device_id}: the period is too short for {share:.0%} of its samples")
        chosen = rng.sample(eligible, k)
        out[chosen] = fate
        taken = set(chosen)
        free = [i for i in free if i not in taken]
    return out


def samples(fleet: Fleet, start_ms: int) -> Iterator[DeviceSamples]:
    """Every logger's samples over the period starting at `start_ms`, carrier by carrier."""
    n = fleet.period_ms // SAMPLE_MS
    t_off = np.arange(n, dtype=np.int64) * SAMPLE_MS
    trips_of: dict[str, list[Trip]] = {}
    for trip in fleet.trips:
        trips_of.setdefault(trip.asset_id, []).append(trip)
    for carrier in fleet.carriers:
        for truck in carrier.trucks:
            trips = trips_of[truck.asset_id]
            fix_t = np.array([f.t_ms for trip in trips for f in trip.fixes], dtype=np.float64)
            fix_lat = np.array([f.at.lat for trip in trips for f in trip.fixes])
            fix_lon = np.array([f.at.lon for trip in trips for f in trip.fixes])
            noise = np.random.default_rng([FLEET_SEED, len(truck.device_id), *truck.device_id.encode()])
            temp = np.round(SETPOINT_C + np.clip(noise.normal(0, TEMP_NOISE_C, n), -1.0, 1.0), 2)
            yield DeviceSamples(
                device_id=truck.device_id,
                carrier_party_id=carrier.party_id,
                t_ms=start_ms + t_off,
                temp_c=temp,
                lat=np.round(np.interp(t_off, fix_t, fix_lat), 6),
                lon=np.round(np.interp(t_off, fix_t, fix_lon), 6),
                fate=fates(fleet, truck.device_id, carrier.profile),
            )


# Malformed messages, in turn: JSON cut short, an unknown wire version, a value that is no number.
def malformed_payload(device_id: str, seq: int, t_ms: int, k: int) -> bytes:
    whole = encode.telemetry(device_id, BOOT, seq, [(t_ms, "temp", 2.0)])
    if k % 3 == 0:
        return whole[: len(whole) // 2]
    if k % 3 == 1:
        return whole.replace(b'"v":1', b'"v":9', 1)
    return whole.replace(b'"v":2.0', b'"v":"2.0"', 1)


def plan_fleet(fleet: Fleet, start_ms: int) -> list[Publication]:
    """Every publish of the fleet over the period, in upload order (a device's own in its seq order)."""
    pubs: list[Publication] = []
    for dev in samples(fleet, start_ms):
        topic = encode.topic(dev.device_id, "telemetry")
        upload = dev.upload_ms
        bad = 0
        for i in range(len(dev.t_ms)):
            fate = int(dev.fate[i])
            if fate == LOST:
                continue
            t = int(dev.t_ms[i])
            if fate == MALFORMED:
                payload = malformed_payload(dev.device_id, dev.seq(i), t, bad)
                bad += 1
                pubs.append(Publication(t, dev.device_id, topic, payload, "malformed", len(CHANNELS)))
                continue
            rows: list[encode.Reading] = [
                (t, "temp", float(dev.temp_c[i])),
                (t, "lat", float(dev.lat[i])),
                (t, "lon", float(dev.lon[i])),
            ]
            payload = encode.telemetry(dev.device_id, BOOT, dev.seq(i), rows)
            pubs.append(Publication(int(upload[i]), dev.device_id, topic, payload, "telemetry", len(rows)))
    pubs.sort(key=lambda p: p.t_ms)  # stable
    return pubs


# ---- the ratios the profiles imply -----------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """An indicator's value as the injected faults imply it; `tolerance` on the ratio (0: exact)."""

    numerator: float
    denominator: float
    tolerance: float = 0.0

    @property
    def ratio(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator


@dataclass
class _Counts:
    samples: int = 0
    lost: int = 0
    late: int = 0
    malformed: int = 0
    temp_received: int = 0  # capped at the expected count, device by device
    temp_expected: int = 0
    trips: int = 0
    trips_matched: int = 0
    drive_h: float = 0.0
    off_track: int = 0


def implied(fleet: Fleet, start_ms: int, *, required_interval_ms: int) -> dict[str, dict[str, Expected]]:
    """Per carrier (party id), per indicator key: what the injected faults imply, exactly.

    - completeness: temperature readings received, capped at the readings expected, over the readings
      expected: one per `required_interval_ms` of the period (every logger is mounted all period);
    - timeliness: readings stored within every mode's limit (sent at once) over readings stored;
    - conformance: messages accepted over messages received (lost samples are never sent);
    - sequence: readings missing by seq (lost and malformed samples) over readings produced;
    - track_matching: trips leaving the origin's fence and entering the destination's within their window,
      over trips;
    - trajectory_anomalies (per 100 shipment-hours, over the drive hours): none, where no truck is off
      track (the off-track truck stands still short of its destination: not implied here);
    - temp_compliance: monitored time in range over monitored time (the box never leaves 0..4 degC);
    - lots_unbroken: lots without a break over lots (no gap reaches the required interval);
    - coverage_assets: assets with a live device over assets.
    """
    per: dict[str, _Counts] = {c.party_id: _Counts() for c in fleet.carriers}
    expected = fleet.period_ms // required_interval_ms
    for dev in samples(fleet, start_ms):
        c = per[dev.carrier_party_id]
        fate = dev.fate
        c.samples += len(fate)
        c.lost += int((fate == LOST).sum())
        c.late += int((fate == LATE).sum())
        c.malformed += int((fate == MALFORMED).sum())
        c.temp_received += min(expected, int(((fate == SENT) | (fate == LATE)).sum()))
        c.temp_expected += expected
    for trip in fleet.trips:
        c = per[trip.carrier_party_id]
        c.trips += 1
        c.trips_matched += 0 if trip.off_track else 1
        c.off_track += 1 if trip.off_track else 0
        moving = [f.t_ms for a, f in itertools.pairwise(trip.fixes) if a.at != f.at]
        c.drive_h += (moving[-1] - trip.fixes[1].t_ms) / HOUR_MS
    ch = len(CHANNELS)
    out: dict[str, dict[str, Expected]] = {}
    for carrier in fleet.carriers:
        c = per[carrier.party_id]
        stored = (c.samples - c.lost - c.malformed) * ch
        received = c.samples - c.lost
        trucks = len(carrier.trucks)
        out[carrier.party_id] = {
            "completeness": Expected(c.temp_received, c.temp_expected),
            "timeliness": Expected(stored - c.late * ch, stored),
            "conformance": Expected(received - c.malformed, received),
            "sequence": Expected((c.lost + c.malformed) * ch, c.samples * ch),
            "track_matching": Expected(c.trips_matched, c.trips),
            "temp_compliance": Expected(1.0, 1.0),
            "lots_unbroken": Expected(c.trips, c.trips),
            "coverage_assets": Expected(trucks, trucks),
        }
        if not c.off_track:
            out[carrier.party_id]["trajectory_anomalies"] = Expected(0.0, c.drive_h / 100)
    return out


# ---- playing it on a stepped clock -------------------------------------------------------------------


def play_stepped(
    host: str,
    port: int,
    plan: Sequence[Publication],
    *,
    at: Callable[[int], None],
    settle: Callable[[int], None],
    username: str | None = None,
    password: str | None = None,
    publish_timeout_s: float = 60.0,
) -> int:
    """Publish a plan step by step, one connection per device: for each distinct upload time T, in order,
    `at(T)` (the receiving side's clock now reads T), every publish of T, their PUBACKs, then
    `settle(n)` with the number published so far (it returns once the receiver has taken them all).
    So every message is received at exactly its upload time, however fast the steps go. Returns the
    number of messages published."""
    links = {
        cid: DeviceLink(
            cid, host, port, will_t_ms=plan[0].t_ms if plan else 0, username=username, password=password
        )
        for cid in dict.fromkeys(p.client_id for p in plan)
    }
    sent = 0
    try:
        for link in links.values():
            link.connect()
        i = 0
        while i < len(plan):
            t = plan[i].t_ms
            at(t)
            infos = []
            while i < len(plan) and plan[i].t_ms == t:
                p = plan[i]
                infos.append((p, links[p.client_id].publish(p.topic, p.payload, retain=p.retain)))
                i += 1
            for p, info in infos:
                info.wait_for_publish(publish_timeout_s)
                if not info.is_published():
                    raise SimulatorError(
                        f"{p.client_id}: no PUBACK for {p.topic} within {publish_timeout_s} s"
                    )
            sent += len(infos)
            settle(sent)
    finally:
        for link in links.values():
            link.close()
    return sent

"""Stage 0, devices: the demo's timeline (Qinzhou -> Nanning chilled shrimp), planned and played."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from firmware_sim import encode
from firmware_sim.devices import HOUR_MS, MINUTE_MS, ColdRoomLogger, DoorOpening, ReeferTruck, RfidReader
from firmware_sim.world import (
    LOGGER,
    PALLET_SSCC,
    READER_DOCK3,
    READER_NN_DOCK1,
    READER_PUTAWAY,
    REEFER,
    TRUCK_EPC,
    UNKNOWN_DEVICE,
)

SCENARIO_MS: Final = 8 * HOUR_MS
BATCH_MINUTES: Final = 10  # a device sends what it sampled every 10 min of its clock

# ---- the timeline ----------------------------------------------------------------------------

# Scenario-relative times (ms after S).
PUTAWAY_AT: Final = 5_000
MALFORMED_AT: Final = 1 * HOUR_MS
DOCK3_AT: Final = 2 * HOUR_MS
LOADING_DOOR: Final = (1 * HOUR_MS + 55 * MINUTE_MS, 2 * HOUR_MS + 5 * MINUTE_MS)
DEPART_AT: Final = 2 * HOUR_MS + 10 * MINUTE_MS
SERVICE_STOP: Final = (3 * HOUR_MS, 3 * HOUR_MS + 30 * MINUTE_MS)
EXCURSION_DOOR: Final = (3 * HOUR_MS, 3 * HOUR_MS + 25 * MINUTE_MS)  # door open 25 min in roadside air
DROPOUT: Final = (4 * HOUR_MS + 10 * MINUTE_MS, 4 * HOUR_MS + 50 * MINUTE_MS)  # nothing sent, nothing kept
ARRIVE_AT: Final = 5 * HOUR_MS + 50 * MINUTE_MS
NN_DOCK1_AT: Final = 6 * HOUR_MS
UNLOADING_DOOR: Final = (6 * HOUR_MS, 6 * HOUR_MS + 10 * MINUTE_MS)
ENCLOSED_DOCK_C: Final = 6.0  # air of an enclosed, chilled loading dock (GB 31605-2020 asks for one)
ROADSIDE_C: Final = 29.0  # Guangxi service-area air


PubKind = Literal["telemetry", "rfid", "status", "malformed"]


@dataclass(frozen=True)
class Publication:
    """One MQTT publish of the plan: who sends what, when (scenario time)."""

    t_ms: int
    client_id: str
    topic: str
    payload: bytes
    kind: PubKind
    items: int = 0  # readings or tag reads in it
    retain: bool = False


@dataclass(frozen=True)
class ScenarioReport:
    start_ms: int
    end_ms: int
    messages: int  # every publish, malformed and status included
    telemetry_messages: int
    readings_published: int
    readings_lost: int  # sampled during the truck's dropout and never sent
    rfid_messages: int
    rfid_reads: int
    status_messages: int
    malformed_sent: int
    wall_s: float


def _boot(rng: random.Random) -> int:
    return rng.randrange(1, 50)


def plan_demo(start_ms: int) -> tuple[list[Publication], int]:
    """Every publish of the demo in scenario-time order, and the readings lost in the dropout. Pure."""
    rng = random.Random(start_ms)
    s = start_ms
    logger = ColdRoomLogger(LOGGER, random.Random(rng.random()))
    truck = ReeferTruck(
        REEFER,
        random.Random(rng.random()),
        depart_ms=s + DEPART_AT,
        stop_ms=s + SERVICE_STOP[0],
        resume_ms=s + SERVICE_STOP[1],
        arrive_ms=s + ARRIVE_AT,
        doors=(
            DoorOpening(s + LOADING_DOOR[0], s + LOADING_DOOR[1], ENCLOSED_DOCK_C),
            DoorOpening(s + EXCURSION_DOOR[0], s + EXCURSION_DOOR[1], ROADSIDE_C),
            DoorOpening(s + UNLOADING_DOOR[0], s + UNLOADING_DOOR[1], ENCLOSED_DOCK_C),
        ),
    )
    readers = {
        d: RfidReader(d, random.Random(rng.random())) for d in (READER_PUTAWAY, READER_DOCK3, READER_NN_DOCK1)
    }
    boots = {d: _boot(rng) for d in (LOGGER, REEFER, *readers)}
    seqs = dict.fromkeys(boots, 0)
    pubs: list[Publication] = []

    def status(device_id: str, state: Literal["online", "offline"], t_ms: int) -> None:
        payload = encode.status(device_id, state, t_ms)
        pubs.append(
            Publication(t_ms, device_id, encode.topic(device_id, "status"), payload, "status", 1, True)
        )

    for d in boots:
        status(d, "online", s)

    lost = 0
    pending: dict[str, list[encode.Reading]] = {LOGGER: [], REEFER: []}
    first_seq: dict[str, int] = {}
    for minute in range(SCENARIO_MS // MINUTE_MS):
        t = s + minute * MINUTE_MS
        for dev, model in ((LOGGER, logger), (REEFER, truck)):
            rows = model.sample(t)
            if dev == REEFER and s + DROPOUT[0] <= t < s + DROPOUT[1]:
                seqs[dev] += len(rows)  # sampled, then lost with the modem: a real gap
                lost += len(rows)
                continue
            if not pending[dev]:
                first_seq[dev] = seqs[dev]
            pending[dev].extend(rows)
            seqs[dev] += len(rows)
            if (minute + 1) % BATCH_MINUTES == 0:
                payload = encode.telemetry(dev, boots[dev], first_seq[dev], pending[dev])
                topic = encode.topic(dev, "telemetry")
                pubs.append(Publication(t, dev, topic, payload, "telemetry", len(pending[dev])))
                pending[dev] = []
    for dev, rows in pending.items():  # a batch cut short by the dropout's end goes out with the next one
        if rows:
            end = s + SCENARIO_MS - MINUTE_MS
            payload = encode.telemetry(dev, boots[dev], first_seq[dev], rows)
            pubs.append(
                Publication(end, dev, encode.topic(dev, "telemetry"), payload, "telemetry", len(rows))
            )

    for reader, at, epcs in (
        (READER_PUTAWAY, PUTAWAY_AT, (PALLET_SSCC,)),
        (READER_DOCK3, DOCK3_AT, (PALLET_SSCC, TRUCK_EPC)),
        (READER_NN_DOCK1, NN_DOCK1_AT, (PALLET_SSCC, TRUCK_EPC)),
    ):
        reads = readers[reader].pass_tags(s + at, epcs)
        payload = encode.rfid(reader, boots[reader], seqs[reader], reads)
        seqs[reader] += len(reads)
        t_sent = reads[-1][0]
        pubs.append(Publication(t_sent, reader, encode.topic(reader, "rfid"), payload, "rfid", len(reads)))

    pubs.extend(_malformed(s + MALFORMED_AT, boots[LOGGER]))
    for d in boots:
        status(d, "offline", s + SCENARIO_MS)
    pubs.sort(key=lambda p: p.t_ms)  # stable: a device's own messages keep their order
    return pubs, lost


def _malformed(t_ms: int, boot: int) -> list[Publication]:
    """A buggy firmware on the cold-room logger, and a device nobody registered."""
    topic = encode.topic(LOGGER, "telemetry")
    bad_json = b'{"v":1,"device":"qz-b2-logger","boot":1,"seq":0,"readings":[{"t":'
    other = encode.telemetry(REEFER, boot, 0, [(t_ms, "temp:1", 2.1)])  # device id differs from topic
    schema = b'{"v":1,"device":"qz-b2-logger","boot":1,"seq":0,"readings":[{"t":1,"ch":"colour","v":"blue"}]}'
    unknown = encode.telemetry(UNKNOWN_DEVICE, 1, 0, [(t_ms, "temp", 2.3), (t_ms, "rh", 87.0)])
    return [
        Publication(t_ms, LOGGER, topic, bad_json, "malformed"),
        Publication(t_ms, LOGGER, topic, other, "malformed"),
        Publication(t_ms, LOGGER, topic, schema, "malformed"),
        Publication(t_ms, UNKNOWN_DEVICE, encode.topic(UNKNOWN_DEVICE, "telemetry"), unknown, "malformed"),
    ]


# ---- playing it against a broker ---------------------------------------------------------------


class SimulatorError(RuntimeError):
    """The simulator could not connect or deliver (broker unreachable, credentials refused, no PUBACK)."""


class DeviceLink:
    """One device's MQTT connection: client id = device id; Last Will `offline`, retained."""

    def __init__(
        self,
        device_id: str,
        host: str,
        port: int,
        *,
        will_t_ms: int,
        username: str | None = None,
        password: str | None = None,
        mqtt5: bool = True,
    ) -> None:
        self.device_id = device_id
        self.host = host
        self.port = port
        self._will = encode.status(device_id, "offline", will_t_ms)
        self._username = username
        self._password = password
        self._mqtt5 = mqtt5
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client: mqtt.Client | None = None

    def connect(self, timeout_s: float = 10.0) -> None:
        protocol = mqtt.MQTTv5 if self._mqtt5 else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=protocol)
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        client.will_set(encode.topic(self.device_id, "status"), self._will, qos=1, retain=True)
        client.on_connect = self._on_connect
        self._client = client
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as e:
            raise SimulatorError(f"{self.device_id}: cannot reach broker {self.host}:{self.port}: {e}") from e
        client.loop_start()
        if not self._connected.wait(timeout_s) or self._refused:
            self.close()
            raise SimulatorError(f"{self.device_id}: broker did not accept the connection: {self._refused}")

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            client.disconnect()
        self._connected.set()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        assert self._client is not None, "connect() first"
        return self._client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


Action = tuple[int, Callable[[], None]]  # (scenario time ms, what to do then)


def play(
    host: str,
    port: int,
    plan: Sequence[Publication],
    *,
    start_ms: int,
    speedup: float,
    on_progress: Callable[[str], None] | None = None,
    username: str | None = None,
    password: str | None = None,
    mqtt5: bool = True,
    publish_timeout_s: float = 60.0,
    actions: Sequence[Action] = (),
) -> float:
    """Publish a plan (in scenario-time order) against a broker, one connection per device: scenario time =
    start_ms + (wall time elapsed) * speedup. ``actions`` run at their scenario time, each before the
    publishes of the same time. Returns the wall seconds taken, once the broker acknowledged (PUBACK) every
    publish."""
    if speedup <= 0:
        raise ValueError("speedup must be > 0")
    say = on_progress or (lambda _msg: None)
    links = {
        cid: DeviceLink(
            cid, host, port, will_t_ms=start_ms, username=username, password=password, mqtt5=mqtt5
        )
        for cid in dict.fromkeys(p.client_id for p in plan)
    }
    todo = sorted(actions, key=lambda a: a[0])
    end_ms = max([p.t_ms for p in plan] + [a[0] for a in todo] + [start_ms])
    wall0 = time.monotonic()

    def wait_until(t_ms: int) -> None:
        delay = wall0 + (t_ms - start_ms) / 1000.0 / speedup - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def act_until(t_ms: int) -> None:
        while todo and todo[0][0] <= t_ms:
            at, action = todo.pop(0)
            wait_until(at)
            action()

    infos: list[tuple[Publication, mqtt.MQTTMessageInfo]] = []
    try:
        for link in links.values():
            link.connect()
        hours = (end_ms - start_ms) / HOUR_MS
        say(f"simulator: {len(links)} devices connected; playing {hours:g} h at x{speedup:g}")
        next_hour = 1
        for pub in plan:
            act_until(pub.t_ms)
            wait_until(pub.t_ms)
            infos.append((pub, links[pub.client_id].publish(pub.topic, pub.payload, retain=pub.retain)))
            if pub.t_ms - start_ms >= next_hour * HOUR_MS:
                say(f"simulator: S+{next_hour}h, {len(infos)} messages sent")
                next_hour += 1
        act_until(end_ms)
        deadline = time.monotonic() + publish_timeout_s
        for pub, info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise SimulatorError(
                    f"{pub.client_id}: no PUBACK for {pub.topic} within {publish_timeout_s} s"
                )
    finally:
        for link in links.values():
            link.close()
    return round(time.monotonic() - wall0, 3)


def run_demo(
    host: str,
    port: int,
    *,
    start_ms: int,
    speedup: float,
    on_progress: Callable[[str], None] | None = None,
    username: str | None = None,
    password: str | None = None,
    mqtt5: bool = True,
    publish_timeout_s: float = 60.0,
) -> ScenarioReport:
    """Play the demo timeline against a broker: scenario time = start_ms + (wall time elapsed) * speedup.

    Returns once every publish has been acknowledged by the broker (PUBACK)."""
    say = on_progress or (lambda _msg: None)
    plan, lost = plan_demo(start_ms)
    wall_s = play(
        host,
        port,
        plan,
        start_ms=start_ms,
        speedup=speedup,
        on_progress=say,
        username=username,
        password=password,
        mqtt5=mqtt5,
        publish_timeout_s=publish_timeout_s,
    )
    telemetry = [p for p in plan if p.kind == "telemetry"]
    rfid = [p for p in plan if p.kind == "rfid"]
    report = ScenarioReport(
        start_ms=start_ms,
        end_ms=start_ms + SCENARIO_MS,
        messages=len(plan),
        telemetry_messages=len(telemetry),
        readings_published=sum(p.items for p in telemetry),
        readings_lost=lost,
        rfid_messages=len(rfid),
        rfid_reads=sum(p.items for p in rfid),
        status_messages=sum(1 for p in plan if p.kind == "status"),
        malformed_sent=sum(1 for p in plan if p.kind == "malformed"),
        wall_s=wall_s,
    )
    say(f"simulator: done, {report.messages} messages, {report.readings_published} readings")
    return report

"""Tests: every payload the simulator encodes validates against gateway/schema/*.json (no shared import)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from firmware_sim import encode
from firmware_sim.devices import MINUTE_MS
from firmware_sim.scenario import DROPOUT, plan_demo
from firmware_sim.world import LOGGER, PALLET_SSCC, REEFER, TRUCK_EPC, demo_world

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "gateway" / "schema"
S_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{kind}.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


VALIDATORS = {kind: _validator(kind) for kind in ("telemetry", "rfid", "status")}


def _kind(topic: str) -> str:
    return topic.rsplit("/", 1)[1]


def test_every_planned_payload_validates() -> None:
    pubs, _ = plan_demo(S_MS)
    checked = 0
    for p in pubs:
        doc = json.loads(p.payload) if p.kind != "malformed" or p.payload.endswith(b"}") else None
        if p.kind == "malformed":
            continue
        VALIDATORS[_kind(p.topic)].validate(doc)
        assert doc is not None
        assert doc["device"] == p.topic.split("/")[3]
        checked += 1
    assert checked == sum(1 for p in pubs if p.kind != "malformed") > 100


def test_malformed_payloads_are_each_wrong_in_their_own_way() -> None:
    pubs, _ = plan_demo(S_MS)
    bad = [p for p in pubs if p.kind == "malformed"]
    assert len(bad) == 4
    verdicts: list[str] = []
    for p in bad:
        try:
            doc: Any = json.loads(p.payload)
        except json.JSONDecodeError:
            verdicts.append("malformed_json")
            continue
        errors = list(VALIDATORS[_kind(p.topic)].iter_errors(doc))
        if errors:
            verdicts.append("schema")
        elif doc["device"] != p.topic.split("/")[3]:
            verdicts.append("device_mismatch")
        else:
            verdicts.append("valid, unregistered device")
    assert sorted(verdicts) == ["device_mismatch", "malformed_json", "schema", "valid, unregistered device"]
    unknown = {d.device_id for d in demo_world().devices}
    assert bad[-1].client_id not in unknown


@pytest.mark.parametrize(
    "payload",
    [
        encode.telemetry(
            "d-1", 0, 0, [(S_MS, "temp:1", -18.4), (S_MS, "door", None), (S_MS, "battery", 87.0)]
        ),
        encode.rfid("rdr.1", 3, 7, [(S_MS, "urn:epc:id:sscc:6901234.0000000001", 2, -52.5)]),
        encode.status("d_1", "offline", S_MS),
    ],
)
def test_encoder_output_validates(payload: bytes) -> None:
    doc = json.loads(payload)
    kind = "telemetry" if "readings" in doc else "rfid" if "reads" in doc else "status"
    VALIDATORS[kind].validate(doc)


def test_encoder_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode.telemetry("d-1", 0, 0, [(S_MS, "temp", float("nan"))])


def test_plan_is_deterministic_and_follows_the_timeline() -> None:
    pubs, lost = plan_demo(S_MS)
    assert pubs == plan_demo(S_MS)[0]
    assert [p.t_ms for p in pubs] == sorted(p.t_ms for p in pubs)
    truck: list[tuple[int, str, float | None]] = []
    seqs: list[tuple[int, int]] = []
    for p in pubs:
        if p.client_id == REEFER and p.kind == "telemetry":
            doc = json.loads(p.payload)
            seqs.append((doc["seq"], len(doc["readings"])))
            truck += [(r["t"], r["ch"], r["v"]) for r in doc["readings"]]
    probe = [(t, v) for t, ch, v in truck if ch == "temp:1"]
    # Dropout: nothing with a device time inside it, and the seq jumps by what was lost.
    assert not any(S_MS + DROPOUT[0] <= t < S_MS + DROPOUT[1] for t, _ in probe)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probe)]
    assert max(gaps) == 41 * MINUTE_MS
    assert lost == 40 * 7
    jumps = [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(seqs)]
    assert sorted(set(jumps)) == [0, lost]
    # Excursion: the probe runs above 8 degC, and above 4 degC for more than 10 min, around S+3h.
    warm = [t for t, v in probe if v is not None and v > 4.0]
    assert max(v for _, v in probe if v is not None) > 8.0
    assert len(warm) > 10
    assert all(S_MS + 3 * 3600_000 <= t < S_MS + 3 * 3600_000 + 45 * MINUTE_MS for t in warm)
    # The cold room stays chilled (0-4 degC) throughout.
    room = [
        r["v"]
        for p in pubs
        if p.client_id == LOGGER and p.kind == "telemetry"
        for r in json.loads(p.payload)["readings"]
        if r["ch"] == "temp"
    ]
    assert len(room) == 480
    assert all(0.0 < v < 4.0 for v in room)
    # RFID: put-away (pallet), dock 3 and Nanning dock 1 (pallet + truck tag).
    rfid = [
        (p.client_id, sorted({r["epc"] for r in json.loads(p.payload)["reads"]}))
        for p in pubs
        if p.kind == "rfid"
    ]
    assert rfid == [
        ("rfid-qz-putaway", [PALLET_SSCC]),
        ("rfid-qz-dock3", sorted([PALLET_SSCC, TRUCK_EPC])),
        ("rfid-nn-dock1", sorted([PALLET_SSCC, TRUCK_EPC])),
    ]


def test_world_matches_the_contract() -> None:
    w = demo_world()
    assert {p.party_id for p in w.parties} == {
        "6901234000004",
        "6901234000011",
        "6901234000028",
        "8850000000001",
    }
    assert {d.device_id for d in w.devices} == {
        "qz-b2-logger",
        "truck-12345-rc",
        "rfid-qz-putaway",
        "rfid-qz-dock3",
        "rfid-nn-dock1",
    }
    assert {(r.device_id, r.biz_step, r.disposition, r.custodian) for r in w.read_points} >= {
        ("rfid-qz-dock3", "shipping", "in_transit", "6901234000011"),
        ("rfid-nn-dock1", "receiving", "in_progress", "6901234000028"),
    }
    truck = next(a for a in w.assets if a.asset_id == "TRUCK-GXA-12345")
    assert (truck.epc, truck.product_class, truck.mode, truck.operator_party_id) == (
        TRUCK_EPC,
        "chilled",
        "transport",
        "6901234000011",
    )
    (pack,) = w.packings
    assert (pack.parent_id, pack.lot_id, pack.quantity, pack.uom) == (
        PALLET_SSCC,
        "urn:epc:class:lgtin:6901234.012345.QZ2611A",
        800.0,
        "KGM",
    )

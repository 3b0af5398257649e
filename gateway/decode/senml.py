"""Stage 1 (ingest): SenML (RFC 8428) decoding: packs of records mapped onto telemetry channels."""

from __future__ import annotations

import math
import re
from typing import Any, Final

from gateway.decode.common import RejectError, check_ranges, clock_flag, number, parse_time_ms
from gateway.models import TelemetryBatch

# A resolved name is "<device>:<channel>" or "<device>/<channel>"; the unit must be the channel's SenML
# unit (RFC 8428 section 12.1, RFC 8798) when given.
SENML_UNITS: Final[dict[str, str]] = {
    "temp": "Cel",
    "setpoint": "Cel",
    "rh": "%RH",
    "lat": "lat",
    "lon": "lon",
    "speed": "m/s",
    "battery": "%EL",
    "door": "/",
    "power": "/",
}
_SENML_CHANNEL_RE: Final = re.compile(
    r"(temp(?:[:/][A-Za-z0-9_-]{1,16})?|rh|door|power|setpoint|lat|lon|speed|battery)"
)
# SenML times below 2**28 s are relative to "now" (RFC 8428 section 4.5.3): the device's clock would be
# replaced by ours, which drug GSP forbids, so such packs are refused.
SENML_RELATIVE_LIMIT_S: Final = 2**28
_MS_PER_S_KMH: Final = 3.6  # m/s -> km/h


def from_document(doc: list[dict[str, Any]], device: str, received_at_ms: int) -> TelemetryBatch:
    """The telemetry batch of a schema-valid SenML pack (no (boot, seq): no gap counting)."""
    bn, bt, bu = "", 0.0, None
    t_ms: list[int] = []
    channel: list[str] = []
    value: list[float | None] = []
    for i, rec in enumerate(doc):
        bn = rec.get("bn", bn)
        bt = float(rec.get("bt", bt))
        bu = rec.get("bu", bu)
        if rec.get("bver", 10) > 10:
            raise RejectError("schema", f"[{i}]: SenML version {rec['bver']} is not supported")
        name = bn + rec.get("n", "")
        for sep in (":", "/"):
            if name.startswith(device + sep):
                measurement = name[len(device) + 1 :]
                break
        else:
            raise RejectError(
                "device_mismatch", f"[{i}]: SenML name {name[:100]!r} is not {device!r}:<channel>"
            )
        if not _SENML_CHANNEL_RE.fullmatch(measurement):
            raise RejectError("schema", f"[{i}]: {measurement[:50]!r} is not a channel")
        ch = measurement.replace("/", ":")
        base = ch.split(":", 1)[0]
        unit = rec.get("u", bu)
        if unit is not None and unit != SENML_UNITS[base]:
            raise RejectError("bad_unit", f"[{i}] ({ch}): unit {unit!r}, expected {SENML_UNITS[base]!r}")
        if ("v" in rec) == ("vb" in rec):
            raise RejectError("schema", f"[{i}] ({ch}): a record needs exactly one of v, vb")
        raw = rec["v"] if "v" in rec else float(rec["vb"])
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise RejectError("schema", f"[{i}] ({ch}): value is not a number")
        t_s = bt + float(rec.get("t", 0.0))
        if not math.isfinite(t_s) or t_s < SENML_RELATIVE_LIMIT_S:
            raise RejectError(
                "bad_time", f"[{i}]: SenML time {t_s!r} is relative or missing; send absolute time"
            )
        t_ms.append(parse_time_ms(round(t_s * 1000)))
        v = number(raw)
        if base == "speed":
            v *= _MS_PER_S_KMH
        channel.append(ch)
        value.append(v)
    flags = [clock_flag(t, received_at_ms) for t in t_ms]
    check_ranges(channel, value)
    return TelemetryBatch(
        device_id=device,
        boot=0,
        seq=0,
        received_at_ms=received_at_ms,
        t_ms=t_ms,
        channel=channel,
        value=value,
        flags=flags,
        seq_tracked=False,
    )

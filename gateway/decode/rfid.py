"""Stage 1 (ingest): RFID decoding: tag reads, hex EPCs turned into pure-identity URIs."""

from __future__ import annotations

from typing import Any

from gateway.decode.common import RSSI_RANGE_DBM, RejectError, number, parse_time_ms
from gateway.decode.epc import EpcError, decode_hex, is_epc_hex
from gateway.models import RfidBatch


def from_document(doc: dict[str, Any], device: str, received_at_ms: int) -> RfidBatch:
    """The batch of a schema-valid rfid document."""
    t_ms: list[int] = []
    epc: list[str] = []
    antenna: list[int | None] = []
    rssi: list[float | None] = []
    for i, r in enumerate(doc["reads"]):
        t = parse_time_ms(r["t"])
        raw_rssi = r.get("rssi")
        rssi_dbm: float | None = None
        if raw_rssi is not None:
            rssi_dbm = number(raw_rssi)
            lo, hi = RSSI_RANGE_DBM
            if not lo <= rssi_dbm <= hi:
                detail = f"reads[{i}]: rssi {raw_rssi!r} outside {lo:g}..{hi:g} dBm"
                raise RejectError("out_of_range", detail)
        ant = r.get("ant")
        t_ms.append(t)
        epc.append(_epc_uri(r["epc"], i))
        antenna.append(None if ant is None else int(ant))
        rssi.append(rssi_dbm)
    return RfidBatch(
        device_id=device,
        boot=int(doc["boot"]),
        seq=int(doc["seq"]),
        received_at_ms=received_at_ms,
        t_ms=t_ms,
        epc=epc,
        antenna=antenna,
        rssi=rssi,
    )


def _epc_uri(epc: str, i: int) -> str:
    """EPC URIs are kept as sent; SGTIN-96 / SSCC-96 tag hex becomes its pure-identity URI."""
    if not is_epc_hex(epc):
        return epc
    try:
        return decode_hex(epc)
    except EpcError as e:
        raise RejectError("bad_epc", f"reads[{i}]: {e}") from None

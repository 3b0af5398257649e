"""Stage 1 (ingest): decode SGTIN-96 / SSCC-96 tag hex into EPC pure-identity URIs (GS1 TDS 2.x, 14.5)."""

from __future__ import annotations

import re
from typing import Final

_HEX96_RE: Final = re.compile(r"[0-9A-Fa-f]{24}")
SGTIN96_HEADER: Final = 0x30
SSCC96_HEADER: Final = 0x31

# Partition tables (TDS 2.x, tables 14-2 and 14-3): partition value -> (company prefix bits, digits,
# other-field bits, digits). The other field is indicator + item reference (SGTIN) or extension +
# serial reference (SSCC); the two always add up to 44 / 57 bits and 13 / 17 digits.
SGTIN_PARTITIONS: Final[dict[int, tuple[int, int, int, int]]] = {
    0: (40, 12, 4, 1),
    1: (37, 11, 7, 2),
    2: (34, 10, 10, 3),
    3: (30, 9, 14, 4),
    4: (27, 8, 17, 5),
    5: (24, 7, 20, 6),
    6: (20, 6, 24, 7),
}
SSCC_PARTITIONS: Final[dict[int, tuple[int, int, int, int]]] = {
    0: (40, 12, 17, 5),
    1: (37, 11, 21, 6),
    2: (34, 10, 24, 7),
    3: (30, 9, 28, 8),
    4: (27, 8, 31, 9),
    5: (24, 7, 34, 10),
    6: (20, 6, 38, 11),
}
_SERIAL_BITS_SGTIN96: Final = 38
_UNALLOCATED_BITS_SSCC96: Final = 24


class EpcError(ValueError):
    """The hex is not a valid SGTIN-96 or SSCC-96 EPC."""


def is_epc_hex(s: str) -> bool:
    """True for exactly 96 bits of hex (the EPC bank of a Gen2 tag with a 96-bit scheme)."""
    return _HEX96_RE.fullmatch(s) is not None


def _bits(value: int, offset: int, width: int) -> int:
    """`width` bits starting `offset` bits from the most significant end of a 96-bit value."""
    return (value >> (96 - offset - width)) & ((1 << width) - 1)


def _fields(value: int, table: dict[int, tuple[int, int, int, int]], kind: str) -> tuple[str, str, int]:
    partition = _bits(value, 11, 3)
    if partition not in table:
        raise EpcError(f"{kind}-96 partition {partition} is not defined")
    cp_bits, cp_digits, ref_bits, ref_digits = table[partition]
    company = _bits(value, 14, cp_bits)
    ref = _bits(value, 14 + cp_bits, ref_bits)
    if company >= 10**cp_digits or ref >= 10**ref_digits:
        raise EpcError(f"{kind}-96 field exceeds its {cp_digits}+{ref_digits} digits")
    return f"{company:0{cp_digits}d}", f"{ref:0{ref_digits}d}", 14 + cp_bits + ref_bits


def decode_hex(hex96: str) -> str:
    """The pure-identity URI of an SGTIN-96 or SSCC-96 tag, e.g. urn:epc:id:sgtin:0614141.812345.6789."""
    if not is_epc_hex(hex96):
        raise EpcError(f"{hex96[:40]!r} is not 24 hex digits")
    value = int(hex96, 16)
    header = value >> 88
    if header == SGTIN96_HEADER:
        company, item, end = _fields(value, SGTIN_PARTITIONS, "SGTIN")
        serial = _bits(value, end, _SERIAL_BITS_SGTIN96)
        return f"urn:epc:id:sgtin:{company}.{item}.{serial}"
    if header == SSCC96_HEADER:
        company, serial_ref, end = _fields(value, SSCC_PARTITIONS, "SSCC")
        if _bits(value, end, _UNALLOCATED_BITS_SSCC96) != 0:
            raise EpcError("SSCC-96 unallocated bits are not zero")
        return f"urn:epc:id:sscc:{company}.{serial_ref}"
    raise EpcError(f"EPC header 0x{header:02X} is neither SGTIN-96 (0x30) nor SSCC-96 (0x31)")


def encode_sgtin96(company: str, item: str, serial: int, filter_value: int = 0) -> str:
    """Inverse of decode_hex for SGTIN-96 (tests and the simulator's reference)."""
    partition = next(p for p, (_, d, _, _) in SGTIN_PARTITIONS.items() if d == len(company))
    cp_bits, _, ref_bits, _ = SGTIN_PARTITIONS[partition]
    value = (SGTIN96_HEADER << 88) | (filter_value << 85) | (partition << 82)
    value |= int(company) << (82 - cp_bits)
    value |= int(item) << (82 - cp_bits - ref_bits)
    value |= serial
    return f"{value:024X}"


def encode_sscc96(company: str, serial_ref: str, filter_value: int = 0) -> str:
    """Inverse of decode_hex for SSCC-96."""
    partition = next(p for p, (_, d, _, _) in SSCC_PARTITIONS.items() if d == len(company))
    cp_bits, _, ref_bits, _ = SSCC_PARTITIONS[partition]
    value = (SSCC96_HEADER << 88) | (filter_value << 85) | (partition << 82)
    value |= int(company) << (82 - cp_bits)
    value |= int(serial_ref) << (82 - cp_bits - ref_bits)
    return f"{value:024X}"

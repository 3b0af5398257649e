"""Stage 1 (ingest): the fsynced, append-only spool holding batches while the DB is down; its replay."""

from __future__ import annotations

import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, Protocol

import msgspec

from gateway.models import RawMessage

log = logging.getLogger(__name__)

SUFFIX: Final = ".spool"
# Record: big-endian uint32 payload length, uint32 CRC-32 of the payload, then the payload
# (msgpack list of [topic, payload bytes, received_at_ms, whole_bytes, whole_sha256]; the last two are
# null unless the payload is the kept prefix of one over the limit, and absent in older records). A torn
# tail (crash mid-append) fails the length or CRC check and ends the segment: it was never acknowledged,
# so the broker redelivers it.
_HEADER: Final = struct.Struct(">II")


class _Message(msgspec.Struct, array_like=True):
    topic: str
    payload: bytes
    received_at_ms: int
    whole_bytes: int | None = None
    whole_sha256: bytes | None = None


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(list[_Message])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only segment files under `directory`; records are replayed oldest segment first.

    Single-threaded by design: only the gateway's writer thread touches it."""

    def __init__(self, directory: Path, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._current: BinaryIO | None = None
        self._current_path: Path | None = None
        self._current_records = 0
        self._bytes = 0

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._bytes = sum(p.stat().st_size for p in self.segments())

    def segments(self) -> list[Path]:
        """Segments in append order (names start with the creation time in ns)."""
        return sorted(self.directory.glob("*" + SUFFIX))

    @property
    def bytes(self) -> int:
        return self._bytes

    def pending(self) -> bool:
        return self._bytes > 0 or self._current is not None

    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def append(self, items: list[RawMessage]) -> None:
        """Write one record and fsync it: only then may its messages be acknowledged.

        The gateway appends messages already bounded (RawMessage.bounded): a payload over the limit is
        kept as its prefix with its length and sha256, never whole."""
        if self._current is None:
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}{SUFFIX}"
            path = self.directory / name
            self._current = path.open("ab")
            self._current_path = path
            self._current_records = 0
            _fsync_dir(self.directory)  # the new file's name is durable too
        payload = _encoder.encode(
            [_Message(m.topic, m.payload, m.received_at_ms, m.whole_bytes, m.whole_sha256) for m in items]
        )
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self._current.write(record)
        self._current.flush()
        os.fsync(self._current.fileno())
        self._current_records += 1
        self._bytes += len(record)

    def close_current(self) -> None:
        """Stop appending to the current segment (the next append starts a new one)."""
        if self._current is not None:
            self._current.close()
            self._current = None
            self._current_path = None

    @staticmethod
    def read(path: Path) -> Iterator[tuple[int, list[RawMessage]]]:
        """(record index, messages) of every intact record of a segment, in order."""
        data = path.read_bytes()
        pos, index = 0, 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            start = pos + _HEADER.size
            payload = data[start : start + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                return  # torn tail
            try:
                rows = _decoder.decode(payload)
            except msgspec.DecodeError:
                return
            yield (
                index,
                [
                    RawMessage(m.topic, m.payload, m.received_at_ms, m.whole_bytes, m.whole_sha256)
                    for m in rows
                ],
            )
            pos = start + length
            index += 1

    def remove(self, path: Path) -> None:
        """Delete a fully replayed segment."""
        if path == self._current_path:
            self.close_current()
        size = path.stat().st_size
        path.unlink()
        _fsync_dir(self.directory)
        self._bytes = max(0, self._bytes - size)


class ReplaySink(Protocol):
    """Where a replay puts the spooled records: the database, each record with its mark."""

    def applied_upto(self, segment: str) -> int:
        """The highest record index of `segment` already committed (-1: none)."""

    def apply(self, raws: list[RawMessage], mark: tuple[str, int]) -> None:
        """Commit one record's messages with its mark (segment, index) in the same transaction."""


def replay(spool: Spool, sink: ReplaySink) -> int:
    """Replay every segment into `sink`, oldest first, each record exactly once; return records applied.

    A record at or below its segment's applied mark committed before a crash and is skipped; a segment is
    removed once every record of it is applied. Whatever `sink` raises (the database lost) ends the
    replay where it stands: the next one starts from the marks."""
    applied = 0
    spool.close_current()
    for path in spool.segments():
        upto = sink.applied_upto(path.name)
        for index, raws in Spool.read(path):
            if index <= upto:
                continue  # committed before a crash: never twice
            sink.apply(raws, (path.name, index))
            applied += 1
        spool.remove(path)
        log.info("gateway: replayed spool segment %s", path.name)
    return applied

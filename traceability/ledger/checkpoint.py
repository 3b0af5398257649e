"""Stage 3, ledger: Ed25519-signed checkpoints of the chain head, the signing key's file, and their log.

A checkpoint signs the UTF-8 bytes of ``coldchain-ledger-checkpoint/v1|<seq>|<entry_hash>|<signed_at>``
(seq in decimal, entry_hash 64 lowercase hex, signed_at UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``) with the
ledger's Ed25519 key. The private key lives in a PEM file (PKCS#8, mode 0600) under the operator's
COLDCHAIN_HOME (``keys/ledger-ed25519.pem``), never in the database: whoever can rewrite the database
cannot also re-sign its head. The public key (raw 32 bytes, hex) is stored with each checkpoint and
travels in every bundle, but a verifier never trusts it: it checks every signature under a key pinned
from outside the database (the key file, or the one an inspector is given).

Each checkpoint is also published as it is made, outside the database: appended to the checkpoint log
beside the key (``keys/ledger-checkpoints.jsonl``, one JSON object a line, fsync'd), and handed to the
worker's other sinks (the retained MQTT message, the alert webhooks; wired by the composition root).
A copy kept by anyone is what ``ledger verify --checkpoint`` checks the ledger against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from traceability import queries
from traceability.epcis.builders import iso_ms, parse_time

Conn = psycopg.Connection[Any]
MESSAGE_PREFIX = "coldchain-ledger-checkpoint/v1"
KEY_FILE = Path("keys") / "ledger-ed25519.pem"
# The append-only log of every checkpoint signed with a key, in the key's folder.
LOG_NAME = "ledger-checkpoints.jsonl"
FIELDS = ("seq", "entry_hash", "signed_at", "public_key", "signature")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_SIGNED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# A key file is a PEM of a few hundred bytes, a hex key 64 characters: anything far larger is not one.
_KEY_FILE_MAX_BYTES = 64 * 1024

log = logging.getLogger(__name__)

Sink = Callable[["Checkpoint"], None]


class CheckpointFormatError(ValueError):
    """A kept checkpoint, or a public key, is not in the form this module writes."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    entry_hash: str
    signed_at: str  # UTC, ms, Z
    public_key: str  # hex, 32 bytes
    signature: str  # hex, 64 bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "signed_at": self.signed_at,
            "public_key": self.public_key,
            "signature": self.signature,
        }

    def as_json(self) -> bytes:
        """One line of the checkpoint log, and the body of its MQTT message."""
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, raw: object) -> Checkpoint:
        """A checkpoint as ``as_dict`` writes it (exactly its fields, each in its form), else
        ``CheckpointFormatError``."""
        if not isinstance(raw, dict) or set(raw) != set(FIELDS):
            raise CheckpointFormatError(f"a checkpoint is an object with exactly {', '.join(FIELDS)}")
        seq, entry, signed_at, public, signature = (raw[f] for f in FIELDS)
        if type(seq) is not int or seq < 1:
            raise CheckpointFormatError("seq is not a positive integer")
        if not (isinstance(entry, str) and _HEX64.fullmatch(entry)):
            raise CheckpointFormatError("entry_hash is not 64 lowercase hex digits")
        if not (isinstance(signed_at, str) and _SIGNED_AT.fullmatch(signed_at)):
            raise CheckpointFormatError("signed_at is not a UTC time YYYY-MM-DDTHH:MM:SS.mmmZ")
        if not (isinstance(public, str) and _HEX64.fullmatch(public)):
            raise CheckpointFormatError("public_key is not 64 lowercase hex digits")
        if not (isinstance(signature, str) and _HEX128.fullmatch(signature)):
            raise CheckpointFormatError("signature is not 128 lowercase hex digits")
        return cls(seq, entry, signed_at, public, signature)


def message(seq: int, entry_hash: str, signed_at: str) -> bytes:
    """The exact bytes a checkpoint signs."""
    return f"{MESSAGE_PREFIX}|{seq}|{entry_hash}|{signed_at}".encode()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM, PKCS#8); created with mode 0600 when missing."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} holds no Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def key_fingerprint(public_key_hex: str) -> str:
    """A short, readable fingerprint of an Ed25519 public key, as the pages and reports show it: ``SHA256:``
    and the first 16 bytes of the SHA-256 of its 32 raw bytes, in groups of four hex digits."""
    digest = hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:32]
    return "SHA256:" + " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def pinned_key(spec: str) -> str:
    """The Ed25519 public key (64 lowercase hex) that ``spec`` names: 64 hex digits, or a file holding
    them, a PEM public key, or the PEM private key (its public half). ``CheckpointFormatError`` else."""
    text = spec.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return text.lower()
    path = Path(spec)
    try:
        if path.stat().st_size > _KEY_FILE_MAX_BYTES:
            raise CheckpointFormatError(f"{spec}: too large for a key file")
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointFormatError(
            f"{spec}: neither 64 hex digits nor a readable key file ({exc.strerror})"
        ) from None
    return _public_from_bytes(spec, data)


def _public_from_bytes(name: str, data: bytes) -> str:
    stripped = data.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", stripped):
        return stripped.decode().lower()
    key: object
    try:
        if b"PRIVATE KEY" in stripped:
            key = serialization.load_pem_private_key(stripped, password=None)
            if isinstance(key, Ed25519PrivateKey):
                return public_hex(key)
        else:
            key = serialization.load_pem_public_key(stripped)
            if isinstance(key, Ed25519PublicKey):
                return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    raise CheckpointFormatError(f"{name}: holds no Ed25519 key (64 hex digits, or PEM)")


def configured_key(home: Path) -> str | None:
    """The public key of the ledger's own key file under ``home``, None when there is none."""
    path = home / KEY_FILE
    if not path.exists():
        return None
    return pinned_key(str(path))


def log_beside(key_path: Path) -> Path:
    """The checkpoint log of the key in ``key_path``."""
    return key_path.with_name(LOG_NAME)


# The checkpoint log grows by one line (~330 bytes) a checkpoint: 512 MiB is over a century of one a
# minute, and bounds what reading a file that is not the log can cost.
LOG_MAX_BYTES = 512 * 1024 * 1024


def own_log(key_path: Path) -> list[tuple[str, Checkpoint]]:
    """The checkpoints of the log beside the ledger's key, labelled with its file and line; none when
    there is no log. Every verification that has the key file checks them too: deleting checkpoint rows
    hides nothing the log kept. ``CheckpointFormatError`` for a log that is not one."""
    from traceability.ledger.jsonfile import FILE_MAX_DEPTH, JsonInputError, too_deep

    path = log_beside(key_path)
    try:
        with path.open("rb") as f:
            data = f.read(LOG_MAX_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CheckpointFormatError(f"{path}: cannot read ({exc.strerror})") from None
    if not data.strip():
        return []
    try:
        if len(data) > LOG_MAX_BYTES:
            raise JsonInputError(f"larger than {LOG_MAX_BYTES} bytes")
        if too_deep(data, FILE_MAX_DEPTH):
            raise JsonInputError(f"JSON nested more than {FILE_MAX_DEPTH} levels deep")
        cps = parse_kept(data.decode("utf-8"), name=str(path))
    except JsonInputError as exc:
        raise CheckpointFormatError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CheckpointFormatError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return [(f"checkpoint log {path}#{n}", cp) for n, cp in enumerate(cps, 1)]


def signature_ok(cp: Checkpoint, public_key: str) -> bool:
    """The checkpoint's signature holds under ``public_key`` (hex): never under the key it carries."""
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        public.verify(bytes.fromhex(cp.signature), message(cp.seq, cp.entry_hash, cp.signed_at))
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_head(conn: Conn, key: Ed25519PrivateKey, *, now: datetime | None = None) -> Checkpoint | None:
    """Sign the current head and record the checkpoint (committed with the caller's transaction);
    None for an empty ledger."""
    head = conn.execute(queries.LEDGER_HEAD).fetchone()
    if head is None:
        return None
    seq, entry = int(head[0]), str(head[1])
    signed_at = iso_ms(now or datetime.now(UTC))
    cp = Checkpoint(seq, entry, signed_at, public_hex(key), key.sign(message(seq, entry, signed_at)).hex())
    conn.execute(
        queries.INSERT_CHECKPOINT,
        {
            "seq": seq,
            "entry_hash": entry,
            "signed_at": parse_time(signed_at),
            "public_key": cp.public_key,
            "signature": cp.signature,
        },
    )
    return cp


def _of_row(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(int(row[1]), str(row[2]), iso_ms(row[3]), str(row[4]), str(row[5]))


def latest(conn: Conn) -> Checkpoint | None:
    row = conn.execute(queries.LATEST_CHECKPOINT).fetchone()
    return None if row is None else _of_row(row)


def at_seq(conn: Conn, seq: int) -> Checkpoint | None:
    """The newest checkpoint stored at ``seq`` (the signed head a report names), None when there is none."""
    row = conn.execute(queries.CHECKPOINT_AT_SEQ, (seq,)).fetchone()
    return None if row is None else _of_row(row)


def stored(conn: Conn) -> list[tuple[int, Checkpoint]]:
    """Every checkpoint row, (checkpoint_id, checkpoint), in the order they were recorded."""
    return [(int(r[0]), _of_row(r)) for r in conn.execute(queries.ALL_CHECKPOINTS)]


def sign_if_moved(conn: Conn, key: Ed25519PrivateKey) -> Checkpoint | None:
    """Sign the head only when it moved past the newest checkpoint (None otherwise, or when empty)."""
    head = conn.execute(queries.LEDGER_HEAD).fetchone()
    if head is None:
        return None
    last = latest(conn)
    if last is not None and last.seq >= int(head[0]):
        return None
    return sign_head(conn, key)


def append_to_log(path: Path, cp: Checkpoint) -> None:
    """Append ``cp`` as one line to the checkpoint log at ``path`` (created if missing) and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, cp.as_json() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_kept(text: str, *, name: str = "checkpoint file") -> list[Checkpoint]:
    """The checkpoints of a kept file: one checkpoint JSON object, or a log of them (one a line).

    ``CheckpointFormatError`` names the line that is not a checkpoint. The caller bounds the nesting
    depth before this parses (a checkpoint is a flat object)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise CheckpointFormatError(f"{name}: holds no checkpoint")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [_parse_one(whole, f"{name}")]
    kept = []
    for n, line in lines:
        try:
            raw = json.loads(line)
        except ValueError:
            raise CheckpointFormatError(f"{name}:{n}: not JSON") from None
        kept.append(_parse_one(raw, f"{name}:{n}"))
    return kept


def _parse_one(raw: object, where: str) -> Checkpoint:
    try:
        return Checkpoint.from_dict(raw)
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{where}: {exc}") from None


class CheckpointWorker:
    """Signs the ledger head every `every_s` seconds when it has moved, and once more on stop, so that
    deleting the newest entries is caught by `verify` without waiting for an export.

    Each new checkpoint goes to the checkpoint log beside the key, then to every sink in ``sinks``
    (after the commit). A sink that fails is logged and counted in ``sink_failures`` (by the sink's
    name); it stops neither the checkpoint nor the other sinks."""

    def __init__(
        self,
        conninfo: str,
        key_path: Path,
        *,
        every_s: float = 60.0,
        sinks: Iterable[Sink] = (),
    ) -> None:
        self.conninfo = conninfo
        self.key_path = key_path
        self.every_s = every_s
        self.sinks: tuple[Sink, ...] = (self._log_sink, *sinks)
        self.sink_failures: Counter[str] = Counter()

    def _log_sink(self, cp: Checkpoint) -> None:
        append_to_log(log_beside(self.key_path), cp)

    def run_once(self) -> Checkpoint | None:
        key = load_or_create_key(self.key_path)
        with psycopg.connect(self.conninfo) as conn:
            cp = sign_if_moved(conn, key)
            conn.commit()
        if cp is not None:
            self.publish(cp)
        return cp

    def publish(self, cp: Checkpoint) -> None:
        """Hand ``cp`` to every sink; a failure is logged and counted, never raised."""
        for sink in self.sinks:
            try:
                sink(cp)
            except Exception:  # a sink is a copy outside the database: losing one must not stop signing
                name = getattr(sink, "__name__", None) or type(sink).__name__
                self.sink_failures[name] += 1
                log.exception("checkpoint at seq %s: sink %s failed", cp.seq, name)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.every_s):
            self.run_once()
        self.run_once()

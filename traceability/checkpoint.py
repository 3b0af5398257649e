"""Stage 3, ledger: Ed25519-signed checkpoints of the chain head, and the signing key's file.

A checkpoint signs the UTF-8 bytes of ``coldchain-ledger-checkpoint/v1|<seq>|<entry_hash>|<signed_at>``
(seq in decimal, entry_hash 64 lowercase hex, signed_at UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``) with the
ledger's Ed25519 key. The private key lives in a PEM file (PKCS#8, mode 0600) under the operator's
COLDCHAIN_HOME (``keys/ledger-ed25519.pem``), never in the database: whoever can rewrite the database
cannot also re-sign its head. The public key (raw 32 bytes, hex) is stored with each checkpoint and
travels in every bundle; an inspector pins it out of band.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from traceability import queries
from traceability.epcis import iso_ms, parse_time

Conn = psycopg.Connection[Any]
MESSAGE_PREFIX = "coldchain-ledger-checkpoint/v1"
KEY_FILE = Path("keys") / "ledger-ed25519.pem"


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


def latest(conn: Conn) -> Checkpoint | None:
    row = conn.execute(queries.LATEST_CHECKPOINT).fetchone()
    if row is None:
        return None
    return Checkpoint(int(row[1]), str(row[2]), iso_ms(row[3]), str(row[4]), str(row[5]))


def signature_ok(cp: Checkpoint, pinned_public_key: str | None = None) -> bool:
    """The checkpoint's signature holds under its public key (and that key is the pinned one, if given)."""
    if pinned_public_key is not None and pinned_public_key.lower() != cp.public_key.lower():
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp.public_key))
        public.verify(bytes.fromhex(cp.signature), message(cp.seq, cp.entry_hash, cp.signed_at))
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_if_moved(conn: Conn, key: Ed25519PrivateKey) -> Checkpoint | None:
    """Sign the head only when it moved past the newest checkpoint (None otherwise, or when empty)."""
    head = conn.execute(queries.LEDGER_HEAD).fetchone()
    if head is None:
        return None
    last = latest(conn)
    if last is not None and last.seq >= int(head[0]):
        return None
    return sign_head(conn, key)


class CheckpointWorker:
    """Signs the ledger head every `every_s` seconds when it has moved, and once more on stop, so that
    deleting the newest entries is caught by `verify` without waiting for an export."""

    def __init__(self, conninfo: str, key_path: Path, *, every_s: float = 60.0) -> None:
        self.conninfo = conninfo
        self.key_path = key_path
        self.every_s = every_s

    def run_once(self) -> Checkpoint | None:
        key = load_or_create_key(self.key_path)
        with psycopg.connect(self.conninfo) as conn:
            cp = sign_if_moved(conn, key)
            conn.commit()
        return cp

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.every_s):
            self.run_once()
        self.run_once()

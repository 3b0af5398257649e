"""Stage 1, ingest: `python -m gateway` runs one gateway process until SIGTERM/SIGINT (drains, exits 0)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from gateway.limits import DEAD_LETTER_PREFIX_BYTES, MAX_PAYLOAD_BYTES, SEQ_JUMP_MAX, IngestLimits
from gateway.service import GatewayAuthError, GatewayError, GatewayService

EXIT_AUTH = 3  # the broker refused our credentials: restarting will not help


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    ap.add_argument("--db", required=True, help="PostgreSQL conninfo / URL")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--username")
    # The password is read from a file (e.g. a mounted secret, mode 0600), never taken on argv, where any
    # local user sees it in the process list.
    ap.add_argument("--password-file", type=Path, help="file holding the broker password (one line)")
    ap.add_argument("--client-id", default="coldchain-gateway")
    ap.add_argument("--shared-group", default="gateways", help="'' for a plain subscription")
    ap.add_argument("--spool-dir", type=Path)
    ap.add_argument("--metrics-port", type=int)
    ap.add_argument("--max-batch", type=int, default=500)
    ap.add_argument("--writers", type=int, default=2, help="writer threads (database connections)")
    ap.add_argument("--max-payload-bytes", type=int, default=MAX_PAYLOAD_BYTES)
    ap.add_argument("--dead-letter-prefix-bytes", type=int, default=DEAD_LETTER_PREFIX_BYTES)
    ap.add_argument("--seq-jump-max", type=int, default=SEQ_JUMP_MAX)
    args = ap.parse_args(argv)
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not readable as UTF-8 text"
            ap.error(f"--password-file {args.password_file}: {reason}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    svc = GatewayService(
        args.db,
        args.host,
        args.port,
        username=args.username,
        password=password,
        client_id=args.client_id,
        shared_group=args.shared_group or None,
        spool_dir=args.spool_dir,
        metrics_port=args.metrics_port,
        max_batch=args.max_batch,
        writers=args.writers,
        limits=IngestLimits(
            max_payload_bytes=args.max_payload_bytes,
            dead_letter_prefix_bytes=args.dead_letter_prefix_bytes,
            seq_jump_max=args.seq_jump_max,
        ),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        svc.start()
    except GatewayAuthError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return EXIT_AUTH
    print(f"gateway: running (metrics port {svc.metrics_port})", flush=True)
    while not stop.wait(0.2):
        if svc.error is not None:
            print(f"gateway: failed: {svc.error}", file=sys.stderr)
            svc.stop()
            return EXIT_AUTH if isinstance(svc.error, GatewayAuthError) else 1
    svc.stop()  # drain: write, commit, ack what was taken, then disconnect
    if svc.error is not None and not isinstance(svc.error, GatewayError):
        return 1
    print("gateway: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

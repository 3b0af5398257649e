"""Stage 1 (ingest): `python -m gateway` runs one gateway from COLDCHAIN_* settings until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError

from gateway.config import GatewayConfig, GatewaySettings
from gateway.mqtt import GatewayAuthError, GatewayError
from gateway.pipeline import GatewayService

EXIT_AUTH = 3  # the broker refused our credentials: restarting will not help
EXIT_USAGE = 2  # the settings are wrong: restarting will not help either

USAGE = """usage: python -m gateway

Runs one gateway (MQTT -> PostgreSQL) until SIGTERM or SIGINT, then drains and exits 0. It takes no
arguments: every setting comes from the environment, as for `coldchain run gateway`:

  COLDCHAIN_DATABASE_URL            postgresql://... (required)
  COLDCHAIN_BROKER_URL              mqtt://user@host:port (required)
  COLDCHAIN_BROKER_PASSWORD_FILE    a file holding the broker password (never put it on argv)
  COLDCHAIN_GATEWAY_CLIENT_ID       the broker session's client id (one per replica)
  COLDCHAIN_GATEWAY_SHARED_GROUP    shared-subscription group ("" for a plain subscription)
  COLDCHAIN_GATEWAY_SPOOL_DIR       spool here while the database is down
  COLDCHAIN_GATEWAY_METRICS_PORT    Prometheus /metrics (0: off)
  COLDCHAIN_GATEWAY_MAX_BATCH, COLDCHAIN_GATEWAY_WRITERS, COLDCHAIN_GATEWAY_MAX_PAYLOAD_BYTES,
  COLDCHAIN_GATEWAY_DEAD_LETTER_PREFIX_BYTES, COLDCHAIN_GATEWAY_SEQ_JUMP_MAX"""


def _config() -> GatewayConfig:
    """The config the environment gives; SystemExit(EXIT_USAGE) naming the problem when it is wrong."""
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])} (COLDCHAIN_{str(e['loc'][0]).upper()}): {e['msg']}"
            for e in exc.errors()
        ]
        print("gateway: invalid settings: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    try:
        return GatewayConfig.from_settings(settings)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not readable as UTF-8 text"
        print(
            f"gateway: COLDCHAIN_BROKER_PASSWORD_FILE {settings.broker_password_file}: {reason}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE) from None
    except ValueError as e:
        print(f"gateway: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        if args[0] in ("-h", "--help"):
            print(USAGE)
            return 0
        print(
            f"{USAGE}\n\ngateway: takes no arguments (got {args[0]!r}): use the settings above",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = _config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    svc = GatewayService(config)
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

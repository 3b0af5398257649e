"""Stage 0, devices: `python -m firmware_sim HOST PORT` plays the demo scenario against a broker."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from firmware_sim.devices import HOUR_MS
from firmware_sim.scenario import SimulatorError, run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firmware_sim", description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--speedup", type=float, default=900.0, help="scenario seconds per wall second")
    parser.add_argument("--start-ms", type=int, default=None, help="scenario start S (default: now - 8 h)")
    parser.add_argument("--username")
    # A password on the command line is readable by every local user (ps, /proc): it comes from a file.
    parser.add_argument("--password-file", type=Path, help="file whose first line is the broker password")
    args = parser.parse_args(argv)
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text().splitlines()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            print(f"error: cannot read a password from {args.password_file}", file=sys.stderr)
            return 2
    start_ms = args.start_ms if args.start_ms is not None else (time.time_ns() // 1_000_000 - 8 * HOUR_MS)
    try:
        report = run_demo(
            args.host,
            args.port,
            start_ms=start_ms,
            speedup=args.speedup,
            on_progress=lambda msg: print(msg, file=sys.stderr),
            username=args.username,
            password=password,
        )
    except SimulatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

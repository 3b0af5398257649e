"""Stage 1 (ingest): the atheris coverage-guided fuzz target of the gateway's decoders (docs/fuzzing.md)."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from gateway.decode import DECODER_FAILED, decode
    from gateway.models import KINDS, Batch, Rejected

# Device times in the corpus lie in 2026; the receive time only sets the clock-ahead flag.
RECEIVED_AT_MS = 1_767_225_600_000
# Topics the first input byte chooses among: every v1 kind, one the gateway does not decode, and a
# topic that is not a device topic at all.
TOPICS = [f"cc/v1/dev/fz-1/{k}" for k in KINDS] + ["cc/v1/dev/fz-1/firmware", "cc/v1/other"]


def test_one_input(data: bytes) -> None:
    """One fuzz input: byte 0 picks the topic, the rest is the payload.

    decode() turns any exception of a decoder into a decoder_failed rejection, so that ingest goes on:
    here that rejection is the finding, raised so atheris keeps the input."""
    if not data:
        return
    topic = TOPICS[data[0] % len(TOPICS)]
    result = decode(topic, data[1:], RECEIVED_AT_MS)
    if not isinstance(result, Batch | Rejected):
        raise AssertionError(f"decode returned {type(result).__name__}")
    if isinstance(result, Rejected):
        if result.reason == DECODER_FAILED:
            raise AssertionError(f"a decoder raised on {topic}: {result.detail}")
        if not (result.reason and result.detail):
            raise AssertionError(f"a rejection without reason or detail: {result!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Composition root: what every CLI command shares: settings, one-line errors and the final JSON line."""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from coldchain.settings import Settings


class ExitCode(enum.IntEnum):
    """Every exit code of the `coldchain` CLI: docs/exit-codes.md lists them from here."""

    OK = 0
    # A check ran and found a problem: a ledger that does not verify, a refused capture, a failed stage.
    FAILED = 1
    # The request was wrong: an argument, an input file or a setting (the message names which).
    USAGE = 2
    # A service the command needs could not be reached or refused it: database, broker, credentials.
    UNAVAILABLE = 3
    # The data directory (COLDCHAIN_HOME) is missing, not a directory, or in use by another process.
    DATA_DIR = 4
    # A fault of the program itself (an unexpected exception): one line names its type (sysexits'
    # EX_SOFTWARE); COLDCHAIN_LOG_LEVEL=debug logs its traceback.
    INTERNAL = 70


def one_line(text: str) -> str:
    """`text` as a single printable line: line breaks and other control characters are escaped, so a
    file name or a value quoted in an error can never split the message or drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """End the command: `message` as one line on stderr, and `code`."""
    typer.echo(one_line(message), err=True)
    raise typer.Exit(code)


def cli_settings() -> Settings:
    """Settings for a command; an invalid one stops the process with its key path (exit 2)."""
    from coldchain.logs import configure_logging
    from coldchain.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc), ExitCode.USAGE)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def emit_json(obj: object) -> None:
    """The machine-readable answer: one JSON object on the last line of stdout."""
    typer.echo(json.dumps(obj, default=str, ensure_ascii=False))

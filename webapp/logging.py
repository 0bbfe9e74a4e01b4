"""Structured logs: JSON in production, readable console lines in development.

One event per line on stderr. Inside a request every line carries its `request_id` (bound by
webapp.observability's middleware), including lines from libraries that log through the standard
library (uvicorn, SQLAlchemy, aio-pika), which are rendered by the same processors. Values under
secret-like keys are replaced, passwords inside URLs are masked, and answer contents are dropped
from every line above DEBUG.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from webapp.settings import Settings

SECRET_KEYS = re.compile(r"pass(word|wd)?$|secret|token|authorization|cookie|api_?key|credential|private_key|"
                         r"^(database|amqp)_url$|^dsn$", re.IGNORECASE)
# Answer contents may be personal data: visible at DEBUG only.
ANSWER_KEYS = frozenset({"answers", "answer", "payload", "body", "values"})
_URL_CREDENTIALS = re.compile(r"(?<=://)([^/@:\s]*):([^/@\s]+)@")
_STRUCTURAL_KEYS = frozenset({"event", "level", "timestamp", "logger", "request_id"})


def mask_url_credentials(text: str) -> str:
    """scheme://user:password@host -> scheme://user:***@host, anywhere in the text."""
    return _URL_CREDENTIALS.sub(r"\1:***@", text) if "://" in text else text


def redact(_logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: callers should not log secrets, but if they do, nothing leaks."""
    hide_answers = method_name != "debug"
    for key, value in event_dict.items():
        if key in _STRUCTURAL_KEYS:
            continue
        if SECRET_KEYS.search(key):
            event_dict[key] = "[redacted]"
        elif hide_answers and key in ANSWER_KEYS:
            event_dict[key] = "[omitted]"
        elif isinstance(value, str):
            event_dict[key] = mask_url_credentials(value)
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = mask_url_credentials(event)
    return event_dict


def _drop_colors(_logger: Any, _method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is now, so a cached logger follows redirections."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_HANDLER_MARK = "_formwright_handler"


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level, logging.INFO)
    renderer: Any = (structlog.processors.JSONRenderer() if settings.is_production
                     else structlog.dev.ConsoleRenderer(colors=False))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),
        # Caching freezes a logger's configuration; only production configures exactly once.
        cache_logger_on_first_use=settings.is_production,
    )
    _route_stdlib_logging(level, shared, renderer)


def _route_stdlib_logging(level: int, shared: list[Any], renderer: Any) -> None:
    """Render the standard library's records (uvicorn, SQLAlchemy, aio-pika) like our own lines."""
    handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder(), _drop_colors],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact, renderer],
    ))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries stay at INFO and above even when we log at DEBUG: their debug output (SQLAlchemy's
    # statements and rows, aiormq's frames) would flood the logs with answer contents.
    root.setLevel(max(level, logging.INFO))
    # httpx logs every request URL at INFO, and webhook URLs may carry their own secrets.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # uvicorn installs handlers of its own before it imports the app: hand its records to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        if name == "uvicorn.access" and not uvicorn_logger.handlers and not uvicorn_logger.propagate:
            # `--no-access-log` detached it; uvicorn logs access lines whenever the logger has any
            # handler, so propagating it to ours would switch the access log back on.
            continue
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True

"""The Integration protocol and the loader of the `formwright.integrations` entry-point group.

An integration is a package of its own that registers an object with this shape under that group:

    [project.entry-points."formwright.integrations"]
    sheets = "integrations.sheets:integration"

The webapp never imports an integration directly; it only sees what the entry points provide.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import msgspec
import structlog

from webapp.forms.definition import QuestionDef
from webapp.settings import Settings, get_settings

log = structlog.get_logger("webapp.plugins")

ENTRY_POINT_GROUP = "formwright.integrations"


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: try again later (429, 5xx, timeouts before sending)
    FAILED = "failed"  # permanent: retrying cannot help (invalid number, bad config)
    UNKNOWN = "unknown"  # the call may have taken effect; reconcile before any resend


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    external_ref: str | None = None
    retry_after: float | None = None  # seconds, when the remote side said how long to wait


@dataclass(frozen=True, slots=True)
class FormContext:
    """What an integration may know about the form it serves."""

    form_id: UUID
    title: str
    version: int
    questions: tuple[QuestionDef, ...]  # archived ones included, in display order


@dataclass(frozen=True, slots=True)
class Work:
    """One event to deliver through one configured integration."""

    delivery_id: UUID
    integration_id: UUID
    config: Any  # an instance of the integration's config_schema
    event: dict[str, Any]  # the outbox event payload (see webapp/outbox/events.py)
    form: FormContext
    attempt: int  # 1 for the first try
    # Set when an earlier attempt was claimed and its outcome is not known (a crash or a
    # timeout mid-call): the handler must look the effect up before acting again.
    previous_claim_at: datetime | None = None
    previous_external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@runtime_checkable
class Integration(Protocol):
    kind: str  # stable identifier, also the routing key suffix and queue name
    title: str  # shown to owners
    config_schema: type[msgspec.Struct]
    batch_size: int  # how many events `handle` takes at once (1 when batching does not help)

    def validate_config(self, config: Any, form: FormContext) -> list[FieldError]:
        """Checks that need the form (e.g. the phone question exists). Shape errors are msgspec's."""

    def required_questions(self, config: Any) -> Sequence[UUID]:
        """Questions that must be answered validly while this integration is active."""

    async def handle(self, batch: Sequence[Work]) -> list[Result]:
        """Deliver each item; return one Result per item, in order. Must not raise for one bad item."""

    async def send_test(self, config: Any, form: FormContext) -> Result:
        """Deliver a clearly marked test message so the owner can check the connection."""


class SettingsAware:
    """For integrations: settings come from the environment unless `configure` gave others
    (the embedded dispatcher and the tests do)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    def configure(self, settings: Settings | None) -> None:
        self._settings = settings


@dataclass
class Registry:
    integrations: dict[str, Integration] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, kind: str) -> Integration | None:
        return self.integrations.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self.integrations)


def parse_retry_after(raw: str | None) -> float | None:
    """Seconds to wait from an HTTP Retry-After header (delta-seconds or an HTTP date), or None."""
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def decode_config(integration: Integration, raw: Any) -> tuple[Any | None, list[FieldError]]:
    """Turn stored or submitted JSON into the integration's config struct, with a field error on failure."""
    try:
        return msgspec.convert(raw, integration.config_schema, strict=False), []
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = "config"
        if " - at `$." in message:
            message, _, where = message.partition(" - at `$.")
            path = "config." + where.rstrip("`")
        elif " - at `$`" in message:
            message = message.partition(" - at `$`")[0]
        return None, [FieldError(path, message)]


@lru_cache(maxsize=1)
def load_integrations() -> Registry:
    """Every installed integration, by kind. A broken plugin is reported, never fatal to the app."""
    registry = Registry()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            integration = obj() if isinstance(obj, type) else obj
            if not isinstance(integration, Integration):
                raise TypeError(f"{ep.value} does not implement the Integration protocol")
            registry.integrations[integration.kind] = integration
        except Exception as exc:  # a third-party plugin may fail in any way
            registry.errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("integration_load_failed", entry_point=ep.name, error=str(exc))
    return registry

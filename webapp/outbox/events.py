"""The event schema carried by outbox rows and, later, by broker messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from webapp.outbox.models import OutboxEvent
from webapp.timeutil import utcnow

RESPONSE_SUBMITTED = "response.submitted"
RESPONSE_UPDATED = "response.updated"
RESPONSE_DELETED = "response.deleted"
SCHEMA_VERSION = 1


def response_event(
    event_type: str,
    *,
    form_id: UUID,
    form_version: int,
    response_id: UUID,
    submitted_at: datetime,
    answers: list[dict[str, Any]] | None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """One JSON-ready event. Answers are keyed by question id, never by position."""
    return {
        "schema": SCHEMA_VERSION,
        "event_id": str(uuid7()),
        "type": event_type,
        "occurred_at": (occurred_at or utcnow()).isoformat(),
        "form_id": str(form_id),
        "form_version": form_version,
        "response_id": str(response_id),
        "submitted_at": submitted_at.isoformat(),
        "answers": answers,
    }


async def write_event(session: AsyncSession, event: dict[str, Any]) -> None:
    """Add the event to the caller's transaction: it commits or rolls back with the change."""
    await session.execute(
        insert(OutboxEvent).values(
            event_id=UUID(event["event_id"]),
            event_type=event["type"],
            form_id=UUID(event["form_id"]),
            response_id=UUID(event["response_id"]) if event.get("response_id") else None,
            payload=event,
        )
    )

"""The transactional outbox: events written in the same transaction as the change they describe."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import BigIntBase
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from sqlalchemy import Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.timeutil import utcnow


class OutboxEvent(BigIntBase):
    """No foreign keys: a `response.deleted` event must outlive the response it describes."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        # The relay only ever looks at unpublished rows; a partial index keeps that scan tiny.
        Index(
            "ix_outbox_events_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_events_response_id", "response_id"),
    )

    event_id: Mapped[UUID] = mapped_column(GUID, unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    form_id: Mapped[UUID] = mapped_column(GUID)
    response_id: Mapped[UUID | None] = mapped_column(GUID, default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

"""Integrations connected to a form, and the delivery ledger: one row per (integration, event)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base
from webapp.timeutil import utcnow


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # known, not yet attempted (or waiting for a retry)
    IN_FLIGHT = "in_flight"  # claimed: the external call may be under way
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent error: retrying cannot help
    DEAD = "dead"  # retries exhausted
    UNKNOWN = "unknown"  # sent, but the outcome was not learned; reconciled before any resend


RETRYABLE_BY_OWNER = frozenset({DeliveryState.FAILED, DeliveryState.DEAD, DeliveryState.UNKNOWN})


class FormIntegration(Base):
    __tablename__ = "form_integrations"

    form_id: Mapped[UUID] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    config: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("integration_id", "event_id", name="uq_deliveries_integration_event"),
        Index("ix_deliveries_response_id", "response_id"),
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    integration_id: Mapped[UUID] = mapped_column(ForeignKey("form_integrations.id", ondelete="CASCADE"))
    form_id: Mapped[UUID] = mapped_column(GUID)
    # No foreign key: a response.deleted event is delivered after its response is gone.
    response_id: Mapped[UUID | None] = mapped_column(GUID, default=None)
    event_id: Mapped[UUID] = mapped_column(GUID)
    event_type: Mapped[str] = mapped_column(String(64))
    state: Mapped[DeliveryState] = mapped_column(
        Enum(DeliveryState, name="delivery_state", native_enum=False, length=32,
             values_callable=lambda e: [m.value for m in e]),
        default=DeliveryState.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # What the external side calls it (a Twilio message sid, a sheet row range), for reconciliation.
    external_ref: Mapped[str | None] = mapped_column(String(500), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)

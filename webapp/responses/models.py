"""Responses and their answers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import Base
from webapp.timeutil import utcnow


class ResponseStatus(enum.StrEnum):
    COMPLETE = "complete"
    # Reserved for business-rule checks that send a response back to its collector.
    FLAGGED = "flagged"


class Response(Base):
    __tablename__ = "responses"
    # Keyset pagination walks (form_id, submitted_at, id) newest first.
    # On PostgreSQL it also carries updated_at and status (migration 0003) from when the CSV export
    # read the index alone; the export now reads each row's answers copy (csvlines.py). Dropping
    # them would rebuild a large index on upgrade for a few bytes per entry, so they stay.
    __table_args__ = (Index("ix_responses_form_id_submitted_at", "form_id", "submitted_at", "id",
                            postgresql_include=["updated_at", "status"]),)

    form_id: Mapped[UUID] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    submitted_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    form_version: Mapped[int] = mapped_column(Integer)
    # A copy of the answers as the API lists them (a JSON array in display order), written with
    # them, so a page of responses reads no answers; valid only while the form's question order
    # still hashes to answers_order (see readmodel.py). NULL for rows written before 0003.
    answers_json: Mapped[str | None] = mapped_column(Text, default=None, deferred=True)  # read by SQL only
    answers_order: Mapped[int | None] = mapped_column(BigInteger, default=None)
    status: Mapped[ResponseStatus] = mapped_column(
        Enum(ResponseStatus, name="response_status", native_enum=False, length=32,
             values_callable=lambda e: [m.value for m in e]),
        default=ResponseStatus.COMPLETE,
    )


class Answer(Base):
    __tablename__ = "answers"
    # The unique constraint leads with response_id, so it also serves as that foreign key's index.
    __table_args__ = (UniqueConstraint("response_id", "question_id", name="uq_answers_response_question"),)

    response_id: Mapped[UUID] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    question_id: Mapped[UUID] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    value: Mapped[Any] = mapped_column(JsonB)
    text: Mapped[str] = mapped_column(Text)

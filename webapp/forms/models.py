"""Forms and their questions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import Base
from webapp.timeutil import utcnow


class FormStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class QuestionKind(enum.StrEnum):
    SHORT_TEXT = "short_text"
    LONG_TEXT = "long_text"
    NUMBER = "number"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    DROPDOWN = "dropdown"
    DATE = "date"
    RATING = "rating"
    YES_NO = "yes_no"


CHOICE_KINDS = frozenset({QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE, QuestionKind.DROPDOWN})


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Form(Base):
    __tablename__ = "forms"

    owner_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Kept from the reference API, where a form carried a contact email and an author name.
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    created_by: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[FormStatus] = mapped_column(_enum(FormStatus, "form_status"), default=FormStatus.DRAFT)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    closes_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    max_responses: Mapped[int | None] = mapped_column(Integer, default=None)
    confirmation_message: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)

    questions: Mapped[list[Question]] = relationship(
        back_populates="form",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(Question.position, Question.id)",
        lazy="noload",
    )


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (Index("ix_questions_form_id_position", "form_id", "position"),)

    form_id: Mapped[UUID] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[QuestionKind] = mapped_column(_enum(QuestionKind, "question_kind"))
    text: Mapped[str] = mapped_column(String(500))
    help_text: Mapped[str] = mapped_column(Text, default="")
    mandatory: Mapped[bool] = mapped_column(Boolean, default=False)
    options: Mapped[list[str]] = mapped_column(JsonB, default=list)
    constraints: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    # Archived questions are hidden from respondents but keep their answers.
    archived_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)

    form: Mapped[Form] = relationship(back_populates="questions", lazy="noload")

"""The reference ("seed") API's request and response shapes, and their conversion to and from ours.

Request structs reuse the field types of webapp.forms.schemas, so lengths and kinds are checked the
same way at decode time, and then convert into our own structs for the services. They do not forbid
unknown fields: clients written for the reference may echo back fields such as `id` or `createdAt`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import UNSET, Meta, Struct, UnsetType

from webapp.forms.models import Form, FormStatus, Question, QuestionKind
from webapp.forms.schemas import (
    CreatedBy,
    Email,
    FormCreate,
    FormUpdate,
    Option,
    QuestionCreate,
    QuestionText,
    QuestionUpdate,
    Title,
)
from webapp.responses.schemas import MAX_ANSWERS
from webapp.responses.service import ResponseView

# ---- requests ----------------------------------------------------------------------------------


class CompatFormCreate(Struct):
    title: Title
    email: Email | None = None
    created_by: CreatedBy | None = None

    def to_create(self) -> FormCreate:
        # The reference had no drafts: a form is open as soon as it exists.
        return FormCreate(title=self.title, email=self.email, created_by=self.created_by,
                          status=FormStatus.OPEN)


class CompatFormUpdate(Struct):
    title: Title | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    created_by: CreatedBy | UnsetType | None = UNSET
    status: FormStatus | UnsetType = UNSET

    def to_update(self) -> FormUpdate:
        return FormUpdate(title=self.title, email=self.email, created_by=self.created_by, status=self.status)


class CompatQuestionCreate(Struct):
    text: QuestionText
    mandatory: bool = False
    kind: QuestionKind = QuestionKind.SHORT_TEXT
    options: list[Option] | None = None

    def to_create(self) -> QuestionCreate:
        return QuestionCreate(text=self.text, mandatory=self.mandatory, kind=self.kind, options=self.options)


class CompatQuestionUpdate(Struct):
    text: QuestionText | UnsetType = UNSET
    mandatory: bool | UnsetType = UNSET
    kind: QuestionKind | UnsetType = UNSET
    options: list[Option] | UnsetType | None = UNSET

    def to_update(self) -> QuestionUpdate:
        return QuestionUpdate(text=self.text, mandatory=self.mandatory, kind=self.kind, options=self.options)


class CompatAnswerIn(Struct):
    """`text` is the raw answer: a string, or for multiple choice a list of strings (or one string)."""

    QuestionId: Annotated[str, Meta(max_length=64)]
    text: Any = None


class CompatAnswersIn(Struct):
    answers: Annotated[list[CompatAnswerIn], Meta(max_length=MAX_ANSWERS)]

    def items(self) -> list[tuple[str, Any]]:
        return [(a.QuestionId, a.text) for a in self.answers]


# ---- responses ---------------------------------------------------------------------------------


class CompatQuestionOut(Struct):
    id: UUID
    text: str
    mandatory: bool
    kind: QuestionKind
    options: list[str]
    FormId: UUID
    createdAt: datetime
    updatedAt: datetime


class CompatFormOut(Struct):
    id: UUID
    title: str
    email: str | None
    created_by: str | None
    status: FormStatus
    createdAt: datetime
    updatedAt: datetime
    questions: list[CompatQuestionOut]


class CompatAnswerOut(Struct):
    QuestionId: UUID
    text: str
    ResponseId: UUID


class CompatResponseOut(Struct):
    id: UUID
    FormId: UUID
    createdAt: datetime
    updatedAt: datetime
    answers: list[CompatAnswerOut]


class CompatMessage(Struct):
    message: str
    id: UUID
    result: str | UnsetType = UNSET


def question_out(q: Question) -> CompatQuestionOut:
    return CompatQuestionOut(
        id=q.id, text=q.text, mandatory=q.mandatory, kind=QuestionKind(q.kind), options=list(q.options or []),
        FormId=q.form_id, createdAt=q.created_at, updatedAt=q.updated_at,
    )


def form_out(form: Form, questions: Iterable[Question], *, owner: bool = True) -> CompatFormOut:
    """Anyone but the owner sees the form without its contact details (as the /api/v1 public view)."""
    return CompatFormOut(
        id=form.id, title=form.title, email=form.email if owner else None,
        created_by=form.created_by if owner else None, status=FormStatus(form.status),
        createdAt=form.created_at, updatedAt=form.updated_at,
        questions=[question_out(q) for q in questions if q.archived_at is None],
    )


def response_out(view: ResponseView) -> CompatResponseOut:
    return CompatResponseOut(
        id=view.id, FormId=view.form_id, createdAt=view.submitted_at, updatedAt=view.updated_at,
        answers=[CompatAnswerOut(QuestionId=a["question_id"], text=a["text"], ResponseId=view.id)
                 for a in view.answers],
    )


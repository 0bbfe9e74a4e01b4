"""API shapes for forms and questions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from webapp.forms.models import FormStatus, QuestionKind

Title = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=10_000)]
QuestionText = Annotated[str, Meta(min_length=1, max_length=500)]
HelpText = Annotated[str, Meta(max_length=2_000)]
Option = Annotated[str, Meta(max_length=200)]
Email = Annotated[str, Meta(max_length=320)]
CreatedBy = Annotated[str, Meta(max_length=200)]
MaxResponses = Annotated[int, Meta(ge=1, le=100_000_000)]
Position = Annotated[int, Meta(ge=0, le=10_000)]


class QuestionCreate(Struct, forbid_unknown_fields=True):
    text: QuestionText
    kind: QuestionKind = QuestionKind.SHORT_TEXT
    help_text: HelpText = ""
    mandatory: bool = False
    options: list[Option] | None = None
    constraints: dict[str, Any] | None = None
    position: Position | None = None


class QuestionUpdate(Struct, forbid_unknown_fields=True):
    text: QuestionText | UnsetType = UNSET
    kind: QuestionKind | UnsetType = UNSET
    help_text: HelpText | UnsetType = UNSET
    mandatory: bool | UnsetType = UNSET
    options: list[Option] | UnsetType | None = UNSET
    constraints: dict[str, Any] | UnsetType | None = UNSET


class QuestionReorder(Struct, forbid_unknown_fields=True):
    question_ids: list[UUID]


class FormCreate(Struct, forbid_unknown_fields=True):
    title: Title
    description: Description = ""
    status: FormStatus = FormStatus.DRAFT
    email: Email | None = None
    created_by: CreatedBy | None = None
    closes_at: datetime | None = None
    max_responses: MaxResponses | None = None
    confirmation_message: Description = ""
    questions: list[QuestionCreate] = msgspec.field(default_factory=list)


class FormUpdate(Struct, forbid_unknown_fields=True):
    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    status: FormStatus | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    created_by: CreatedBy | UnsetType | None = UNSET
    closes_at: datetime | UnsetType | None = UNSET
    max_responses: MaxResponses | UnsetType | None = UNSET
    confirmation_message: Description | UnsetType = UNSET


class QuestionOut(Struct):
    id: UUID
    form_id: UUID
    position: int
    kind: QuestionKind
    text: str
    help_text: str
    mandatory: bool
    options: list[str]
    constraints: dict[str, Any]
    archived: bool
    created_at: datetime
    updated_at: datetime


class FormOut(Struct):
    id: UUID
    title: str
    description: str
    status: FormStatus
    slug: str
    version: int
    email: str | None
    created_by: str | None
    closes_at: datetime | None
    max_responses: int | None
    confirmation_message: str
    created_at: datetime
    updated_at: datetime
    questions: list[QuestionOut] | UnsetType = UNSET
    response_count: int | UnsetType = UNSET


class PublicQuestionOut(Struct):
    id: UUID
    position: int
    kind: QuestionKind
    text: str
    help_text: str
    mandatory: bool
    options: list[str]
    constraints: dict[str, Any]


class PublicFormOut(Struct):
    """What anyone may see of an open form: enough to render and submit it, nothing about its owner."""

    id: UUID
    title: str
    description: str
    status: FormStatus
    slug: str
    version: int
    closes_at: datetime | None
    questions: list[PublicQuestionOut]


class FormPage(Struct):
    items: list[FormOut]
    total: int
    limit: int
    offset: int

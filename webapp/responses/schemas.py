"""API shapes for submissions and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import Meta, Struct

from webapp.responses.models import ResponseStatus

MAX_ANSWERS = 500


class AnswerIn(Struct, forbid_unknown_fields=True):
    question_id: Annotated[str, Meta(max_length=64)]
    value: Any = None


class SubmissionIn(Struct, forbid_unknown_fields=True):
    """`answers` is either {question_id: value} or [{question_id, value}] (the list form can
    say the same question twice, which is then rejected rather than silently last-wins)."""

    answers: Annotated[dict[str, Any], Meta(max_length=MAX_ANSWERS)] | Annotated[
        list[AnswerIn], Meta(max_length=MAX_ANSWERS)]

    def items(self) -> list[tuple[str, Any]]:
        if isinstance(self.answers, dict):
            return list(self.answers.items())
        return [(a.question_id, a.value) for a in self.answers]


class AnswerOut(Struct):
    question_id: UUID
    value: Any
    text: str


class ResponseOut(Struct):
    id: UUID
    form_id: UUID
    form_version: int
    status: ResponseStatus
    submitted_at: datetime
    updated_at: datetime
    answers: list[AnswerOut]


class ResponsePage(Struct):
    items: list[ResponseOut]
    next_cursor: str | None
    limit: int

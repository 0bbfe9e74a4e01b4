"""Model → API shape conversions, shared by the JSON API and the compat layer."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import UNSET

from webapp.forms.models import Form, FormStatus, Question, QuestionKind
from webapp.forms.schemas import FormOut, PublicFormOut, PublicQuestionOut, QuestionOut


def question_out(q: Question) -> QuestionOut:
    return QuestionOut(
        id=q.id, form_id=q.form_id, position=q.position, kind=QuestionKind(q.kind), text=q.text,
        help_text=q.help_text, mandatory=q.mandatory, options=list(q.options or []),
        constraints=dict(q.constraints or {}), archived=q.archived_at is not None,
        created_at=q.created_at, updated_at=q.updated_at,
    )


def form_out(form: Form, questions: Iterable[Question] | None = None, response_count: int | None = None) -> FormOut:
    return FormOut(
        id=form.id, title=form.title, description=form.description, status=FormStatus(form.status),
        slug=form.slug, version=form.version, email=form.email, created_by=form.created_by,
        closes_at=form.closes_at, max_responses=form.max_responses,
        confirmation_message=form.confirmation_message, created_at=form.created_at, updated_at=form.updated_at,
        questions=[question_out(q) for q in questions] if questions is not None else UNSET,
        response_count=response_count if response_count is not None else UNSET,
    )


def public_form_out(form: Form, questions: Iterable[Question]) -> PublicFormOut:
    return PublicFormOut(
        id=form.id, title=form.title, description=form.description, status=FormStatus(form.status),
        slug=form.slug, version=form.version, closes_at=form.closes_at,
        questions=[
            PublicQuestionOut(id=q.id, position=q.position, kind=QuestionKind(q.kind), text=q.text,
                              help_text=q.help_text, mandatory=q.mandatory, options=list(q.options or []),
                              constraints=dict(q.constraints or {}))
            for q in questions if q.archived_at is None
        ],
    )

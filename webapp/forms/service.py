"""Forms and questions: ownership, structure changes and versioning."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from msgspec import UNSET
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import fetch_one
from webapp.errors import ProblemError, not_found
from webapp.forms.constraints import check_constraints, check_options
from webapp.forms.models import Form, FormStatus, Question, QuestionKind
from webapp.forms.schemas import FormCreate, FormUpdate, QuestionCreate, QuestionUpdate
from webapp.responses.models import Answer, Response
from webapp.timeutil import utcnow


def new_slug() -> str:
    return secrets.token_urlsafe(9)  # 12 URL-safe characters, 72 random bits


def _require_text(field: str, value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ProblemError(422, f"The {what} cannot be blank.", errors=[{"field": field,
                                                                         "message": f"Enter a {what}."}])
    return value


def _reject_nul(**fields: Any) -> None:
    errors = [{"field": k, "message": "Contains a NUL character, which cannot be stored."}
              for k, v in fields.items() if isinstance(v, str) and "\x00" in v]
    if errors:
        raise ProblemError(422, "Some fields contain NUL characters.", errors=errors)


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---- forms -------------------------------------------------------------------------------------

async def create_form(session: AsyncSession, owner_id: UUID, data: FormCreate) -> Form:
    title = _require_text("title", data.title, "title")
    _reject_nul(title=title, description=data.description, email=data.email, created_by=data.created_by,
                confirmation_message=data.confirmation_message)
    form = Form(
        owner_id=owner_id, title=title, description=data.description, status=data.status,
        email=data.email, created_by=data.created_by, closes_at=data.closes_at,
        max_responses=data.max_responses, confirmation_message=data.confirmation_message,
        slug=new_slug(), version=1,
    )
    session.add(form)
    await session.flush()
    questions = []
    errors: list[dict[str, Any]] = []
    for i, q in enumerate(data.questions):
        try:
            questions.append(_build_question(form.id, q, position=i))
        except ProblemError as exc:
            errors.extend({**e, "field": f"questions[{i}].{e['field']}"} for e in exc.errors or [])
    if errors:
        raise ProblemError(422, "Some questions are invalid.", errors=errors)
    session.add_all(questions)
    await session.flush()
    form.questions = questions
    return form


async def list_forms(
    session: AsyncSession, owner_id: UUID, *, search: str | None, limit: int, offset: int
) -> tuple[list[tuple[Form, int]], int]:
    where = [Form.owner_id == owner_id]
    if search:
        pattern = f"%{_escape_like(search.strip().lower())}%"
        where.append(or_(func.lower(Form.title).like(pattern, escape="\\"),
                         func.lower(Form.description).like(pattern, escape="\\")))
    total = await session.scalar(select(func.count()).select_from(Form).where(*where)) or 0
    counts = (
        select(Response.form_id, func.count().label("n")).group_by(Response.form_id).subquery()
    )
    rows = await session.execute(
        select(Form, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.form_id == Form.id)
        .where(*where)
        .order_by(Form.created_at.desc(), Form.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(f, n) for f, n in rows.all()], total


async def get_owned_form(session: AsyncSession, owner_id: UUID, form_id: UUID, *, lock: bool = False) -> Form:
    """The form if this user owns it; 404 otherwise, so other people's ids do not leak."""
    stmt = select(Form).where(Form.id == form_id, Form.owner_id == owner_id)
    if lock:
        stmt = stmt.with_for_update()
    form = await session.scalar(stmt)
    if form is None:
        raise not_found("Form")
    return form


async def owned_form_version(session: AsyncSession, owner_id: UUID, form_id: UUID) -> int:
    """`get_owned_form` for reads that need only the form's version: one row, no ORM load."""
    row = await fetch_one(session, "SELECT version FROM forms WHERE id = $1 AND owner_id = $2", form_id, owner_id)
    if row is None:
        raise not_found("Form")
    return row[0]


async def load_questions(session: AsyncSession, form_id: UUID, *, include_archived: bool) -> list[Question]:
    stmt = select(Question).where(Question.form_id == form_id)
    if not include_archived:
        stmt = stmt.where(Question.archived_at.is_(None))
    return list(await session.scalars(stmt.order_by(Question.position, Question.id)))


async def update_form(session: AsyncSession, form: Form, data: FormUpdate) -> Form:
    changes = {k: v for k in FormUpdate.__struct_fields__ if (v := getattr(data, k)) is not UNSET}
    if "title" in changes:
        changes["title"] = _require_text("title", changes["title"], "title")
    _reject_nul(**{k: v for k, v in changes.items() if isinstance(v, str)})
    for key, value in changes.items():
        setattr(form, key, value)
    await session.flush()
    return form


async def delete_form(session: AsyncSession, form: Form) -> None:
    # The foreign keys cascade to questions, responses and answers in one statement.
    await session.execute(delete(Form).where(Form.id == form.id))


async def bump_version(session: AsyncSession, form: Form) -> None:
    """Record a structural change: new version, so cached definitions and events follow it."""
    await session.execute(
        update(Form).where(Form.id == form.id).values(version=Form.version + 1, updated_at=utcnow())
    )
    await session.refresh(form, ["version", "updated_at"])


# ---- questions ---------------------------------------------------------------------------------

def _checked(kind: QuestionKind, options: list[str] | None, constraints: dict[str, Any] | None,
             ) -> tuple[list[str], dict[str, Any]]:
    clean_options, errors = check_options(kind, options)
    clean_constraints, more = check_constraints(kind, constraints, clean_options)
    errors += more
    if errors:
        raise ProblemError(422, "The question is invalid: " + "; ".join(e["message"] for e in errors),
                           errors=errors)
    return clean_options, clean_constraints


def _build_question(form_id: UUID, data: QuestionCreate, *, position: int) -> Question:
    text = _require_text("text", data.text, "question text")
    _reject_nul(text=text, help_text=data.help_text)
    options, constraints = _checked(data.kind, data.options, data.constraints)
    return Question(
        form_id=form_id, position=position, kind=data.kind, text=text, help_text=data.help_text,
        mandatory=data.mandatory, options=options, constraints=constraints,
    )


async def add_question(session: AsyncSession, form: Form, data: QuestionCreate) -> Question:
    active = await load_questions(session, form.id, include_archived=False)
    position = len(active) if data.position is None else min(data.position, len(active))
    question = _build_question(form.id, data, position=position)
    # Make room: everything from the target position moves one down.
    for q in active[position:]:
        q.position += 1
    session.add(question)
    await _renumber_archived(session, form.id, len(active) + 1)
    await session.flush()
    await bump_version(session, form)
    return question


async def _renumber_archived(session: AsyncSession, form_id: UUID, start: int) -> None:
    """Archived questions sort after the active ones so positions stay dense for respondents."""
    archived = await session.scalars(
        select(Question).where(Question.form_id == form_id, Question.archived_at.is_not(None))
        .order_by(Question.position, Question.id)
    )
    for offset, q in enumerate(archived):
        q.position = start + offset


async def get_question(session: AsyncSession, form: Form, question_id: UUID) -> Question:
    question = await session.scalar(
        select(Question).where(Question.id == question_id, Question.form_id == form.id)
    )
    if question is None:
        raise not_found("Question")
    return question


async def update_question(session: AsyncSession, form: Form, question: Question, data: QuestionUpdate) -> Question:
    if question.archived_at is not None:
        raise ProblemError(409, "This question is archived; archived questions cannot be edited.")
    kind = data.kind if data.kind is not UNSET else QuestionKind(question.kind)
    options = data.options if data.options is not UNSET else (
        question.options if kind == question.kind else None)
    constraints = data.constraints if data.constraints is not UNSET else (
        question.constraints if kind == question.kind else None)
    if kind != question.kind and await _has_answers(session, question.id):
        raise ProblemError(409, "This question already has answers, so its kind cannot change. "
                                "Archive it and add a new question instead.")
    clean_options, clean_constraints = _checked(kind, options, constraints)
    if data.text is not UNSET:
        question.text = _require_text("text", data.text, "question text")
    if data.help_text is not UNSET:
        question.help_text = data.help_text
    _reject_nul(text=question.text, help_text=question.help_text)
    if data.mandatory is not UNSET:
        question.mandatory = data.mandatory
    question.kind = kind
    question.options = clean_options
    question.constraints = clean_constraints
    await session.flush()
    await bump_version(session, form)
    return question


async def _has_answers(session: AsyncSession, question_id: UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Answer.question_id == question_id))))


async def remove_question(session: AsyncSession, form: Form, question: Question, *, purge: bool) -> str:
    """Archive a question that has answers (they stay readable); delete it otherwise or when purging."""
    if not purge and await _has_answers(session, question.id):
        if question.archived_at is None:
            question.archived_at = utcnow()
            await session.flush()
            await _compact(session, form.id)
            await bump_version(session, form)
        return "archived"
    await session.execute(delete(Question).where(Question.id == question.id))
    await _compact(session, form.id)
    await bump_version(session, form)
    return "deleted"


async def _compact(session: AsyncSession, form_id: UUID) -> None:
    active = await load_questions(session, form_id, include_archived=False)
    for i, q in enumerate(active):
        q.position = i
    await _renumber_archived(session, form_id, len(active))
    await session.flush()


async def reorder_questions(session: AsyncSession, form: Form, question_ids: Sequence[UUID]) -> list[Question]:
    active = await load_questions(session, form.id, include_archived=False)
    current = {q.id: q for q in active}
    if len(set(question_ids)) != len(question_ids):
        raise ProblemError(422, "question_ids lists a question more than once.")
    if set(question_ids) != set(current):
        missing = [str(i) for i in current if i not in set(question_ids)]
        unknown = [str(i) for i in question_ids if i not in current]
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if unknown:
            parts.append("not active questions of this form: " + ", ".join(unknown))
        raise ProblemError(422, "question_ids must list every active question of the form exactly once ("
                           + "; ".join(parts) + ").")
    for i, qid in enumerate(question_ids):
        current[qid].position = i
    await session.flush()
    await bump_version(session, form)
    return [current[qid] for qid in question_ids]


async def get_public_form(session: AsyncSession, form_id: UUID) -> Form | None:
    return await session.scalar(select(Form).where(Form.id == form_id))


async def get_form_by_slug(session: AsyncSession, slug: str) -> Form | None:
    return await session.scalar(select(Form).where(Form.slug == slug))


def accepting_state(form: Form) -> None:
    """Raise the problem a respondent sees when the form does not take responses now."""
    if form.status == FormStatus.DRAFT:
        raise ProblemError(409, "This form is not published yet, so it does not accept responses.",
                           title="Form not open")
    if form.status == FormStatus.CLOSED:
        raise ProblemError(409, "This form is closed and no longer accepts responses.", title="Form closed")
    if form.closes_at is not None and form.closes_at <= utcnow():
        raise ProblemError(410, f"This form stopped accepting responses on {form.closes_at:%Y-%m-%d %H:%M} UTC.",
                           title="Form closed")


# ---- lookups across an owner's forms (the reference API addresses questions by id alone) -----------

async def get_owned_question(
    session: AsyncSession, owner_id: UUID, question_id: UUID, *, lock: bool = False
) -> tuple[Question, Form]:
    """The question and its form if this user owns the form; 404 otherwise. `lock` locks the form row."""
    row = (await session.execute(
        select(Question, Form).join(Form, Form.id == Question.form_id)
        .where(Question.id == question_id, Form.owner_id == owner_id)
    )).first()
    if row is None:
        raise not_found("Question")
    question, form = row[0], row[1]
    if lock:
        form = await get_owned_form(session, owner_id, form.id, lock=True)
    return question, form


async def list_owned_questions(
    session: AsyncSession, owner_id: UUID, *, form_ids: Sequence[UUID] | None = None
) -> list[Question]:
    """Active questions of the owner's forms (optionally only these forms), form by form, in display order."""
    stmt = (
        select(Question).join(Form, Form.id == Question.form_id)
        .where(Form.owner_id == owner_id, Question.archived_at.is_(None))
    )
    if form_ids is not None:
        if not form_ids:
            return []
        stmt = stmt.where(Question.form_id.in_(form_ids))
    stmt = stmt.order_by(Form.created_at, Form.id, Question.position, Question.id)
    return list(await session.scalars(stmt))


# ---- publishing (the builder's publish / close / reopen buttons) -----------------------------------

async def change_status(session: AsyncSession, form: Form, status: FormStatus) -> Form:
    """Publish, close or reopen. A form opens only with a question to answer and a close date
    still ahead, so what the owner sees as "open" is what respondents can fill in."""
    if status == FormStatus.OPEN:
        if not await load_questions(session, form.id, include_archived=False):
            raise ProblemError(422, "Add at least one question before publishing the form.",
                               errors=[{"field": "status", "message": "Add at least one question first."}])
        if form.closes_at is not None and form.closes_at <= utcnow():
            raise ProblemError(422, "The close date has passed: change or clear it in the settings first.",
                               errors=[{"field": "closes_at", "message": "This date has passed."}])
    form.status = status
    await session.flush()
    return form

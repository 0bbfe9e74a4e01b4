"""The dashboard: my forms with status, response count and last response; search, create,
duplicate and delete (with a confirmation that says what will be lost)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import User
from webapp.errors import ProblemError
from webapp.forms import service
from webapp.forms.models import Form, Question
from webapp.forms.schemas import FormCreate, QuestionCreate
from webapp.responses.models import Response
from webapp.responses.service import count_responses
from webapp.timeutil import utcnow
from webapp.web import error_items, field_errors, form_data, parse_id, provide_page_user, redirect, render

PAGE_SIZE = 20
page_user = {"user": Provide(provide_page_user)}


async def _last_responses(db: AsyncSession, form_ids: Sequence[UUID]) -> dict[UUID, datetime]:
    if not form_ids:
        return {}
    rows = await db.execute(select(Response.form_id, func.max(Response.submitted_at))
                            .where(Response.form_id.in_(form_ids)).group_by(Response.form_id))
    return {fid: last for fid, last in rows}


async def _listing(request: Request, db: AsyncSession, user: User, q: str, page: int, *, status: int = 200,
                   errors: dict[str, str] | None = None, title_value: str = "") -> Any:
    q = q.strip()
    rows, total = await service.list_forms(db, user.id, search=q or None, limit=PAGE_SIZE,
                                           offset=(page - 1) * PAGE_SIZE)
    last = await _last_responses(db, [f.id for f, _ in rows])
    forms = [{"form": f, "responses": n, "last_response": last.get(f.id)} for f, n in rows]
    pages = max(1, -(-total // PAGE_SIZE))
    errors = errors or {}
    return render(request, "dashboard/index.html", fragment="dashboard/_list.html", status_code=status,
                  forms=forms, total=total, q=q, page=page, pages=pages, errors=errors,
                  summary=error_items(errors), title_value=title_value)


@get("/forms", dependencies=page_user, name="dashboard")
async def dashboard(
    request: Request, db_session: AsyncSession, user: User,
    q: Annotated[str, Parameter(max_length=200)] = "",
    page: Annotated[int, Parameter(ge=1, le=100_000)] = 1,
) -> Any:
    return await _listing(request, db_session, user, q, page)


@post("/forms", dependencies=page_user, name="create_form")
async def create_form(request: Request, db_session: AsyncSession, user: User) -> Any:
    data = await form_data(request)
    title = data.get("title", "")
    title = title.strip() if isinstance(title, str) else ""
    error = None
    if not title:
        error = "Give the form a title, e.g. “Customer feedback”."
    elif len(title) > 200:
        error = f"Use at most 200 characters for the title (this one has {len(title)})."
    if error is None:
        try:
            form = await service.create_form(db_session, user.id, FormCreate(title=title))
        except ProblemError as exc:
            error = field_errors(exc).get("title", exc.detail)
    if error is not None:
        return await _listing(request, db_session, user, "", 1, status=422, errors={"title": error},
                              title_value=title[:300])
    return redirect(request, f"/forms/{form.id}/edit", flash="Your form is ready. Add your first question.")


def _copy_title(title: str) -> str:
    return f"Copy of {title}"[:200]


def _question_copy(q: Question) -> QuestionCreate:
    return QuestionCreate(text=q.text, kind=q.kind, help_text=q.help_text, mandatory=q.mandatory,
                          options=list(q.options or []) or None, constraints=dict(q.constraints or {}) or None)


@post("/forms/{form_id:str}/duplicate", dependencies=page_user, name="duplicate_form")
async def duplicate_form(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    """A draft copy with a new link: same settings and active questions, none of the responses."""
    form = await service.get_owned_form(db_session, user.id, parse_id(form_id, "Form"))
    questions = await service.load_questions(db_session, form.id, include_archived=False)
    closes_at = form.closes_at if form.closes_at is not None and form.closes_at > utcnow() else None
    copy = await service.create_form(db_session, user.id, FormCreate(
        title=_copy_title(form.title), description=form.description, closes_at=closes_at,
        max_responses=form.max_responses, confirmation_message=form.confirmation_message,
        questions=[_question_copy(q) for q in questions],
    ))
    return redirect(request, "/forms", flash=f"Created “{copy.title}” as a draft with its own link.")


async def _owned(db: AsyncSession, user: User, form_id: str) -> Form:
    return await service.get_owned_form(db, user.id, parse_id(form_id, "Form"))


@get("/forms/{form_id:str}/delete", dependencies=page_user, name="confirm_delete_form")
async def confirm_delete(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    questions = await service.load_questions(db_session, form.id, include_archived=True)
    return render(request, "dashboard/delete.html", form=form, question_count=len(questions),
                  response_count=await count_responses(db_session, form.id))


@post("/forms/{form_id:str}/delete", dependencies=page_user, name="delete_form")
async def delete_form(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    await service.delete_form(db_session, form)
    return redirect(request, "/forms", flash=f"Deleted “{form.title}” with its questions and responses.")


dashboard_pages = [dashboard, create_form, duplicate_form, confirm_delete, delete_form]

"""The form owner's results: the responses table (keyset pages, newest first), one response with
edit and delete, the summary tab with charts, and the CSV download.

Reading goes through responses.service (list_responses, response_view), writing through
update_response and delete_response, so the rules and the outbox events are the API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webapp.accounts.models import User
from webapp.errors import ProblemError
from webapp.forms.definition import QuestionDef, questions_for
from webapp.forms.models import Form, QuestionKind
from webapp.forms.service import get_owned_form
from webapp.responses import service
from webapp.responses.export import csv_response
from webapp.responses.models import Response
from webapp.responses.pages import _items as posted_answers
from webapp.responses.summary import summarise
from webapp.web import form_data, parse_id, provide_page_user, redirect, render

page_user = {"user": Provide(provide_page_user)}
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Row:
    id: UUID
    submitted_at: Any
    updated_at: Any
    status: str
    cells: list[str]


async def _owned(db: AsyncSession, user: User, form_id: str) -> Form:
    return await get_owned_form(db, user.id, parse_id(form_id, "Form"))


async def _owned_response(db: AsyncSession, user: User, form_id: str, response_id: str) -> tuple[Response, Form]:
    fid = parse_id(form_id, "Form")
    return await service.get_owned_response(db, user.id, parse_id(response_id, "Response"), fid)


@get("/forms/{form_id:str}/results", dependencies=page_user, name="results", include_in_schema=False)
async def results(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    return redirect(request, f"/forms/{form.id}/responses")


@get("/forms/{form_id:str}/responses", dependencies=page_user, name="responses_table")
async def responses_table(
    request: Request, db_session: AsyncSession, user: User, form_id: str,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
) -> Any:
    form = await _owned(db_session, user, form_id)
    # One column per question: active ones in order, then archived ones (their positions come last).
    questions = await questions_for(db_session, form.id, form.version)
    views, next_cursor = await service.list_responses(db_session, form.id, limit=PAGE_SIZE, cursor=cursor or None)
    rows = []
    for v in views:
        texts = {a["question_id"]: a["text"] for a in v.answers}
        rows.append(Row(v.id, v.submitted_at, v.updated_at, v.status.value, [texts.get(q.id, "") for q in questions]))
    total = await service.count_responses(db_session, form.id)
    return render(request, "results/responses.html", fragment="results/_table.html", form=form, tab="responses",
                  questions=questions, rows=rows, next_cursor=next_cursor, paged=bool(cursor), total=total,
                  response_count=total, page_size=PAGE_SIZE)


@get("/forms/{form_id:str}/responses.csv", dependencies=page_user, name="responses_csv")
async def responses_csv(db_session: AsyncSession, db_engine: AsyncEngine, user: User, form_id: str) -> Stream:
    form = await _owned(db_session, user, form_id)
    return await csv_response(db_session, db_engine, form)


def _answers_by_question(answers: list[dict[str, Any]]) -> dict[UUID, dict[str, Any]]:
    return {a["question_id"]: a for a in answers}


@get("/forms/{form_id:str}/responses/{response_id:str}", dependencies=page_user, name="response_detail")
async def response_detail(request: Request, db_session: AsyncSession, user: User, form_id: str,
                          response_id: str) -> Any:
    response, form = await _owned_response(db_session, user, form_id, response_id)
    view = await service.response_view(db_session, response, form)
    questions = await questions_for(db_session, form.id, form.version)
    answers = _answers_by_question(view.answers)
    items = [(q, answers.get(q.id)) for q in questions if not q.archived or q.id in answers]
    return render(request, "results/response.html", form=form, tab="responses", response=view, items=items)


def _field_values(q: QuestionDef, answer: dict[str, Any] | None) -> list[str]:
    """A stored answer as the respondent inputs' values (what question_field expects)."""
    if answer is None:
        return []
    value = answer["value"]
    if q.kind == QuestionKind.MULTIPLE_CHOICE and isinstance(value, list):
        return [str(v) for v in value]
    if q.kind == QuestionKind.YES_NO and isinstance(value, bool):
        return ["yes" if value else "no"]
    return [answer["text"]]


async def _edit_page(request: Request, db: AsyncSession, form: Form, view: service.ResponseView, *,
                     values: dict[str, list[str]] | None = None, errors: dict[str, str] | None = None,
                     general: list[str] | None = None, status: int = 200) -> Any:
    questions = [q for q in await questions_for(db, form.id, form.version) if not q.archived]
    answers = _answers_by_question(view.answers)
    if values is None:
        values = {str(q.id): _field_values(q, answers.get(q.id)) for q in questions}
    errors = errors or {}
    summary = [{"href": f"#q-{q.id}", "text": f"{q.text}: {errors[str(q.id)]}"} for q in questions
               if str(q.id) in errors]
    summary += [{"href": "", "text": text} for text in general or []]
    return render(request, "results/edit.html", status_code=status, form=form, tab="responses", response=view,
                  questions=questions, values=values, errors=errors, summary=summary)


@get("/forms/{form_id:str}/responses/{response_id:str}/edit", dependencies=page_user, name="response_edit")
async def edit_response(request: Request, db_session: AsyncSession, user: User, form_id: str,
                        response_id: str) -> Any:
    response, form = await _owned_response(db_session, user, form_id, response_id)
    return await _edit_page(request, db_session, form, await service.response_view(db_session, response, form))


@post("/forms/{form_id:str}/responses/{response_id:str}/edit", dependencies=page_user, name="response_update")
async def update_response(request: Request, db_session: AsyncSession, user: User, form_id: str,
                          response_id: str) -> Any:
    response, form = await _owned_response(db_session, user, form_id, response_id)
    items, values = posted_answers(await form_data(request))
    questions = await questions_for(db_session, form.id, form.version)
    # An unticked checkbox or radio sends nothing: every active question not posted is cleared.
    posted = {str(k).lower() for k, _ in items}
    items += [(str(q.id), "") for q in questions if not q.archived and str(q.id) not in posted]
    try:
        await service.update_response(db_session, response, form, items,
                                      region=request.app.state.settings.default_phone_region)
    except ProblemError as exc:
        if exc.status_code != 422 or not exc.errors:
            raise
        errors: dict[str, str] = {}
        known = {str(q.id) for q in questions if not q.archived}
        general: list[str] = []
        for e in exc.errors:
            key = str(e.get("question_id", "")).lower()
            if key in known:
                errors.setdefault(key, str(e.get("message", "")))
            else:
                general.append(str(e.get("message", "")))
        view = await service.response_view(db_session, response, form)
        return await _edit_page(request, db_session, form, view, values=values, errors=errors,
                                general=list(dict.fromkeys(general)), status=422)
    return redirect(request, f"/forms/{form.id}/responses/{response.id}", flash="Saved the changes to this response.")


@get("/forms/{form_id:str}/responses/{response_id:str}/delete", dependencies=page_user,
     name="response_confirm_delete")
async def confirm_delete_response(request: Request, db_session: AsyncSession, user: User, form_id: str,
                                  response_id: str) -> Any:
    response, form = await _owned_response(db_session, user, form_id, response_id)
    view = await service.response_view(db_session, response, form)
    return render(request, "results/delete.html", form=form, tab="responses", response=view)


@post("/forms/{form_id:str}/responses/{response_id:str}/delete", dependencies=page_user, name="response_delete")
async def delete_response(request: Request, db_session: AsyncSession, user: User, form_id: str,
                          response_id: str) -> Any:
    response, form = await _owned_response(db_session, user, form_id, response_id)
    await service.delete_response(db_session, response, form)
    return redirect(request, f"/forms/{form.id}/responses", flash="Deleted the response and its answers.")


@get("/forms/{form_id:str}/summary", dependencies=page_user, name="summary")
async def summary_page(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    summary = await summarise(db_session, form)
    return render(request, "results/summary.html", form=form, tab="summary", summary=summary,
                  response_count=summary.total)


results_pages = [results, responses_table, responses_csv, response_detail, edit_response, update_response,
                 confirm_delete_response, delete_response, summary_page]

"""Submitting, reading, editing and deleting responses. Every write is one transaction that
includes its outbox event."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from webapp.db import as_uuid, fetch_all
from webapp.deliveries.required import extra_required
from webapp.errors import ProblemError, not_found
from webapp.forms.definition import QuestionDef, questions_for
from webapp.forms.models import Form
from webapp.forms.service import accepting_state
from webapp.observability import counts_submissions
from webapp.outbox.events import (
    RESPONSE_DELETED,
    RESPONSE_SUBMITTED,
    RESPONSE_UPDATED,
    response_event,
    write_event,
)
from webapp.responses import fastpath, readmodel
from webapp.responses.models import Answer, Response, ResponseStatus
from webapp.responses.validation import CleanAnswer, parse_answer_items, validate_answers
from webapp.responses.view import ResponseView
from webapp.timeutil import utcnow

MAX_PAGE = 200


def _invalid(errors: list[dict[str, Any]]) -> ProblemError:
    n = len(errors)
    return ProblemError(422, f"{n} answer{'s' if n != 1 else ''} need{'s' if n == 1 else ''} attention.",
                        errors=errors)


def _event_answers(clean: Sequence[CleanAnswer], qdefs: dict[UUID, QuestionDef]) -> list[dict[str, Any]]:
    return [{"question_id": str(a.question_id), "kind": qdefs[a.question_id].kind.value,
             "value": a.value, "text": a.text} for a in clean]


async def _lock_for_limit(session: AsyncSession, form: Form) -> None:
    """With a response limit, serialise submissions to this form and count under the lock."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks; a write as the transaction's first statement takes the database
        # write lock (waiting out the busy timeout), so the count below cannot race another submit.
        await session.execute(update(Form).where(Form.id == form.id).values(updated_at=Form.updated_at))
    else:
        await session.execute(select(Form.id).where(Form.id == form.id).with_for_update())
    count = await session.scalar(select(func.count()).select_from(Response).where(Response.form_id == form.id))
    if form.max_responses is not None and (count or 0) >= form.max_responses:
        raise ProblemError(409, f"This form has reached its limit of {form.max_responses} responses.",
                           title="Form full")


@counts_submissions
async def submit(
    session: AsyncSession, form_id: UUID, items: Sequence[tuple[Any, Any]], *, region: str
) -> ResponseView:
    view = await fastpath.try_submit(session, form_id, items, region)
    if view is not None:
        return view
    form = await session.scalar(select(Form).where(Form.id == form_id))
    if form is None:
        raise not_found("Form")
    accepting_state(form)
    questions = await questions_for(session, form.id, form.version)
    answers, errors = parse_answer_items(items)
    required = await extra_required(session, form.id, form.version)
    clean, more = validate_answers(questions, answers, region, extra_required=required)
    errors += more
    if errors:
        raise _invalid(errors)
    if form.max_responses is not None:
        await _lock_for_limit(session, form)
    now = utcnow()
    response_id = uuid7()
    answers = [{"question_id": a.question_id, "value": a.value, "text": a.text} for a in clean]
    await session.execute(insert(Response).values(
        id=response_id, form_id=form.id, submitted_at=now, updated_at=now, form_version=form.version,
        status=ResponseStatus.COMPLETE, **readmodel.columns(questions, answers)))
    await _insert_answers(session, response_id, clean)
    qdefs = {q.id: q for q in questions}
    event_answers = _event_answers(clean, qdefs)
    await write_event(session, response_event(
        RESPONSE_SUBMITTED, form_id=form.id, form_version=form.version, response_id=response_id,
        submitted_at=now, answers=event_answers, occurred_at=now))
    if form.max_responses is None:
        fastpath.remember(form.id, form.version, questions, required)
    return ResponseView(response_id, form.id, form.version, ResponseStatus.COMPLETE, now, now, answers)


async def _insert_answers(session: AsyncSession, response_id: UUID, clean: Sequence[CleanAnswer]) -> None:
    if clean:
        await session.execute(insert(Answer), [
            {"id": uuid7(), "response_id": response_id, "question_id": a.question_id, "value": a.value,
             "text": a.text} for a in clean])


# ---- reading -----------------------------------------------------------------------------------

def encode_cursor(submitted_at: datetime, response_id: UUID) -> str:
    raw = f"{submitted_at.isoformat()}|{response_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, rid = raw.partition("|")
        return datetime.fromisoformat(stamp), UUID(rid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(400, "The cursor is not valid; use the next_cursor value from a previous page.",
                           errors=[{"field": "cursor", "message": "Invalid cursor."}]) from None


_ANSWERS_SQL = (
    "SELECT a.response_id, a.question_id, a.value, a.text FROM answers a "
    "JOIN questions q ON q.id = a.question_id "
    "WHERE a.response_id = ANY($1) ORDER BY q.position, q.id"
)


async def _answers_for(session: AsyncSession, response_ids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """Answers per response, in the form's question order (archived questions after the active ones).

    Read on the driver directly: on a page of 50 responses the ORM's per-row processing of 500
    answers cost more than everything else in the request.
    """
    out: dict[UUID, list[dict[str, Any]]] = {rid: [] for rid in response_ids}
    if not response_ids:
        return out
    rows = await fetch_all(session, _ANSWERS_SQL, list(response_ids))
    # PostgreSQL's jsonb codec (set up by SQLAlchemy, using msgspec) decodes; SQLite hands back the
    # JSON text, except that its NUMERIC affinity for a JSON column has already turned numbers into numbers.
    sqlite = session.bind.dialect.name == "sqlite"
    decode = msgspec.json.decode
    for rid, qid, value, text in rows:
        if sqlite and isinstance(value, str):
            value = decode(value)
        out[as_uuid(rid)].append({"question_id": as_uuid(qid), "value": value, "text": text})
    return out


async def list_responses(
    session: AsyncSession, form_id: UUID, *, limit: int, cursor: str | None
) -> tuple[list[ResponseView], str | None]:
    """Newest first, keyset-paginated on (submitted_at, id): the cost of a page is the same at any depth.

    (The JSON API's page is `pagejson.responses_page`, the same listing written by the database.)"""
    stmt = select(Response).where(Response.form_id == form_id)
    if cursor:
        stamp, rid = decode_cursor(cursor)
        # A row-value comparison is an index range scan on (form_id, submitted_at, id); the
        # equivalent OR form is only a filter, which made deep pages slow.
        stmt = stmt.where(tuple_(Response.submitted_at, Response.id) < tuple_(stamp, rid))
    rows = list(await session.scalars(
        stmt.order_by(Response.submitted_at.desc(), Response.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    answers = await _answers_for(session, [r.id for r in rows])
    views = [_view(r, answers[r.id]) for r in rows]
    next_cursor = encode_cursor(rows[-1].submitted_at, rows[-1].id) if more and rows else None
    return views, next_cursor


def _view(r: Response, answers: list[dict[str, Any]]) -> ResponseView:
    return ResponseView(r.id, r.form_id, r.form_version, ResponseStatus(r.status), r.submitted_at,
                        r.updated_at, answers)


async def get_owned_response(
    session: AsyncSession, owner_id: UUID, response_id: UUID, form_id: UUID | None = None
) -> tuple[Response, Form]:
    stmt = select(Response, Form).join(Form, Form.id == Response.form_id).where(
        Response.id == response_id, Form.owner_id == owner_id)
    if form_id is not None:
        stmt = stmt.where(Response.form_id == form_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise not_found("Response")
    return row[0], row[1]


async def response_view(session: AsyncSession, response: Response, form: Form) -> ResponseView:
    answers = await _answers_for(session, [response.id])
    return _view(response, answers[response.id])


async def list_all_responses(session: AsyncSession, owner_id: UUID, limit: int) -> list[ResponseView]:
    """Every response across the owner's forms (the reference API's GET /response)."""
    rows = list(await session.scalars(
        select(Response).join(Form, Form.id == Response.form_id).where(Form.owner_id == owner_id)
        .order_by(Response.submitted_at.desc(), Response.id.desc()).limit(limit)))
    answers = await _answers_for(session, [r.id for r in rows])
    return [_view(r, answers[r.id]) for r in rows]


# ---- editing -----------------------------------------------------------------------------------

async def update_response(
    session: AsyncSession, response: Response, form: Form, items: Sequence[tuple[Any, Any]], *, region: str
) -> ResponseView:
    """Replace the given answers (a blank value clears one) and re-validate the whole response."""
    questions = await questions_for(session, form.id, form.version)
    given, errors = parse_answer_items(items)
    existing = await _answers_for(session, [response.id])
    active_ids = {str(q.id) for q in questions if not q.archived}
    merged: dict[str, Any] = {str(a["question_id"]): a["value"] for a in existing[response.id]
                              if str(a["question_id"]) in active_ids}
    merged.update(given)
    clean, more = validate_answers(questions, merged, region)
    errors += more
    if errors:
        raise _invalid(errors)
    # Answers to archived questions are kept as they were; active ones are replaced as a set.
    active_uuids = [q.id for q in questions if not q.archived]
    if active_uuids:
        await session.execute(delete(Answer).where(
            Answer.response_id == response.id, Answer.question_id.in_(active_uuids)))
    await _insert_answers(session, response.id, clean)
    now = utcnow()
    response.updated_at = now
    view = await response_view(session, response, form)
    await session.execute(update(Response).where(Response.id == response.id).values(
        updated_at=now, **readmodel.columns(questions, view.answers)))
    qdefs = {q.id: q for q in questions}
    await write_event(session, response_event(
        RESPONSE_UPDATED, form_id=form.id, form_version=form.version, response_id=response.id,
        submitted_at=response.submitted_at,
        answers=[{"question_id": str(a["question_id"]), "kind": qdefs[a["question_id"]].kind.value,
                  "value": a["value"], "text": a["text"]} for a in view.answers if a["question_id"] in qdefs],
        occurred_at=now))
    return view


async def delete_response(session: AsyncSession, response: Response, form: Form) -> None:
    await session.execute(delete(Response).where(Response.id == response.id))
    await write_event(session, response_event(
        RESPONSE_DELETED, form_id=form.id, form_version=form.version, response_id=response.id,
        submitted_at=response.submitted_at, answers=None))


async def count_responses(session: AsyncSession, form_id: UUID) -> int:
    return await session.scalar(select(func.count()).select_from(Response).where(Response.form_id == form_id)) or 0


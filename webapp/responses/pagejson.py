"""The JSON API's page of responses (GET /api/v1/forms/{id}/responses), as bytes.

On PostgreSQL the database writes each response's JSON object, answers included, in the same
shape and field order as `ResponseOut` (timestamps as msgspec writes them: UTC, 'Z', microseconds
only when there are any); Python only joins 50 strings. Building 500 answer objects in Python
and encoding them again cost more than everything else in the request. Elsewhere (SQLite) the
page is `service.list_responses` encoded by msgspec. Both give the same JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import fetch_all
from webapp.forms.definition import questions_for
from webapp.forms.models import Form
from webapp.responses import service
from webapp.responses.convert import response_out
from webapp.responses.schemas import ResponsePage

_encode = msgspec.json.Encoder().encode


def _stamp(column: str) -> str:
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {column}) = {column} "
            f"THEN '' ELSE to_char({utc}, '.US') END || 'Z'")


_ITEM = (
    "json_build_object('id', r.id,"  # noqa: S608 (constant text only)
    " 'form_id', r.form_id, 'form_version', r.form_version, 'status', r.status, "
    f"'submitted_at', {_stamp('r.submitted_at')}, 'updated_at', {_stamp('r.updated_at')}, "
    # $2 is the form's question ids in display order (from the definition cache): sorting on it
    # saves joining the questions table for every answer.
    "'answers', COALESCE((SELECT json_agg(json_build_object('question_id', a.question_id, 'value', a.value, "
    "'text', a.text) ORDER BY array_position($2::uuid[], a.question_id), a.question_id) FROM answers a "
    "WHERE a.response_id = r.id), '[]'::json))::text"
)
# Newest first on the (form_id, submitted_at, id) index; a row-value comparison for the keyset.
_FIRST_PAGE = (f"SELECT r.submitted_at, r.id, {_ITEM} FROM responses r WHERE r.form_id = $1 "  # noqa: S608
               "ORDER BY r.submitted_at DESC, r.id DESC LIMIT $3")
_NEXT_PAGE = (f"SELECT r.submitted_at, r.id, {_ITEM} FROM responses r WHERE r.form_id = $1 "  # noqa: S608
              "AND (r.submitted_at, r.id) < ($4, $5) ORDER BY r.submitted_at DESC, r.id DESC LIMIT $3")


async def responses_page(session: AsyncSession, form: Form, *, limit: int, cursor: str | None) -> bytes:
    """The encoded `ResponsePage`: `limit` responses, newest first, after `cursor`."""
    if session.bind.dialect.name != "postgresql":
        views, next_cursor = await service.list_responses(session, form.id, limit=limit, cursor=cursor)
        return _encode(ResponsePage(items=[response_out(v) for v in views], next_cursor=next_cursor, limit=limit))
    order = [q.id for q in await questions_for(session, form.id, form.version)]
    params: list[Any] = [form.id, order, limit + 1]
    if cursor:
        params += service.decode_cursor(cursor)
    rows = await fetch_all(session, _NEXT_PAGE if cursor else _FIRST_PAGE, *params)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = service.encode_cursor(rows[-1][0], rows[-1][1]) if more and rows else None
    items = msgspec.Raw(("[" + ",".join(row[2] for row in rows) + "]").encode())
    return _encode({"items": items, "next_cursor": next_cursor, "limit": limit})

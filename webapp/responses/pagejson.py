"""The JSON API's page of responses (GET /api/v1/forms/{id}/responses), as bytes.

On PostgreSQL the database writes each response's JSON object, answers included, in the same
shape and field order as `ResponseOut` (timestamps as msgspec writes them: UTC, 'Z', microseconds
only when there are any), and the page's items arrive joined in one row. Building 500 answer objects in Python
and encoding them again cost more than everything else in the request. Elsewhere (SQLite) the
page is `service.list_responses` encoded by msgspec. Both give the same JSON.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import as_uuid, fetch_all
from webapp.forms.definition import questions_for
from webapp.responses import readmodel, service
from webapp.responses.convert import response_out
from webapp.responses.readmodel import ANSWERS_ARRAY_SQL
from webapp.responses.schemas import ResponsePage

_encode = msgspec.json.Encoder().encode


def _utc_text(column: str) -> str:
    """A timestamp column as msgspec writes it: UTC, 'Z', microseconds only when there are any."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {column}) = {column} "
            f"THEN '' ELSE to_char({utc}, '.US') END || 'Z'")


# One response as a JSON object in `ResponseOut`'s shape and field order, by text concatenation
# (json_build_object looks up every argument's type on every call and cost twice as much here).
# The answers are the row's stored copy while the form's question order still hashes to $4,
# else built from the answers table (readmodel.py); $2 is the question ids in display order.
_ITEM = (
    "'{\"id\":\"' || r.id::text || '\",\"form_id\":\"' || r.form_id::text || '\",\"form_version\":' "
    "|| r.form_version::text || ',\"status\":' || to_json(r.status)::text "
    f"|| ',\"submitted_at\":\"' || {_utc_text('r.submitted_at')} || '\",\"updated_at\":\"' || {_utc_text('r.updated_at')} "
    "|| '\",\"answers\":' || COALESCE(CASE WHEN r.answers_order = $4 THEN r.answers_json END, "
    f"{ANSWERS_ARRAY_SQL}) || '}}'"
)


def _page_sql(keyset: str) -> str:
    """The page as one row: the items joined, whether more follow, and the last item's key (the
    cursor). One row instead of fifty: the driver's cost is per row, and it was a third of the request.
    Newest first on the (form_id, submitted_at, id) index; a row-value comparison for the keyset."""
    last = "(array_agg(p.{0} ORDER BY p.n DESC) FILTER (WHERE p.n <= $3))[1]"
    return (
        "SELECT string_agg(p.item, ',' ORDER BY p.n) FILTER (WHERE p.n <= $3), count(*) > $3, "  # noqa: S608
        f"{last.format('submitted_at')}, {last.format('id')} FROM (SELECT row_number() OVER "
        f"(ORDER BY r.submitted_at DESC, r.id DESC) AS n, r.submitted_at, r.id, {_ITEM} AS item FROM responses r "
        f"WHERE r.form_id = $1{keyset} ORDER BY r.submitted_at DESC, r.id DESC LIMIT $3 + 1) p"
    )


_FIRST_PAGE = _page_sql("")
_NEXT_PAGE = _page_sql(" AND (r.submitted_at, r.id) < ($5, $6)")


async def responses_page(session: AsyncSession, form_id: UUID, version: int, *, limit: int,
                         cursor: str | None) -> bytes:
    """The encoded `ResponsePage` of the form (at `version`): `limit` responses, newest first, after `cursor`."""
    if session.bind.dialect.name != "postgresql":
        views, next_cursor = await service.list_responses(session, form_id, limit=limit, cursor=cursor)
        return _encode(ResponsePage(items=[response_out(v) for v in views], next_cursor=next_cursor, limit=limit))
    order = [q.id for q in await questions_for(session, form_id, version)]
    params: list[Any] = [form_id, order, limit, readmodel.order_stamp(order)]
    if cursor:
        params += service.decode_cursor(cursor)
    items, more, last_at, last_id = (await fetch_all(session, _NEXT_PAGE if cursor else _FIRST_PAGE, *params))[0]
    next_cursor = service.encode_cursor(last_at, as_uuid(last_id)) if more else None
    return _encode({"items": msgspec.Raw(f"[{items or ''}]".encode()), "next_cursor": next_cursor, "limit": limit})

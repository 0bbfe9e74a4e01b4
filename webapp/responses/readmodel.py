"""Each response's answers as the JSON API lists them, kept on the response row.

A page of the API's listing is 50 responses with their answers. Read from the answers table, that
is 500 rows to find and format per page, most of the page's cost. So every response also keeps
`answers_json`: its answers as a JSON array in the form's display order, written in the same
transaction as the answers themselves (submission and edit). A display order can change later
(questions moved, inserted, archived), so the row also keeps `answers_order`, a hash of the order
it was written in. The listing uses the copy only while that hash is the current order's, and
builds the array from the answers table otherwise: an order change makes older rows slower to
list, never wrong. Only the order can go stale: every submission or edit rewrites the copy, so
the CSV export, which places answers by question id, reads it whatever the order (a purged
question's answers stay in older copies, where no column asks for them). The answers table stays
the record; this is a copy for reading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from webapp.forms.definition import QuestionDef

_encode = msgspec.json.Encoder().encode

def answer_sql(question_id: str, value: str, text: str) -> str:
    """PostgreSQL text of one answer object in the API's shape, from those column expressions."""
    return (f"'{{\"question_id\":\"' || {question_id}::text || '\",\"value\":' || COALESCE({value}::text, 'null') "
            f"|| ',\"text\":' || to_json({text})::text || '}}'")


# The same array built by PostgreSQL from the answers table for response `r`, with the form's
# question ids in display order as $2 (answers to unknown questions last, then by id, like
# `answers_json`). Shared by the listing (for stale rows) and the backfill.
ANSWERS_ARRAY_SQL = (
    f"'[' || COALESCE((SELECT string_agg({answer_sql('a.question_id', 'a.value', 'a.text')}, ',' "  # noqa: S608
    "ORDER BY array_position($2::uuid[], a.question_id), a.question_id) FROM answers a "
    "WHERE a.response_id = r.id), '') || ']'"
)


def order_stamp(question_ids: Iterable[UUID]) -> int:
    """A signed 64-bit hash of the display order (ids of all questions, archived ones included)."""
    digest = hashlib.blake2b(b"".join(qid.bytes for qid in question_ids), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def columns(questions: Sequence[QuestionDef], answers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`answers_json` and `answers_order` for a response whose answers are `answers` (the API's
    answer dicts: question_id, value, text), under the form's `questions` in display order."""
    rank = {q.id: i for i, q in enumerate(questions)}
    ordered = sorted(answers, key=lambda a: (rank.get(a["question_id"], len(rank)), str(a["question_id"])))
    return {"answers_json": _encode(ordered).decode(), "answers_order": order_stamp(q.id for q in questions)}


_FORMS = "SELECT DISTINCT form_id FROM responses WHERE answers_json IS NULL"
_ORDER = "SELECT id FROM questions WHERE form_id = $1 ORDER BY position, id"
# Before every (submitted_at, id) key: where a keyset walk over a form's responses starts.
BEFORE_EVERY_KEY: tuple[datetime, UUID] = (datetime.min.replace(tzinfo=UTC), UUID(int=0))
# Keyset batches on the (form_id, submitted_at, id) index: each batch starts where the last ended.
_KEYS = ("SELECT submitted_at, id FROM responses WHERE form_id = $1 AND (submitted_at, id) > ($2, $3) "
         "ORDER BY submitted_at, id LIMIT $4")
_FILL = (
    f"UPDATE responses r SET answers_json = {ANSWERS_ARRAY_SQL}, answers_order = $3 "  # noqa: S608 (constant)
    "WHERE r.id = ANY($1::uuid[]) AND r.answers_json IS NULL"
)


async def backfill(engine: AsyncEngine, batch_size: int = 5_000) -> int:
    """Fill `answers_json` where it is NULL (rows written before it existed), one committed batch
    at a time so locks stay short; returns how many rows were filled. PostgreSQL only: elsewhere
    the listing never reads the copy."""
    if engine.dialect.name != "postgresql":
        return 0
    filled = 0
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for (form_id,) in await raw.fetch(_FORMS):
            order = [row[0] for row in await raw.fetch(_ORDER, form_id)]
            stamp = order_stamp(order)
            after: tuple[Any, Any] = BEFORE_EVERY_KEY
            while keys := await raw.fetch(_KEYS, form_id, *after, batch_size):
                status = await raw.execute(_FILL, [k[1] for k in keys], order, stamp)  # autocommit: one batch
                filled += int(status.split()[-1])
                after = (keys[-1][0], keys[-1][1])
    return filled

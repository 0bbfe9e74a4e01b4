"""CSV export of a form's responses, streamed in keyset batches.

Scale is the point (a million responses must stream in seconds with flat memory). Batches
follow (submitted_at, id), the index order. On PostgreSQL each response's row carries its answers
as JSON (the listing's copy, readmodel.py): the database reads those rows and formats ids and
timestamps, and Python pivots the answers into columns and writes the lines (csvlines.py): about
half the CPU of pivoting the answers table in SQL. Elsewhere (SQLite) the database pivots the
answers table and neutralises formula cells, and Python's csv writer turns rows into lines.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import unicodedata
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, suppress
from datetime import date, datetime
from typing import Any
from uuid import UUID

from litestar.response import Stream
from sqlalchemy import Select, String, case, func, literal, select, tuple_, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from webapp.forms.definition import QuestionDef, questions_for
from webapp.forms.models import Form, QuestionKind
from webapp.responses.csvlines import FORMULA_STARTS, CsvLines, neutralise
from webapp.responses.models import Answer, Response
from webapp.responses.readmodel import ANSWERS_ARRAY_SQL, BEFORE_EVERY_KEY
from webapp.timeutil import utcnow

BATCH_SIZE = 5_000  # responses per query on the portable path
PG_BATCH_SIZE = 5_000  # responses per query on PostgreSQL: about 6 MB of rows in memory
CHUNK_BYTES = 1 << 20  # what the response writes at a time
BOM = "\ufeff"
LINE_END = "\n"  # what csvlines writes; both paths must produce the same file
FIXED_HEADER = ("Response ID", "Submitted at", "Updated at", "Status")
# Kinds whose stored text the validators build ("Yes"/"No", 1..10, YYYY-MM-DD): never a formula.
SAFE_KINDS = frozenset({QuestionKind.YES_NO, QuestionKind.RATING, QuestionKind.DATE})


def header(questions: Sequence[QuestionDef]) -> list[str]:
    return [*FIXED_HEADER, *(neutralise(q.text + (" (archived)" if q.archived else "")) for q in questions)]


def filename(form: Form, today: date) -> str:
    """An ASCII file name from the title, e.g. customer-survey-responses-2024-05-01.csv."""
    ascii_title = unicodedata.normalize("NFKD", form.title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:60].strip("-") or "form"
    return f"{slug}-responses-{today.isoformat()}.csv"


def _header_bytes(questions: Sequence[QuestionDef]) -> bytes:
    buffer = io.StringIO()
    buffer.write(BOM)
    csv.writer(buffer, lineterminator=LINE_END).writerow(header(questions))
    return buffer.getvalue().encode()


async def stream_csv(engine: AsyncEngine, form_id: UUID, questions: Sequence[QuestionDef],
                     batch_size: int | None = None, limit: int | None = None) -> AsyncIterator[bytes]:
    """Yield the CSV as UTF-8 chunks: BOM and header first, then one chunk per batch of responses
    (the oldest `limit` responses only, when given).

    It reads on connections of its own (the request's session closes once the response starts),
    in read-only transactions that share one snapshot, so every batch sees the same data.
    """
    yield _header_bytes(questions)
    columns = [(q.id, q.kind not in SAFE_KINDS) for q in questions]
    if engine.dialect.name == "postgresql":
        batches = _postgres_batches(engine, form_id, columns, batch_size or PG_BATCH_SIZE, limit)
    else:
        batches = _portable_batches(engine, form_id, columns, batch_size or BATCH_SIZE, limit)
    async with aclosing(batches):  # a client that stops reading releases the connections at once
        async for chunk in batches:
            yield chunk


# ---- PostgreSQL: the answers' copy, pivoted by Python (csvlines.py) ------------------------------------

_PG_STAMP = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
# One batch: (after, upto] in export order. A row written before the copy existed (answers_json
# NULL, not yet backfilled) gets the same array built from the answers table; that branch is
# evaluated for those rows only. $2 is the form's question ids, the order that array is built in.
_PG_ROWS = (
    f"SELECT r.id::text || ',' || {_PG_STAMP.format('r.submitted_at')} || ',' || "  # noqa: S608 (constant)
    f"{_PG_STAMP.format('r.updated_at')} || ',' || r.status, "
    f"CASE WHEN r.answers_json IS NULL THEN {ANSWERS_ARRAY_SQL} ELSE r.answers_json END "
    "FROM responses r WHERE r.form_id = $1 AND (r.submitted_at, r.id) > ($3, $4) "
    "AND (r.submitted_at, r.id) <= ($5, $6) ORDER BY r.submitted_at, r.id"
)
Key = tuple[datetime, UUID]
# The ends of the batches, read from the (form_id, submitted_at, id) index alone: every
# `size`-th key in export order, and the last one.
_PG_BOUNDARIES = (
    "SELECT submitted_at, id FROM (SELECT submitted_at, id, row_number() OVER (ORDER BY submitted_at, id) AS n "
    "FROM (SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at, id LIMIT $3) r) k "
    "WHERE n % $2 = 0 ORDER BY n"
)
_PG_LAST = "SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at DESC, id DESC LIMIT 1"
_PG_NTH = "SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at, id OFFSET $2 LIMIT 1"
# Short indexed statements: JIT compilation costs more than it saves; a bitmap scan would have to
# sort the batch again; a generic plan of the prepared batch query cannot see how narrow its
# key range is, so every execution is planned with its values.
_PG_SESSION = "SET LOCAL jit = off; SET LOCAL enable_bitmapscan = off; SET LOCAL plan_cache_mode = force_custom_plan"
FORMAT_ROWS = 1_000  # rows formatted between two returns to the event loop, which other requests share


async def _pg_ranges(raw: Any, form_id: UUID, batch_size: int, limit: int | None) -> list[tuple[Key, Key]]:
    """Consecutive (after, upto] key ranges of at most `batch_size` responses, covering the export."""
    keys = [(r[0], UUID(str(r[1]))) for r in await raw.fetch(_PG_BOUNDARIES, form_id, batch_size, limit)]
    last = await raw.fetchrow(_PG_LAST, form_id) if limit is None else await raw.fetchrow(_PG_NTH, form_id, limit - 1)
    if last is None and limit is not None:  # fewer responses than the limit
        last = await raw.fetchrow(_PG_LAST, form_id)
    if last is not None and (not keys or keys[-1] != (last[0], UUID(str(last[1])))):
        keys.append((last[0], UUID(str(last[1]))))
    return list(zip([BEFORE_EVERY_KEY, *keys[:-1]], keys, strict=True)) if keys else []


async def _postgres_batches(engine: AsyncEngine, form_id: UUID, columns: Sequence[tuple[UUID, bool]],
                            batch_size: int, limit: int | None) -> AsyncIterator[bytes]:
    """Read the batches on two connections sharing one snapshot, so PostgreSQL reads the next
    batch while Python formats this one. Batches come out in order, one chunk each (more for
    batches over CHUNK_BYTES); memory holds at most two batches of rows."""
    formatter = CsvLines(columns)
    question_ids = [qid for qid, _ in columns]
    async with engine.connect() as first_conn, engine.connect() as second_conn:
        first = (await first_conn.get_raw_connection()).driver_connection
        second = (await second_conn.get_raw_connection()).driver_connection
        async with first.transaction(isolation="repeatable_read", readonly=True):
            await first.execute(_PG_SESSION)
            snapshot = await first.fetchval("SELECT pg_export_snapshot()")
            ranges = await _pg_ranges(first, form_id, batch_size, limit)
            async with second.transaction(isolation="repeatable_read", readonly=True):
                await second.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'; {_PG_SESSION}")
                workers = (first, second)
                tasks: dict[int, asyncio.Task[Any]] = {}

                def start(i: int) -> None:
                    (after, upto) = ranges[i]
                    tasks[i] = asyncio.ensure_future(workers[i % 2].fetch(_PG_ROWS, form_id, question_ids,
                                                                          *after, *upto))

                try:
                    for i in range(min(2, len(ranges))):
                        start(i)
                    for i in range(len(ranges)):
                        rows = await tasks.pop(i)
                        if i + 2 < len(ranges):
                            start(i + 2)  # on the connection this batch just freed
                        pending: list[bytes] = []
                        size = 0
                        for at in range(0, len(rows), FORMAT_ROWS):
                            if at:
                                await asyncio.sleep(0)
                            pending.append(formatter.lines(rows[at:at + FORMAT_ROWS]).encode())
                            size += len(pending[-1])
                            if size >= CHUNK_BYTES:
                                yield b"".join(pending)
                                pending, size = [], 0
                        del rows
                        if pending:
                            yield b"".join(pending)
                finally:
                    # The client went away or a query failed: stop the other query before the
                    # transactions end and the connections go back to the pool.
                    for task in tasks.values():
                        task.cancel()
                    for task in tasks.values():
                        with suppress(asyncio.CancelledError, Exception):
                            await task


# ---- portable path (SQLite): the database pivots, Python's csv module writes --------------------------

def _safe_text() -> ColumnElement[Any]:
    first = func.substr(Answer.text, 1, 1)
    return case((first.in_(FORMULA_STARTS), literal("'", String) + Answer.text), else_=Answer.text)


def _formatted(page: Any) -> list[ColumnElement[Any]]:
    """Response id and timestamps as text, rendered by SQLite, which keeps GUIDs as 16 bytes and
    datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC."""
    h = func.lower(func.hex(type_coerce(page.c.id, NullType())))
    rid = (func.substr(h, 1, 8) + "-" + func.substr(h, 9, 4) + "-" + func.substr(h, 13, 4) + "-"
           + func.substr(h, 17, 4) + "-" + func.substr(h, 21, 12))
    return [rid, func.substr(type_coerce(page.c.submitted_at, String), 1, 19),
            func.substr(type_coerce(page.c.updated_at, String), 1, 19), type_coerce(page.c.status, String)]


def portable_batch_query(form_id: UUID, columns: Sequence[tuple[UUID, bool]], after: tuple[Any, Any] | None,
                         limit: int) -> Select[Any]:
    """The next `limit` responses after the keyset `after`, one text column per question.

    The last two columns are the raw (untyped) keyset values, handed back unchanged as `after`.
    """
    stmt = select(Response.id, Response.submitted_at, Response.updated_at, Response.status).where(
        Response.form_id == form_id)
    if after is not None:
        # A row-value comparison is an index range condition; the OR-spelled equivalent is only a filter.
        stmt = stmt.where(tuple_(Response.submitted_at, Response.id)
                          > tuple_(*(type_coerce(literal(v, NullType()), NullType()) for v in after)))
    page = stmt.order_by(Response.submitted_at, Response.id).limit(limit).subquery("page")
    safe = _safe_text()
    cells = [func.max(case((Answer.question_id == qid, safe if guard else Answer.text), else_=None))
             for qid, guard in columns]
    keys = (type_coerce(page.c.submitted_at, NullType()), type_coerce(page.c.id, NullType()))
    return (
        select(*_formatted(page), *cells, *keys)
        .select_from(page.outerjoin(Answer, Answer.response_id == page.c.id))
        .group_by(page.c.id, page.c.submitted_at, page.c.updated_at, page.c.status)
        .order_by(page.c.submitted_at, page.c.id)
    )


async def _portable_batches(engine: AsyncEngine, form_id: UUID, columns: Sequence[tuple[UUID, bool]],
                            batch_size: int, limit: int | None) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_END)
    width = len(FIXED_HEADER) + len(columns)
    async with engine.connect() as conn, conn.begin():
        after = None
        left = limit
        while left is None or left > 0:
            size = batch_size if left is None else min(batch_size, left)
            rows = (await conn.execute(portable_batch_query(form_id, columns, after, size))).all()
            if not rows:
                return
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(row[:width] for row in rows)
            yield buffer.getvalue().encode()
            if len(rows) < size:
                return
            after = (rows[-1][width], rows[-1][width + 1])
            left = None if left is None else left - size


async def csv_response(session: AsyncSession, engine: AsyncEngine, form: Form, limit: int | None = None) -> Stream:
    """The streamed download of a form the caller already proved they own."""
    questions = await questions_for(session, form.id, form.version)
    name = filename(form, utcnow().date())
    return Stream(
        stream_csv(engine, form.id, questions, limit=limit),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )

"""CSV export of a form's responses, streamed in keyset batches.

Scale is the point (a million responses must stream in seconds with flat memory), so the database
does the per-row work: it pivots answers into one column per question, formats ids and
timestamps and neutralises formula cells. On PostgreSQL it also writes the CSV itself
(`COPY (query) TO STDOUT`), and Python only passes bytes along; elsewhere (SQLite) Python's C
csv writer turns the finished rows into lines. Batches follow (submitted_at, id), the index order.
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
from webapp.responses.models import Answer, Response
from webapp.timeutil import utcnow

BATCH_SIZE = 5_000  # responses per query on the portable path
PG_BATCH_SIZE = 20_000  # responses per COPY on PostgreSQL
QUEUE_CHUNKS = 16  # network reads buffered per COPY, so memory does not grow with the rows' width
CHUNK_BYTES = 1 << 20  # what the response writes at a time
BOM = "\ufeff"
LINE_END = "\n"  # what PostgreSQL's COPY writes; both paths must produce the same file
FIXED_HEADER = ("Response ID", "Submitted at", "Updated at", "Status")
# OWASP CSV injection: a spreadsheet evaluates a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Kinds whose stored text the validators build ("Yes"/"No", 1..10, YYYY-MM-DD): never a formula.
SAFE_KINDS = frozenset({QuestionKind.YES_NO, QuestionKind.RATING, QuestionKind.DATE})


def neutralise(cell: str) -> str:
    """Prefix a single quote so spreadsheets show the cell as text instead of evaluating it."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


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


# ---- PostgreSQL: COPY writes the CSV ----------------------------------------------------------------

_PG_FORMULA_CODES = ", ".join(str(ord(c)) for c in FORMULA_STARTS)  # ascii() is cheaper than left()
_PG_STAMP = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"


def _pg_literal(value: UUID | datetime) -> str:
    """Only for values typed by us (UUID, aware datetime): their text has no quote characters."""
    if isinstance(value, UUID):
        return f"'{value}'::uuid"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return f"'{value.isoformat()}'::timestamptz"
    raise TypeError(f"not a keyset value: {value!r}")


def postgres_export_query(form_id: UUID, columns: Sequence[tuple[UUID, bool]],
                          after: tuple[datetime, UUID] | None, upto: tuple[datetime, UUID] | None) -> str:
    """The query COPY runs for the responses with `after` < (submitted_at, id) <= `upto`, oldest first.

    `columns` is (question id, needs the formula guard) per question. The answers come from a
    lateral aggregate per response, an index lookup on (response_id, question_id): a plain join
    lets the planner hash-join every answer in the table, or sort the whole form.
    """
    where = [f"r.form_id = {_pg_literal(form_id)}"]
    if after is not None:
        where.append(f"(r.submitted_at, r.id) > ({_pg_literal(after[0])}, {_pg_literal(after[1])})")
    if upto is not None:
        where.append(f"(r.submitted_at, r.id) <= ({_pg_literal(upto[0])}, {_pg_literal(upto[1])})")
    pivot = ", ".join(f"min(a.text) FILTER (WHERE a.question_id = {_pg_literal(qid)}) AS q{i}"
                      for i, (qid, _guard) in enumerate(columns)) or "NULL AS none"
    quote = "chr(39)"
    cells = "".join(
        f", CASE WHEN ascii(p.q{i}) IN ({_PG_FORMULA_CODES}) THEN {quote} || p.q{i} ELSE p.q{i} END"
        if guard else f", p.q{i}" for i, (_qid, guard) in enumerate(columns))
    # Safe to interpolate: every value went through _pg_literal, which takes only UUIDs and datetimes.
    return (
        f"SELECT r.id, {_PG_STAMP.format('r.submitted_at')}, {_PG_STAMP.format('r.updated_at')}, "  # noqa: S608
        f"r.status{cells} FROM responses r "
        f"CROSS JOIN LATERAL (SELECT {pivot} FROM answers a WHERE a.response_id = r.id) p "
        f"WHERE {' AND '.join(where)} ORDER BY r.submitted_at, r.id"
    )


# The ends of the batches, read from the (form_id, submitted_at, id) index alone: every
# `size`-th key in export order, and the last one.
_PG_BOUNDARIES = (
    "SELECT submitted_at, id FROM (SELECT submitted_at, id, row_number() OVER (ORDER BY submitted_at, id) AS n "
    "FROM (SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at, id LIMIT $3) r) k "
    "WHERE n % $2 = 0 ORDER BY n"
)
_PG_LAST = "SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at DESC, id DESC LIMIT 1"
_PG_NTH = "SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at, id OFFSET $2 LIMIT 1"
# Short indexed statements: JIT compilation costs more than it saves, and a plain index scan
# beats the bitmap scan the planner picks for the few answers of one response.
_PG_SESSION = "SET LOCAL jit = off; SET LOCAL enable_bitmapscan = off"

Key = tuple[datetime, UUID]


async def _pg_ranges(raw: Any, form_id: UUID, batch_size: int, limit: int | None) -> list[tuple[Key | None, Key]]:
    """Consecutive (after, upto] key ranges of at most `batch_size` responses, covering the export."""
    keys = [(r[0], UUID(str(r[1]))) for r in await raw.fetch(_PG_BOUNDARIES, form_id, batch_size, limit)]
    last = await raw.fetchrow(_PG_LAST, form_id) if limit is None else await raw.fetchrow(_PG_NTH, form_id, limit - 1)
    if last is None and limit is not None:  # fewer responses than the limit
        last = await raw.fetchrow(_PG_LAST, form_id)
    if last is not None and (not keys or keys[-1] != (last[0], UUID(str(last[1])))):
        keys.append((last[0], UUID(str(last[1]))))
    return list(zip([None, *keys[:-1]], keys, strict=True)) if keys else []


_DONE = object()


async def _pg_copy(raw: Any, query: str, out: asyncio.Queue[Any]) -> None:
    """Run one COPY into a bounded queue: when the reader falls behind, PostgreSQL waits."""

    async def collect(data: bytes) -> None:
        await out.put(bytes(data))

    try:
        await raw.copy_from_query(query, output=collect, format="csv")
    except Exception as exc:  # handed to the reader, which raises it in order
        await out.put(exc)
        return
    await out.put(_DONE)


async def _postgres_batches(engine: AsyncEngine, form_id: UUID, columns: Sequence[tuple[UUID, bool]],
                            batch_size: int, limit: int | None) -> AsyncIterator[bytes]:
    """COPY the batches on two connections sharing one snapshot, so the database works on the
    next batch while this one is sent: about twice the throughput on two cores. Batches come
    out in order; memory is bounded by two small queues, whatever the width of the rows."""
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
                tasks: dict[int, asyncio.Task[None]] = {}
                queues: dict[int, asyncio.Queue[Any]] = {}

                def start(i: int) -> None:
                    queues[i] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
                    query = postgres_export_query(form_id, columns, *ranges[i])
                    tasks[i] = asyncio.ensure_future(_pg_copy(workers[i % 2], query, queues[i]))

                try:
                    for i in range(min(2, len(ranges))):
                        start(i)
                    for i in range(len(ranges)):
                        queue, pending, size = queues.pop(i), [], 0
                        while (item := await queue.get()) is not _DONE:
                            if isinstance(item, Exception):
                                raise item
                            pending.append(item)
                            size += len(item)
                            if size >= CHUNK_BYTES:
                                yield b"".join(pending)
                                pending, size = [], 0
                        await tasks.pop(i)
                        if i + 2 < len(ranges):
                            start(i + 2)  # on the connection this batch just freed
                        if pending:
                            yield b"".join(pending)
                finally:
                    # The client went away or a query failed: stop the other COPY before the
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

"""The PostgreSQL fast path for submissions: one statement, one round trip, every guarantee kept.

The slow path (service.submit) reads the form, validates, and writes the response, its answers and
the outbox event through the ORM session in one transaction. Both also write the response's
`answers_json` copy (readmodel.py). Once it has seen a form, it remembers
(version, questions, extra-required questions) here. The next submission to that form is validated
against that snapshot and written by a single INSERT ... WITH statement that re-checks, inside the
database and atomically with the write, everything the snapshot could have got wrong:

- the form's version is still the snapshot's (any structural change bumps it),
- the form is open and not past closes_at (status changes do not bump the version),
- the form has no response limit (limited forms need the row lock of the slow path).

If any check fails nothing is written and the caller falls back to the slow path, which answers
with the precise error (or succeeds against the new definition). Validation errors also fall back,
so respondents are always judged against the current definition.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from webapp.forms.definition import QuestionDef
from webapp.outbox.events import RESPONSE_SUBMITTED, response_event
from webapp.responses import readmodel
from webapp.responses.models import ResponseStatus
from webapp.responses.validation import parse_answer_items, validate_answers
from webapp.responses.view import ResponseView
from webapp.timeutil import utcnow

_CACHE_SIZE = 4096
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    questions: tuple[QuestionDef, ...]
    extra_required: frozenset[UUID]
    kinds: dict[UUID, str]


_snapshots: OrderedDict[UUID, Snapshot] = OrderedDict()

_INSERT = """
WITH f AS (
    SELECT id FROM forms
    WHERE id = $1 AND version = $2 AND status = 'open' AND max_responses IS NULL
      AND (closes_at IS NULL OR closes_at > $4)
), r AS (
    INSERT INTO responses (id, form_id, submitted_at, updated_at, form_version, status, answers_json, answers_order)
    SELECT $3, f.id, $4, $4, $2, 'complete', $11, $12 FROM f
    RETURNING id
), a AS (
    INSERT INTO answers (id, response_id, question_id, value, text)
    SELECT x.id, r.id, x.qid, x.val::jsonb, x.txt
    FROM r, unnest($5::uuid[], $6::uuid[], $7::text[], $8::text[]) AS x(id, qid, val, txt)
)
INSERT INTO outbox_events (event_id, event_type, form_id, response_id, payload, created_at, attempts)
SELECT $9, 'response.submitted', $1, r.id, $10::text::jsonb, $4, 0 FROM r
RETURNING 1
"""


def remember(form_id: UUID, version: int, questions: tuple[QuestionDef, ...], required: frozenset[UUID]) -> None:
    """Called by the slow path after a successful submission to an unlimited form."""
    _snapshots[form_id] = Snapshot(version, questions, required, {q.id: q.kind.value for q in questions})
    _snapshots.move_to_end(form_id)
    if len(_snapshots) > _CACHE_SIZE:
        _snapshots.popitem(last=False)


def forget(form_id: UUID) -> None:
    _snapshots.pop(form_id, None)


async def try_submit(session: AsyncSession, form_id: UUID, items: Sequence[tuple[Any, Any]], region: str) -> ResponseView | None:
    """The stored response as a ResponseView, or None when the slow path must decide."""
    snap = _snapshots.get(form_id)
    engine = session.bind
    if snap is None or engine is None or engine.dialect.name != "postgresql" or session.in_transaction():
        return None
    answers, errors = parse_answer_items(items)
    if errors:
        return None
    clean, errors = validate_answers(snap.questions, answers, region, extra_required=snap.extra_required)
    if errors:
        return None
    now = utcnow()
    response_id = uuid7()
    event_answers = [{"question_id": str(a.question_id), "kind": snap.kinds[a.question_id], "value": a.value,
                      "text": a.text} for a in clean]
    answers = [{"question_id": a.question_id, "value": a.value, "text": a.text} for a in clean]
    copy = readmodel.columns(snap.questions, answers)
    event = response_event(RESPONSE_SUBMITTED, form_id=form_id, form_version=snap.version,
                           response_id=response_id, submitted_at=now, answers=event_answers, occurred_at=now)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        # Outside an explicit transaction a single statement is atomic: all rows or none.
        stored = await raw.fetchval(
            _INSERT, form_id, snap.version, response_id, now,
            [uuid7() for _ in clean], [a.question_id for a in clean],
            [_encode(a.value).decode() for a in clean], [a.text for a in clean],
            UUID(event["event_id"]), _encode(event).decode(), copy["answers_json"], copy["answers_order"],
        )
    if stored is None:
        forget(form_id)
        return None
    return ResponseView(response_id, form_id, snap.version, ResponseStatus.COMPLETE, now, now, answers)

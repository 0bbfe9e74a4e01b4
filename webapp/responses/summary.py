"""Per-question results of a form, computed in the database (counts, distributions, statistics)
and returned as plain dataclasses for the summary page to draw.

The cost is a handful of grouped queries per form plus, per number question, one ordered read of
at most two values (the median) and, per text question, the latest few answers: it does not
grow with the number of questions' answers held in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Float, cast, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.forms.constraints import DEFAULT_RATING_SCALE
from webapp.forms.definition import QuestionDef, questions_for
from webapp.forms.models import Form, QuestionKind
from webapp.responses.models import Answer, Response
from webapp.responses.service import count_responses

LATEST = 5
BAR_KINDS = frozenset({QuestionKind.SINGLE_CHOICE, QuestionKind.DROPDOWN, QuestionKind.YES_NO, QuestionKind.RATING})


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    percent: float  # of the responses that answered the question
    retired: bool = False  # an answer naming an option the form no longer offers


@dataclass(frozen=True, slots=True)
class NumberStats:
    minimum: float
    mean: float
    median: float
    maximum: float


@dataclass(frozen=True, slots=True)
class LatestAnswer:
    text: str
    submitted_at: datetime
    response_id: UUID


@dataclass(slots=True)
class QuestionSummary:
    question: QuestionDef
    answered: int
    skipped: int
    # "bars" (choices, yes/no, ratings), "numbers" or "latest" (text-like answers)
    chart: str
    bars: list[Bar] = field(default_factory=list)
    stats: NumberStats | None = None
    latest: list[LatestAnswer] = field(default_factory=list)
    average: float | None = None  # ratings

    @property
    def multiple(self) -> bool:
        """Several choices per response: the percentages can add up to more than 100."""
        return self.question.kind == QuestionKind.MULTIPLE_CHOICE


@dataclass(slots=True)
class FormSummary:
    total: int
    questions: list[QuestionSummary]


def _percent(count: int, answered: int) -> float:
    return 100.0 * count / answered if answered else 0.0


def _bars(q: QuestionDef, counts: dict[str, int], answered: int) -> list[Bar]:
    """Every option in the form's order (zeros included), then answers to options since removed."""
    if q.kind == QuestionKind.YES_NO:
        labels = ["Yes", "No"]
    elif q.kind == QuestionKind.RATING:
        labels = [str(n) for n in range(1, int(q.constraints.get("scale", DEFAULT_RATING_SCALE)) + 1)]
    else:
        labels = list(q.options)
    bars = [Bar(label, counts.get(label, 0), _percent(counts.get(label, 0), answered)) for label in labels]
    known = set(labels)
    extra = sorted(((n, label) for label, n in counts.items() if label not in known), key=lambda x: (-x[0], x[1]))
    bars += [Bar(label, n, _percent(n, answered), retired=True) for n, label in extra]
    return bars


def _average_rating(counts: dict[str, int]) -> float | None:
    pairs = [(int(label), n) for label, n in counts.items() if label.isdigit()]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


async def _answered(session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, int]:
    rows = await session.execute(
        select(Answer.question_id, func.count()).where(Answer.question_id.in_(ids)).group_by(Answer.question_id))
    return dict(rows.tuples().all())


async def _text_counts(session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
    out: dict[UUID, dict[str, int]] = defaultdict(dict)
    if ids:
        rows = await session.execute(
            select(Answer.question_id, Answer.text, func.count()).where(Answer.question_id.in_(ids))
            .group_by(Answer.question_id, Answer.text))
        for qid, text, n in rows.tuples():
            out[qid][text] = n
    return out


async def _choice_counts(session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
    """Multiple choice: each chosen option once, from the stored JSON list (the text joins them
    with commas, which options may contain)."""
    out: dict[UUID, dict[str, int]] = defaultdict(dict)
    if not ids:
        return out
    name = "jsonb_array_elements_text" if session.get_bind().dialect.name == "postgresql" else "json_each"
    element = getattr(func, name)(Answer.value).table_valued("value").alias("element")
    rows = await session.execute(
        select(Answer.question_id, element.c.value, func.count()).select_from(Answer).join(element, true())
        .where(Answer.question_id.in_(ids)).group_by(Answer.question_id, element.c.value))
    for qid, option, n in rows.tuples():
        out[qid][str(option)] = n
    return out


async def _number_stats(session: AsyncSession, ids: Sequence[UUID], answered: dict[UUID, int]
                        ) -> dict[UUID, NumberStats]:
    if not ids:
        return {}
    value = cast(Answer.text, Float)  # the text is the number as validated; portable, unlike JSON casts
    rows = await session.execute(
        select(Answer.question_id, func.min(value), func.avg(value), func.max(value))
        .where(Answer.question_id.in_(ids)).group_by(Answer.question_id))
    out = {}
    for qid, lo, mean, hi in rows.tuples():
        n = answered.get(qid, 0)
        # SQLite has no percentile function: read the middle one or two values in order.
        middle = list(await session.scalars(
            select(value).where(Answer.question_id == qid).order_by(value)
            .offset((n - 1) // 2).limit(2 - n % 2)))
        out[qid] = NumberStats(float(lo), float(mean), sum(middle) / len(middle), float(hi))
    return out


async def _latest(session: AsyncSession, qid: UUID, limit: int) -> list[LatestAnswer]:
    rows = await session.execute(
        select(Answer.text, Response.submitted_at, Response.id).join(Response, Response.id == Answer.response_id)
        .where(Answer.question_id == qid).order_by(Response.submitted_at.desc(), Response.id.desc()).limit(limit))
    return [LatestAnswer(text, at, rid) for text, at, rid in rows.tuples()]


async def summarise(session: AsyncSession, form: Form, *, latest: int = LATEST) -> FormSummary:
    """Every question of the form (archived ones last, still counted) with its results, text-like
    kinds (text, email, phone, URL, date) showing their `latest` answers."""
    questions = await questions_for(session, form.id, form.version)
    total = await count_responses(session, form.id)
    ids = [q.id for q in questions]
    answered = await _answered(session, ids) if ids else {}
    texts = await _text_counts(session, [q.id for q in questions if q.kind in BAR_KINDS])
    choices = await _choice_counts(session, [q.id for q in questions if q.kind == QuestionKind.MULTIPLE_CHOICE])
    numbers = await _number_stats(session, [q.id for q in questions if q.kind == QuestionKind.NUMBER], answered)

    items: list[QuestionSummary] = []
    for q in questions:
        n = answered.get(q.id, 0)
        item = QuestionSummary(question=q, answered=n, skipped=max(total - n, 0), chart="latest")
        if q.kind in BAR_KINDS or q.kind == QuestionKind.MULTIPLE_CHOICE:
            counts: dict[str, Any] = choices[q.id] if q.kind == QuestionKind.MULTIPLE_CHOICE else texts[q.id]
            item.chart = "bars"
            item.bars = _bars(q, counts, n)
            if q.kind == QuestionKind.RATING:
                item.average = _average_rating(counts)
        elif q.kind == QuestionKind.NUMBER:
            item.chart = "numbers"
            item.stats = numbers.get(q.id)
        elif n:
            item.latest = await _latest(session, q.id, latest)
        items.append(item)
    return FormSummary(total=total, questions=items)

"""Immutable, cached snapshots of a form's questions, keyed by (form id, version).

Every structural change bumps the form's version, so a cached snapshot can never be stale:
a new version is simply a new key. That holds across worker processes with no invalidation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.forms.models import Question, QuestionKind

_CACHE_SIZE = 2048
_cache: OrderedDict[tuple[UUID, int], tuple[QuestionDef, ...]] = OrderedDict()


@dataclass(frozen=True, slots=True)
class QuestionDef:
    id: UUID
    position: int
    kind: QuestionKind
    text: str
    help_text: str
    mandatory: bool
    options: tuple[str, ...]
    constraints: dict[str, Any]
    archived: bool

    @classmethod
    def from_model(cls, q: Question) -> QuestionDef:
        return cls(
            id=q.id, position=q.position, kind=QuestionKind(q.kind), text=q.text, help_text=q.help_text,
            mandatory=q.mandatory, options=tuple(q.options or ()), constraints=dict(q.constraints or {}),
            archived=q.archived_at is not None,
        )


async def questions_for(session: AsyncSession, form_id: UUID, version: int) -> tuple[QuestionDef, ...]:
    """All questions of the form at this version, archived ones included, in display order."""
    key = (form_id, version)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    rows = await session.scalars(
        select(Question).where(Question.form_id == form_id).order_by(Question.position, Question.id)
    )
    snapshot = tuple(QuestionDef.from_model(q) for q in rows)
    _cache[key] = snapshot
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return snapshot


def forget(form_id: UUID, version: int) -> None:
    """Drop a snapshot written in a transaction that rolled back."""
    _cache.pop((form_id, version), None)

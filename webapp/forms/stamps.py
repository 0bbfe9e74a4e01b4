"""A form's stamp (its status and version and what else a public read is keyed by), kept for a second.

The public definition and the respondent page are cached per form version, and checking that
version was one database read per request: half the cost of a definition request. So the stamp
itself is kept for `TTL` seconds. A change made in another process shows here within that second;
a change made in this process shows at once, because every commit that wrote forms or questions
drops every kept stamp (the `Session` events below). Nothing that decides a write depends on it:
submissions are checked against the database in their own statement or transaction.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from webapp.db import fetch_one
from webapp.forms.models import Form, Question

TTL = 1.0
_SIZE = 4096  # unknown ids are kept too (as None), so a flood of them cannot grow memory
_stamps: OrderedDict[tuple[str, Any], tuple[float, Any]] = OrderedDict()
_generation = 0
_TOUCHED = "formwright_forms_touched"


async def read(session: AsyncSession, sql: str, key: Any) -> Any:
    """The row `sql` gives for `key` ($1), or None; read again once `TTL` seconds have passed."""
    now = time.monotonic()
    kept = _stamps.get((sql, key))
    if kept is not None and kept[0] > now:
        return kept[1]
    generation = _generation
    row = await fetch_one(session, sql, key)
    if generation == _generation:  # no change committed here while it was read: safe to keep
        _stamps[(sql, key)] = (now + TTL, None if row is None else tuple(row))
        _stamps.move_to_end((sql, key))
        if len(_stamps) > _SIZE:
            _stamps.popitem(last=False)
    return row


def forget_all() -> None:
    global _generation
    _generation += 1
    _stamps.clear()


def _is_form_table(mapper: Any) -> bool:
    return mapper is not None and mapper.class_ in (Form, Question)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    if any(isinstance(o, Form | Question) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_TOUCHED] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete or state.is_insert) and _is_form_table(state.bind_mapper):
        state.session.info[_TOUCHED] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(_TOUCHED, False):
        forget_all()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_TOUCHED, None)

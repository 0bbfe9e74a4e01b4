"""The respondent pages: /f/{slug} (fill in), /f/{slug}/thanks, and friendly pages for forms that
are unknown, not published, closed or full.

This is the hottest page of the product, so it stays lean: no session lookup (respondents are
anonymous), the question list comes from the versioned cache in webapp/forms/definition.py, the
CSRF check is a signed cookie (no database), the per-IP submit limit lives in process memory, and
a posted form goes through responses.service.submit like every other submission.
Failed validation answers 422 with the page re-rendered: inline errors, an error summary, and
everything the person typed kept.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any
from uuid import UUID

import structlog
from litestar import Request, get, post
from litestar.datastructures import State
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.deliveries.required import extra_required
from webapp.errors import ProblemError
from webapp.forms import stamps
from webapp.forms.definition import QuestionDef, questions_for
from webapp.forms.models import Form, FormStatus
from webapp.responses.models import Response
from webapp.responses.service import submit
from webapp.timeutil import as_utc, utcnow
from webapp.web import (
    CSRF_FIELD,
    client_ip,
    form_data,
    redirect,
    render,
    render_shared,
    settings_of,
    shared_page,
)

log = structlog.get_logger("webapp.respond")

HONEYPOT = "fw_website"
CONTROL_FIELDS = frozenset({CSRF_FIELD, HONEYPOT})
SLUG_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# slug → form id never changes (slugs are not reused), so this cache needs no invalidation.
_SLUG_CACHE_SIZE = 4096
_slug_ids: OrderedDict[str, UUID] = OrderedDict()


class SubmitLimiter:
    """Fixed one-minute windows per client address, in this process's memory.

    Each worker process counts on its own, so with N workers an address gets at most N times
    the limit: enough to stop a flood without a shared store on the hot path."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window = 0
        self.hits: dict[str, int] = {}

    def retry_after(self, ip: str, now: float | None = None) -> int:
        """0 when this submission may go ahead (and counts it), else seconds until it may."""
        if self.per_minute <= 0:
            return 0
        now = time.time() if now is None else now
        window = int(now // 60)
        if window != self.window:  # a new minute: forget the last one entirely (bounded memory)
            self.window, self.hits = window, {}
        count = self.hits.get(ip, 0)
        if count >= self.per_minute:
            return max(1, int((window + 1) * 60 - now))
        self.hits[ip] = count + 1
        return 0


def _limiter(request: Request) -> SubmitLimiter:
    state: State = request.app.state
    limiter = state.get("submit_limiter")
    if limiter is None:
        limiter = SubmitLimiter(settings_of(request).submit_rate_per_minute)
        state["submit_limiter"] = limiter
    return limiter


async def _form_by_slug(db: AsyncSession, slug: str) -> Form | None:
    if not SLUG_RE.match(slug):
        return None
    form = await db.scalar(select(Form).where(Form.slug == slug))
    if form is not None:
        _remember(slug, form.id)
    return form


def _remember(slug: str, form_id: UUID) -> None:
    _slug_ids[slug] = form_id
    if len(_slug_ids) > _SLUG_CACHE_SIZE:
        _slug_ids.popitem(last=False)


async def _form_id(db: AsyncSession, slug: str) -> UUID | None:
    if not SLUG_RE.match(slug):
        return None
    cached = _slug_ids.get(slug)
    if cached is not None:
        return cached
    form_id = await db.scalar(select(Form.id).where(Form.slug == slug))
    if form_id is not None:
        _remember(slug, form_id)
    return form_id


# ---- friendly status pages -------------------------------------------------------------------------

def _status_page(request: Request, status: int, kind: str, title: str, text: str, form: Form | None = None,
                 headers: dict[str, str] | None = None) -> Any:
    return render(request, "respond/status.html", status_code=status, kind=kind, title=title, text=text,
                  form=form, headers=headers)


def _unknown(request: Request) -> Any:
    return _status_page(request, 404, "unknown", "We couldn't find this form",
                        "The link may be mistyped, or the form was deleted. "
                        "Check the address with whoever sent it to you.")


async def _unavailable(request: Request, db: AsyncSession, form: Form) -> Any | None:
    """The page for a form that does not take responses right now, or None when it does."""
    if form.status == FormStatus.DRAFT:
        return _status_page(request, 409, "draft", "This form isn't open yet",
                            "Its owner hasn't published it. Please try again later.", form)
    if form.status == FormStatus.CLOSED:
        return _status_page(request, 409, "closed", "This form is closed",
                            "It no longer accepts responses. Thank you for your interest.", form)
    if form.closes_at is not None and form.closes_at <= utcnow():
        return _status_page(request, 410, "closed", "This form has closed",
                            f"It stopped accepting responses on {form.closes_at:%d %B %Y at %H:%M} UTC.", form)
    if form.max_responses is not None:
        count = await db.scalar(select(func.count()).select_from(Response).where(Response.form_id == form.id))
        if (count or 0) >= form.max_responses:
            return _status_page(request, 409, "full", "This form is full",
                                "It has received all the responses it can take. Thank you for your interest.",
                                form)
    return None


# ---- the form ----------------------------------------------------------------------------------------

async def _render_form(request: Request, db: AsyncSession, form: Form, *, status: int = 200,
                       values: dict[str, list[str]] | None = None, errors: dict[str, str] | None = None,
                       general: list[str] | None = None, shared_key: Hashable | None = None) -> Any:
    questions = [q for q in await questions_for(db, form.id, form.version) if not q.archived]
    required = await extra_required(db, form.id, form.version)
    errors = errors or {}
    summary = [{"href": f"#q-{q.id}", "text": f"{q.text}: {errors[str(q.id)]}"} for q in questions
               if str(q.id) in errors]
    summary += [{"href": "", "text": text} for text in general or []]
    context = {"form": form, "questions": questions, "required_ids": {str(q) for q in required},
               "values": values or {}, "errors": errors, "summary": summary, "honeypot": HONEYPOT}
    if shared_key is not None:
        return render_shared(request, shared_key, "respond/form.html", **context)
    return render(request, "respond/form.html", status_code=status, **context)


# What decides whether the shared copy of the blank form may be served: one small indexed read.
_STAMP_SQL = "SELECT status, version, updated_at, closes_at, max_responses FROM forms WHERE slug = $1"


def _open_without_limits(stamp: Any) -> bool:
    """Open, not past its closing time, no response limit: the page is the same for everyone."""
    status, _, _, closes_at, max_responses = stamp
    return status == FormStatus.OPEN.value and max_responses is None and (
        closes_at is None or as_utc(closes_at) > utcnow())


@get("/f/{slug:str}", name="respond")
async def respond_page(request: Request, db_session: AsyncSession, slug: str) -> Any:
    if not SLUG_RE.match(slug):
        return _unknown(request)
    stamp = await stamps.read(db_session, _STAMP_SQL, slug)
    if stamp is None:
        return _unknown(request)
    # A form's version and updated_at change with every edit, so the key never serves an old page.
    key = ("respond", slug, stamp[1], stamp[2])
    shareable = _open_without_limits(stamp)
    if shareable and (page := shared_page(request, key)) is not None:
        return page
    form = await _form_by_slug(db_session, slug)
    if form is None:
        return _unknown(request)
    return await _unavailable(request, db_session, form) or await _render_form(
        request, db_session, form, shared_key=key if shareable else None)


def _items(data: Any) -> tuple[list[tuple[str, Any]], dict[str, list[str]]]:
    """Posted fields → (question id, value) pairs for the validator, plus what to show again.

    Checkboxes arrive as repeated keys and become a list; a repeated key for any other question
    also becomes a list, which its validator then rejects rather than silently keeping one."""
    items: list[tuple[str, Any]] = []
    values: dict[str, list[str]] = {}
    for key in dict.fromkeys(data.keys()):
        if key in CONTROL_FIELDS:
            continue
        raw = [v for v in data.getall(key) if isinstance(v, str)]
        values[key.lower()] = raw
        items.append((key, raw if len(raw) != 1 else raw[0]))
    return items, values


def _general_errors(errors: list[dict[str, Any]], questions: tuple[QuestionDef, ...]) -> list[str]:
    known = {str(q.id) for q in questions if not q.archived}
    out = []
    for e in errors:
        if str(e.get("question_id", "")).lower() not in known:
            out.append("The form has changed since you opened it; check your answers and send it again."
                       if "removed" in str(e.get("message", "")) or "no such" in str(e.get("message", ""))
                       else str(e.get("message", "")))
    return list(dict.fromkeys(out))


@post("/f/{slug:str}", name="respond_submit")
async def respond_submit(request: Request, db_session: AsyncSession, slug: str) -> Any:
    wait = _limiter(request).retry_after(client_ip(request))
    if wait:
        return _status_page(request, 429, "limited", "Too many submissions",
                            "You have sent a lot of responses in a short time. "
                            f"Please wait {wait} seconds and try again.", headers={"Retry-After": str(wait)})
    data = await form_data(request)
    if data.get(HONEYPOT):
        # A bot filled the field people never see: store nothing, but look like it worked.
        log.info("honeypot_submission", slug=slug[:32])
        return redirect(request, f"/f/{slug}/thanks")
    form_id = await _form_id(db_session, slug)
    if form_id is None:
        return _unknown(request)
    items, values = _items(data)
    try:
        await submit(db_session, form_id, items, region=settings_of(request).default_phone_region)
    except ProblemError as exc:
        form = await db_session.scalar(select(Form).where(Form.id == form_id))
        if form is None:
            return _unknown(request)
        if exc.status_code == 422 and exc.errors:
            questions = await questions_for(db_session, form.id, form.version)
            errors: dict[str, str] = {}
            for e in exc.errors:
                errors.setdefault(str(e.get("question_id", "")).lower(), str(e.get("message", "")))
            return await _render_form(request, db_session, form, status=422, values=values, errors=errors,
                                      general=_general_errors(exc.errors, questions))
        page = await _unavailable(request, db_session, form)
        if page is not None:
            return page
        return _status_page(request, exc.status_code, "unavailable", exc.title, exc.detail, form)
    return redirect(request, f"/f/{slug}/thanks")


@get("/f/{slug:str}/thanks", name="respond_thanks")
async def thanks_page(request: Request, db_session: AsyncSession, slug: str) -> Any:
    form = await _form_by_slug(db_session, slug)
    if form is None:
        return _unknown(request)
    return render(request, "respond/thanks.html", form=form)


respond_pages = [respond_page, respond_submit, thanks_page]

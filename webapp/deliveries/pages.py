"""The Integrations tab: connect, change, test and remove a form's integrations, and see (and
retry) their deliveries. Every rule lives in webapp/deliveries/service.py; this module turns an
integration's msgspec config schema into an HTML form and posted fields back into a config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

import msgspec
import msgspec.inspect as mi
import structlog
from litestar import Request, get, post
from litestar.di import Provide
from litestar.params import Parameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import User
from webapp.deliveries import service
from webapp.deliveries.models import DeliveryState, FormIntegration
from webapp.errors import ProblemError
from webapp.forms.definition import QuestionDef
from webapp.forms.models import Form, QuestionKind
from webapp.forms.service import get_owned_form
from webapp.plugins import Integration, Outcome, Result, decode_config
from webapp.web import error_items, form_data, parse_id, provide_page_user, redirect, render, safe_next

log = structlog.get_logger("webapp.deliveries.pages")

page_user = {"user": Provide(provide_page_user)}
PAGE_SIZE = 50
PROBLEM_STATES = (DeliveryState.FAILED, DeliveryState.DEAD, DeliveryState.UNKNOWN)
STATE_LABELS = {
    "pending": ("Waiting", "info"), "in_flight": ("Sending", "info"), "delivered": ("Delivered", "success"),
    "failed": ("Failed", "danger"), "dead": ("Gave up", "danger"), "unknown": ("Unknown outcome", "warning"),
}
_ACRONYMS = {"id": "ID", "url": "URL", "sid": "SID", "sms": "SMS", "api": "API"}
_LONG_TEXT_NAMES = ("template", "body", "message", "text")


# ---- the config form, generated from the integration's config schema --------------------------------

@dataclass
class ConfigField:
    name: str
    label: str
    help: str
    required: bool
    widget: str  # text | textarea | password | url | number | checkbox | select | json
    nullable: bool = False
    secret: bool = False
    default: Any = None
    has_default: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)


def _label(name: str) -> str:
    words = name.split("_")
    if len(words) > 1 and words[-1] == "id" and words[-2] == "question":
        words = words[:-1]
    text = " ".join(_ACRONYMS.get(w, w) for w in words)
    return text[:1].upper() + text[1:] if text else name


def _unwrap(t: mi.Type) -> tuple[mi.Type, bool, dict[str, Any]]:
    """(inner type, nullable, extra JSON schema such as the description) of a field's type."""
    nullable, extra = False, {}
    while True:
        if isinstance(t, mi.Metadata):
            extra = {**(t.extra_json_schema or {}), **extra}
            t = t.type
        elif isinstance(t, mi.UnionType):
            rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
            nullable = nullable or len(rest) < len(t.types)
            if len(rest) != 1:
                return t, nullable, extra
            t = rest[0]
        else:
            return t, nullable, extra


def _question_choices(name: str, questions: tuple[QuestionDef, ...]) -> list[tuple[str, str]]:
    active = [q for q in questions if not q.archived]
    if "phone" in name:
        active = [q for q in active if q.kind == QuestionKind.PHONE]
    return [(str(q.id), f"{q.text} ({q.kind.value.replace('_', ' ')})") for q in active]


def config_fields(integration: Integration, questions: tuple[QuestionDef, ...]) -> list[ConfigField]:
    secrets = service.secret_fields(integration)
    out = []
    for f in mi.type_info(integration.config_schema).fields:
        t, nullable, extra = _unwrap(f.type)
        name = f.encode_name
        has_default = f.default is not mi.NODEFAULT
        cf = ConfigField(name=name, label=str(extra.get("title") or _label(name)), help=str(extra.get("description", "")),
                         required=f.required and not nullable, widget="text", nullable=nullable,
                         secret=name in secrets, default=f.default if has_default else None, has_default=has_default)
        if cf.secret:
            cf.widget = "password"
        elif isinstance(t, mi.BoolType):
            cf.widget = "checkbox"
        elif isinstance(t, mi.IntType | mi.FloatType):
            cf.widget = "number"
        elif isinstance(t, mi.UUIDType) and name.endswith("question_id"):
            cf.widget, cf.choices = "select", _question_choices(name, questions)
        elif isinstance(t, mi.LiteralType):
            cf.widget, cf.choices = "select", [(str(v), str(v)) for v in t.values]
        elif isinstance(t, mi.EnumType):
            cf.widget, cf.choices = "select", [(str(m.value), str(m.value)) for m in t.cls]
        elif isinstance(t, mi.StrType | mi.UUIDType):
            if "url" in name:
                cf.widget = "url"
            elif name in _LONG_TEXT_NAMES or (isinstance(t, mi.StrType) and (t.max_length or 0) > 500):
                cf.widget = "textarea"
        else:
            cf.widget = "json"
        out.append(cf)
    return out


def field_values(fields: list[ConfigField], config: dict[str, Any], *, editing: bool) -> dict[str, Any]:
    """What each input shows: the stored value, a default, never a stored secret."""
    values: dict[str, Any] = {}
    for f in fields:
        value = config.get(f.name, f.default if f.has_default else None)
        if f.secret and editing:
            value = ""
        elif f.widget == "json" and value is not None:
            value = json.dumps(msgspec.to_builtins(value), indent=2)
        elif f.widget == "checkbox":
            value = bool(value)
        values[f.name] = "" if value is None else value
    return values


def parse_config(fields: list[ConfigField], data: Any, *, editing: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Posted fields → a raw config for the service (which checks it) plus errors found here."""
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        if f.widget == "checkbox":
            config[f.name] = f.name in data
            continue
        raw = data.get(f.name, "")
        raw = raw if isinstance(raw, str) else ""
        if not raw.strip():
            if f.secret and editing:
                continue  # left blank: keep the stored secret
            if f.required:
                errors[f.name] = "This field is required."
            elif f.nullable:
                config[f.name] = None
            elif f.has_default:
                config[f.name] = msgspec.to_builtins(f.default)
            continue
        if f.widget == "json":
            try:
                config[f.name] = json.loads(raw)
            except ValueError as exc:
                errors[f.name] = f"Write valid JSON ({exc.msg} at line {exc.lineno})."
            continue
        config[f.name] = raw
    return config, errors


def _posted_values(fields: list[ConfigField], data: Any) -> dict[str, Any]:
    """Redisplay what was typed, except secrets (typed again, or left blank to keep / generate one)."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = data.get(f.name, "")
        if f.widget == "checkbox":
            values[f.name] = f.name in data
        else:
            values[f.name] = "" if f.secret or not isinstance(raw, str) else raw
    return values


def _problem_fields(exc: ProblemError) -> dict[str, str]:
    """A service error's fields, named as in the HTML form (config.url → url)."""
    if not exc.errors:
        return {"": exc.detail}
    out: dict[str, str] = {}
    for e in exc.errors:
        name = str(e.get("field", ""))
        name = name.removeprefix("config").removeprefix(".") if name.startswith("config") else name
        out.setdefault(name, str(e.get("message", exc.detail)))
    return out


def _summary(fields: list[ConfigField], errors: dict[str, str]) -> list[dict[str, str]]:
    """The error summary names each field, so "This field is required." says which one."""
    labels = {"name": "Name", "kind": "Kind", **{f.name: f.label for f in fields}}
    items = error_items(errors)
    for item, (name, message) in zip(items, errors.items(), strict=True):
        if name in labels:
            item["text"] = f"{labels[name]}: {message}"
    return items


def config_display(fields: list[ConfigField], config: dict[str, Any], questions: tuple[QuestionDef, ...],
                   ) -> list[tuple[str, str]]:
    """(label, text) for the stored settings, secrets already masked; question ids shown as their text."""
    texts = {str(q.id): q.text for q in questions}
    known = {f.name: f for f in fields}
    out = []
    for key, value in config.items():
        f = known.get(key)
        label = f.label if f else _label(key)
        if value is None or value == "":
            shown = ""
        elif f is not None and key.endswith("question_id") and str(value) in texts:
            shown = f"“{texts[str(value)]}”"
        elif isinstance(value, str | int | float | bool):
            shown = str(value)
        else:
            shown = json.dumps(value)
        out.append((label, shown))
    return out


def answer_placeholders(questions: tuple[QuestionDef, ...]) -> list[tuple[str, str]]:
    """(placeholder, question text) for message templates: answers by the id's last 8 characters,
    or the whole id when two questions share those (the convention the template help states)."""
    def short(q: QuestionDef) -> str:
        return str(q.id).replace("-", "")[-8:]

    taken = [short(q) for q in questions]
    return [(f"{{{{answers.{short(q) if taken.count(short(q)) == 1 else q.id}}}}}", q.text)
            for q in questions if not q.archived]


def _preview(integration: Integration | None, row: FormIntegration, form_ctx: Any) -> dict[str, Any] | None:
    """An integration may offer `preview(config, form)` (e.g. an SMS with sample answers and its length)."""
    preview = getattr(integration, "preview", None)
    if integration is None or preview is None:
        return None
    config, errors = decode_config(integration, row.config or {})
    if errors:
        return None
    try:
        return dict(preview(config, form_ctx))
    except Exception as exc:  # an optional nicety must never break the page
        log.warning("integration_preview_failed", kind=row.kind, error=type(exc).__name__)
        return None


# ---- pages --------------------------------------------------------------------------------------------

async def _index(request: Request, db: AsyncSession, user: User, form_id: UUID, *,
                 test_results: dict[UUID, Result] | None = None, status: int = 200,
                 created: dict[str, Any] | None = None) -> Any:
    form, rows = await service.list_integrations(db, user.id, form_id)
    counts = await service.delivery_counts(db, [r.id for r in rows])
    installed = service.installed()
    ctx = await service.form_context(db, form)
    problems, more_problems = await service.list_deliveries(db, user.id, form.id, states=PROBLEM_STATES, limit=10)
    items = []
    for r in rows:
        integration = installed.get(r.kind)
        fields = config_fields(integration, ctx.questions) if integration else []
        items.append({"row": r, "integration": integration, "counts": counts[r.id],
                      "config": config_display(fields, service.masked_config(r), ctx.questions),
                      "preview": _preview(integration, r, ctx), "test": (test_results or {}).get(r.id)})
    return render(request, "integrations/index.html", status_code=status, form=form, items=items,
                  problems=problems, created=created,
                  more_problems=more_problems is not None, here=request.url.path,
                  kinds=sorted(installed.values(), key=lambda i: i.title.lower()), states=STATE_LABELS,
                  tab="integrations")


@get("/forms/{form_id:str}/integrations", dependencies=page_user, name="integrations")
async def integrations_page(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    return await _index(request, db_session, user, parse_id(form_id, "Form"))


def _kind_or_404(kind: str) -> Integration:
    integration = service.installed().get(kind)
    if integration is None:
        raise ProblemError(404, f"There is no integration called “{kind[:64]}” on this server.",
                           title="Integration not found")
    return integration


async def _editor(request: Request, db: AsyncSession, form: Form, integration: Integration, *,
                  row: FormIntegration | None, name: str, values: dict[str, Any], errors: dict[str, str],
                  enabled: bool, status: int = 200) -> Any:
    ctx = await service.form_context(db, form)
    fields = config_fields(integration, ctx.questions)
    stored = dict(row.config or {}) if row else {}
    return render(request, "integrations/edit.html", status_code=status, form=form, integration=integration,
                  row=row, name=name, fields=fields, values=values, errors=errors, summary=_summary(fields, errors),
                  placeholders=answer_placeholders(ctx.questions),
                  enabled=enabled, masked=service.masked_config(row) if row else {},
                  has_secret={f.name: bool(stored.get(f.name)) for f in fields if f.secret},
                  preview=_preview(integration, row, ctx) if row else None, tab="integrations")


@get("/forms/{form_id:str}/integrations/new", dependencies=page_user, name="new_integration")
async def new_integration(
    request: Request, db_session: AsyncSession, user: User, form_id: str,
    kind: Annotated[str, Parameter(max_length=64)] = "",
) -> Any:
    form = await get_owned_form(db_session, user.id, parse_id(form_id, "Form"))
    if not kind:
        return redirect(request, f"/forms/{form.id}/integrations")
    integration = _kind_or_404(kind)
    ctx = await service.form_context(db_session, form)
    fields = config_fields(integration, ctx.questions)
    return await _editor(request, db_session, form, integration, row=None, name=integration.title,
                         values=field_values(fields, {}, editing=False), errors={}, enabled=True)


async def _posted_settings(
    db: AsyncSession, form: Any, integration: Any, data: Any, *, editing: bool
) -> tuple[Any, Any, str, bool, dict[str, str]]:
    """The add and edit forms post the same fields: (fields, config, name, enabled, errors)."""
    ctx = await service.form_context(db, form)
    fields = config_fields(integration, ctx.questions)
    config, errors = parse_config(fields, data, editing=editing)
    name = str(data.get("name", ""))
    if len(name) > 200:
        errors["name"] = f"Use at most 200 characters (this name has {len(name)})."
    return fields, config, name, "enabled" in data, errors


@post("/forms/{form_id:str}/integrations/new", dependencies=page_user, name="create_integration")
async def create_integration(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await get_owned_form(db_session, user.id, parse_id(form_id, "Form"))
    data = await form_data(request)
    kind = str(data.get("kind", ""))
    integration = _kind_or_404(kind)
    fields, config, name, enabled, errors = await _posted_settings(db_session, form, integration, data,
                                                                    editing=False)
    if not errors:
        try:
            row = await service.create_integration(db_session, user.id, form.id, kind=kind, name=name,
                                                   config=config, enabled=enabled)
        except ProblemError as exc:
            if exc.status_code != 422:
                raise
            errors = _problem_fields(exc)
        else:
            secrets = [(f.label, row.config[f.name]) for f in fields if f.secret and row.config.get(f.name)]
            if secrets:  # shown this once, like the API's create answer: never in a cookie or a log
                return await _index(request, db_session, user, form.id, status=201,
                                    created={"row": row, "secrets": secrets})
            return redirect(request, f"/forms/{form.id}/integrations#integration-{row.id}",
                            flash=f"Connected “{row.name}”. Send a test to check it works.")
    return await _editor(request, db_session, form, integration, row=None, name=name,
                         values=_posted_values(fields, data),
                         errors=errors, enabled=enabled, status=422)


async def _owned_row(db: AsyncSession, user: User, form_id: str, integration_id: str, *, lock: bool = False,
                     ) -> tuple[FormIntegration, Form]:
    return await service.get_owned_integration(db, user.id, parse_id(form_id, "Form"),
                                               parse_id(integration_id, "Integration"), lock=lock)


@get("/forms/{form_id:str}/integrations/{integration_id:str}/edit", dependencies=page_user,
     name="edit_integration")
async def edit_integration(request: Request, db_session: AsyncSession, user: User, form_id: str,
                           integration_id: str) -> Any:
    row, form = await _owned_row(db_session, user, form_id, integration_id)
    integration = service.installed().get(row.kind)
    if integration is None:
        raise ProblemError(409, f"The “{row.kind}” integration is no longer installed on this server, so "
                                f"“{row.name}” cannot be edited. You can still switch it off or delete it.")
    ctx = await service.form_context(db_session, form)
    fields = config_fields(integration, ctx.questions)
    return await _editor(request, db_session, form, integration, row=row, name=row.name,
                         values=field_values(fields, dict(row.config or {}), editing=True), errors={},
                         enabled=row.enabled)


@post("/forms/{form_id:str}/integrations/{integration_id:str}/edit", dependencies=page_user,
      name="update_integration")
async def update_integration(request: Request, db_session: AsyncSession, user: User, form_id: str,
                             integration_id: str) -> Any:
    row, form = await _owned_row(db_session, user, form_id, integration_id)
    integration = service.installed().get(row.kind)
    if integration is None:
        raise ProblemError(409, f"The “{row.kind}” integration is no longer installed on this server.")
    data = await form_data(request)
    fields, config, name, enabled, errors = await _posted_settings(db_session, form, integration, data,
                                                                    editing=True)
    if not errors:
        try:
            await service.update_integration(db_session, user.id, form.id, row.id, name=name, config=config,
                                             enabled=enabled)
        except ProblemError as exc:
            if exc.status_code != 422:
                raise
            errors = _problem_fields(exc)
        else:
            return redirect(request, f"/forms/{form.id}/integrations#integration-{row.id}",
                            flash=f"Saved “{name.strip()}”.")
    return await _editor(request, db_session, form, integration, row=row, name=name,
                         values=_posted_values(fields, data),
                         errors=errors, enabled=enabled, status=422)


@post("/forms/{form_id:str}/integrations/{integration_id:str}/toggle", dependencies=page_user,
      name="toggle_integration")
async def toggle_integration(request: Request, db_session: AsyncSession, user: User, form_id: str,
                             integration_id: str) -> Any:
    row, form = await _owned_row(db_session, user, form_id, integration_id)
    target = f"/forms/{form.id}/integrations#integration-{row.id}"
    turning_on = not row.enabled
    try:
        await service.update_integration(db_session, user.id, form.id, row.id, enabled=turning_on)
    except ProblemError as exc:
        reason = "; ".join(e["message"] for e in exc.errors or []) or exc.detail
        return redirect(request, target, kind="error",
                        flash=f"“{row.name}” was not switched on: {reason} Edit it to fix the settings.")
    return redirect(request, target, flash=f"“{row.name}” is now {'on' if turning_on else 'off'}.")


@post("/forms/{form_id:str}/integrations/{integration_id:str}/test", dependencies=page_user,
      name="test_integration")
async def test_integration(request: Request, db_session: AsyncSession, user: User, form_id: str,
                           integration_id: str) -> Any:
    row, form = await _owned_row(db_session, user, form_id, integration_id)
    try:
        result = await service.send_test(db_session, user.id, form.id, row.id)
    except ProblemError as exc:
        if exc.status_code not in (409, 422):
            raise
        detail = "; ".join(e["message"] for e in exc.errors or []) or exc.detail
        result = Result(Outcome.FAILED, f"Not sent: {detail}")
    if getattr(request, "htmx", None):
        return render(request, "integrations/_test_result.html", result=result, row=row)
    return await _index(request, db_session, user, form.id, test_results={row.id: result})


@get("/forms/{form_id:str}/integrations/{integration_id:str}/delete", dependencies=page_user,
     name="confirm_delete_integration")
async def confirm_delete_integration(request: Request, db_session: AsyncSession, user: User, form_id: str,
                                     integration_id: str) -> Any:
    row, form = await _owned_row(db_session, user, form_id, integration_id)
    counts = (await service.delivery_counts(db_session, [row.id]))[row.id]
    return render(request, "integrations/delete.html", form=form, row=row, deliveries=sum(counts.values()),
                  tab="integrations")


@post("/forms/{form_id:str}/integrations/{integration_id:str}/delete", dependencies=page_user,
      name="delete_integration")
async def delete_integration(request: Request, db_session: AsyncSession, user: User, form_id: str,
                             integration_id: str) -> Any:
    row, form = await _owned_row(db_session, user, form_id, integration_id)
    await service.delete_integration(db_session, user.id, form.id, row.id)
    return redirect(request, f"/forms/{form.id}/integrations", flash=f"Disconnected “{row.name}”.")


# ---- deliveries -----------------------------------------------------------------------------------------

def _state_or_none(value: str) -> DeliveryState | None:
    try:
        return DeliveryState(value) if value else None
    except ValueError:
        raise ProblemError(400, f"“{value[:40]}” is not a delivery state.") from None


def _uuid_or_none(value: str, what: str) -> UUID | None:
    return parse_id(value, what) if value else None


@get("/forms/{form_id:str}/deliveries", dependencies=page_user, name="deliveries")
async def deliveries_page(
    request: Request, db_session: AsyncSession, user: User, form_id: str,
    state_filter: Annotated[str, QueryParameter(name="state", max_length=32)] = "",
    integration: Annotated[str, Parameter(max_length=64)] = "",
    response: Annotated[str, Parameter(max_length=64)] = "",
    cursor: Annotated[str, Parameter(max_length=200)] = "",
) -> Any:
    form, rows = await service.list_integrations(db_session, user.id, parse_id(form_id, "Form"))
    views, next_cursor = await service.list_deliveries(
        db_session, user.id, form.id, state=_state_or_none(state_filter),
        integration_id=_uuid_or_none(integration, "Integration"), response_id=_uuid_or_none(response, "Response"),
        limit=PAGE_SIZE, cursor=cursor or None)
    filters = {"state": state_filter, "integration": integration, "response": response}
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "integrations/deliveries.html", form=form, integrations=rows, views=views,
                  next_cursor=next_cursor, filters=filters, states=STATE_LABELS, here=here, tab="integrations")


@get("/forms/{form_id:str}/responses/{response_id:str}/deliveries", dependencies=page_user,
     name="response_deliveries")
async def response_deliveries_page(request: Request, db_session: AsyncSession, user: User, form_id: str,
                                   response_id: str) -> Any:
    fid, rid = parse_id(form_id, "Form"), parse_id(response_id, "Response")
    form, integrations, by_integration = await service.response_deliveries(db_session, user.id, fid, rid)
    return render(request, "integrations/response.html", form=form, response_id=rid, integrations=integrations,
                  by_integration=by_integration, states=STATE_LABELS, here=request.url.path, tab="integrations")


@post("/deliveries/{delivery_id:str}/retry", dependencies=page_user, name="retry_delivery")
async def retry_delivery(request: Request, db_session: AsyncSession, user: User, delivery_id: str) -> Any:
    data = await form_data(request)
    did = parse_id(delivery_id, "Delivery")
    view = await service.get_owned_delivery(db_session, user.id, did)
    back = safe_next(str(data.get("next", "")), default=f"/forms/{view.delivery.form_id}/deliveries")
    try:
        view, _ = await service.retry_delivery(db_session, user.id, did)
    except ProblemError as exc:
        if exc.status_code != 409 or getattr(request, "htmx", None):
            raise
        return redirect(request, back, kind="error", flash=exc.detail)
    if getattr(request, "htmx", None):
        return render(request, "integrations/_delivery_row.html", view=view, states=STATE_LABELS, here=back,
                      layout=str(data.get("layout", "row")))
    return redirect(request, back, flash="Queued again: it will be retried in a moment.")


integration_pages = [
    integrations_page, new_integration, create_integration, edit_integration, update_integration,
    toggle_integration, test_integration, confirm_delete_integration, delete_integration,
    deliveries_page, response_deliveries_page, retry_delivery,
]

"""The form builder at /forms/{id}/edit: inline edits of the form and each question (htmx partial
updates with a visible saved or error state; plain posts and redirects without JavaScript),
adding, reordering and removing questions, settings, publishing, sharing, and a preview.

Every change goes through webapp/forms/service.py; this module parses the posted fields, calls
the service and renders the part of the page that changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.di import Provide
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.models import User
from webapp.deliveries.required import extra_required
from webapp.errors import ProblemError, not_found
from webapp.forms import service
from webapp.forms.models import CHOICE_KINDS, Form, FormStatus, Question, QuestionKind
from webapp.forms.schemas import FormUpdate, QuestionCreate, QuestionUpdate
from webapp.responses.models import Answer
from webapp.responses.service import count_responses
from webapp.timeutil import utcnow
from webapp.web import error_items, form_data, is_htmx, parse_id, provide_page_user, redirect, render

page_user = {"user": Provide(provide_page_user)}

KIND_LABELS: dict[QuestionKind, str] = {
    QuestionKind.SHORT_TEXT: "Short answer",
    QuestionKind.LONG_TEXT: "Paragraph",
    QuestionKind.NUMBER: "Number",
    QuestionKind.EMAIL: "Email",
    QuestionKind.PHONE: "Phone number",
    QuestionKind.URL: "Web address",
    QuestionKind.SINGLE_CHOICE: "Multiple choice (one answer)",
    QuestionKind.MULTIPLE_CHOICE: "Checkboxes (several answers)",
    QuestionKind.DROPDOWN: "Dropdown",
    QuestionKind.DATE: "Date",
    QuestionKind.RATING: "Rating",
    QuestionKind.YES_NO: "Yes / No",
}


@dataclass(frozen=True)
class ConstraintField:
    key: str
    type: str  # int, number, bool, text, date, scale
    label: str
    hint: str = ""


CONSTRAINT_FIELDS: dict[QuestionKind, list[ConstraintField]] = {
    QuestionKind.SHORT_TEXT: [
        ConstraintField("min_length", "int", "Minimum characters"),
        ConstraintField("max_length", "int", "Maximum characters", "Up to 5000; 1000 unless set."),
        ConstraintField("pattern", "text", "Pattern", "A regular expression the whole answer must match."),
        ConstraintField("pattern_message", "text", "Message when the pattern does not match"),
    ],
    QuestionKind.LONG_TEXT: [
        ConstraintField("min_length", "int", "Minimum characters"),
        ConstraintField("max_length", "int", "Maximum characters", "Up to 100000; 10000 unless set."),
    ],
    QuestionKind.NUMBER: [
        ConstraintField("min", "number", "Smallest number"),
        ConstraintField("max", "number", "Largest number"),
        ConstraintField("integer_only", "bool", "Whole numbers only"),
    ],
    QuestionKind.MULTIPLE_CHOICE: [
        ConstraintField("min_selections", "int", "Choose at least"),
        ConstraintField("max_selections", "int", "Choose at most"),
    ],
    QuestionKind.DATE: [
        ConstraintField("min_date", "date", "Earliest date"),
        ConstraintField("max_date", "date", "Latest date"),
    ],
    QuestionKind.RATING: [ConstraintField("scale", "scale", "Scale", "From 1 to this number.")],
}

SCALES = list(range(2, 11))
NEW_OPTION = "Option {}"


# ---- what the templates show: a question being edited ----------------------------------------------

@dataclass
class Editor:
    """One question card: the saved question plus what was posted and any errors."""

    q: Question
    text: str
    help_text: str
    mandatory: bool
    options: list[str]
    constraints: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    saved: bool = False
    focus: str | None = None  # the field to focus after the swap (e.g. a new option)

    @classmethod
    def of(cls, q: Question, **extra: Any) -> Editor:
        return cls(q=q, text=q.text, help_text=q.help_text, mandatory=q.mandatory, options=list(q.options or []),
                   constraints={k: _shown(v) for k, v in (q.constraints or {}).items()}, **extra)

    @property
    def kind(self) -> QuestionKind:
        return QuestionKind(self.q.kind)

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def has_options(self) -> bool:
        return self.kind in CHOICE_KINDS

    @property
    def constraint_fields(self) -> list[ConstraintField]:
        return CONSTRAINT_FIELDS.get(self.kind, [])

    @property
    def rules_open(self) -> bool:
        """Show the answer rules when some are set or one of them is wrong."""
        keys = {f.key for f in self.constraint_fields if f.type != "scale"}
        return any(self.constraints.get(k) for k in keys) or any(k.startswith("c_") for k in self.errors)


def _shown(value: Any) -> Any:
    """A stored constraint as the text of its input (booleans stay booleans, for checkboxes)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---- parsing posted fields -----------------------------------------------------------------------------

def _text(data: Any, name: str) -> str:
    value = data.get(name, "")
    return value if isinstance(value, str) else ""


def _number(raw: str) -> int | float:
    value = float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(raw)
    return int(value) if re.fullmatch(r"[+-]?\d+", raw) else value


def _constraints(kind: QuestionKind, data: Any) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """Posted constraint inputs → (constraints, errors, what to show again)."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    shown: dict[str, Any] = {}
    for f in CONSTRAINT_FIELDS.get(kind, []):
        raw = _text(data, f"c_{f.key}").strip()
        shown[f.key] = raw
        if f.type == "bool":
            if raw:
                out[f.key] = shown[f.key] = True
            continue
        if not raw:
            continue
        try:
            if f.type in ("int", "scale"):
                if not re.fullmatch(r"[+-]?\d{1,9}", raw):
                    raise ValueError(raw)
                out[f.key] = int(raw)
            elif f.type == "number":
                if len(raw) > 40:
                    raise ValueError(raw)
                out[f.key] = _number(raw)
            else:
                out[f.key] = raw
        except ValueError:
            errors[f"c_{f.key}"] = "Enter a whole number." if f.type in ("int", "scale") else "Enter a number."
    return out, errors, shown


def _apply_option_op(options: list[str], op: str) -> tuple[list[str], int | None]:
    """Add, remove or move a choice; returns the options and the index to focus."""
    name, _, arg = op.partition(":")
    if name == "add_option":
        taken = set(options)
        n = len(options) + 1
        while NEW_OPTION.format(n) in taken:
            n += 1
        return [*options, NEW_OPTION.format(n)], len(options)
    if not arg.isdigit() or int(arg) >= len(options):
        return options, None
    i = int(arg)
    if name == "remove_option":
        return options[:i] + options[i + 1:], min(i, len(options) - 2) if len(options) > 1 else None
    j = i - 1 if name == "option_up" else i + 1 if name == "option_down" else -1
    if 0 <= j < len(options):
        options = list(options)
        options[i], options[j] = options[j], options[i]
        return options, j
    return options, i


_ERROR_FIELD = re.compile(r"^options\[(\d+)\]$")


def _map_errors(exc: ProblemError) -> dict[str, str]:
    """A service error's fields → the names of the question card's inputs."""
    out: dict[str, str] = {}
    for e in exc.errors or [{"field": "", "message": exc.detail}]:
        name = str(e.get("field", ""))
        match = _ERROR_FIELD.match(name)
        if match:
            name = f"option-{match.group(1)}"
        elif name.startswith("constraints."):
            name = "c_" + name.removeprefix("constraints.")
        elif name not in ("text", "help_text", "options", "mandatory"):
            name = ""
        out.setdefault(name, str(e.get("message", exc.detail)))
    return out


def _length_errors(exc: msgspec.ValidationError, labels: dict[str, str]) -> dict[str, str]:
    """msgspec's first complaint ("Expected `str` of length <= 200 - at `$.title`") in plain words."""
    message = str(exc)
    at = re.search(r"at `\$\.(\w+)", message)
    name = at.group(1) if at else ""
    limit = re.search(r"length <= (\d+)", message)
    what = labels.get(name, "This field")
    if limit:
        return {name: f"{what} can be at most {limit.group(1)} characters."}
    if "length >= 1" in message:
        return {name: f"{what} cannot be empty."}
    return {name: f"{what} is not valid."}


# ---- loading -----------------------------------------------------------------------------------------

async def _owned(db: AsyncSession, user: User, form_id: str, *, lock: bool = False) -> Form:
    return await service.get_owned_form(db, user.id, parse_id(form_id, "Form"), lock=lock)


async def _question(db: AsyncSession, form: Form, question_id: str) -> Question:
    try:
        qid = UUID(question_id)
    except ValueError:
        raise not_found("Question") from None
    return await service.get_question(db, form, qid)


def share_url(request: Request, form: Form) -> str:
    return str(request.base_url).rstrip("/") + f"/f/{form.slug}"


def _kinds() -> list[tuple[str, str]]:
    return [(k.value, label) for k, label in KIND_LABELS.items()]


async def _questions_context(db: AsyncSession, form: Form, editors: dict[UUID, Editor] | None = None
                             ) -> dict[str, Any]:
    questions = await service.load_questions(db, form.id, include_archived=True)
    editors = editors or {}
    active = [editors.get(q.id) or Editor.of(q) for q in questions if q.archived_at is None]
    archived = [q for q in questions if q.archived_at is not None]
    return {"form": form, "editors": active, "archived": archived, "scales": SCALES}


async def _page(request: Request, db: AsyncSession, form: Form, *, status: int = 200,
                editors: dict[UUID, Editor] | None = None, details: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None, add: dict[str, Any] | None = None,
                publish_error: str | None = None, summary: list[dict[str, str]] | None = None) -> Any:
    """The whole builder (first load, and plain-post errors when JavaScript is off)."""
    context = await _questions_context(db, form, editors)
    return render(
        request, "builder/edit.html", status_code=status, **context, tab="build", kinds=_kinds(),
        details=details or _details_values(form), settings=settings or _settings_values(form),
        add=add or {"kind": QuestionKind.SHORT_TEXT.value, "text": "", "errors": {}},
        response_count=await count_responses(db, form.id), share_url=share_url(request, form),
        publish_error=publish_error, summary=summary or [],
    )


# ---- the page and the form's own fields ------------------------------------------------------------

@get("/forms/{form_id:str}/edit", dependencies=page_user, name="builder")
async def builder(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    return await _page(request, db_session, await _owned(db_session, user, form_id))


def _details_values(form: Form, **extra: Any) -> dict[str, Any]:
    return {"title": form.title, "description": form.description, "errors": {}, "saved": False, **extra}


@post("/forms/{form_id:str}/edit/details", dependencies=page_user, name="builder_details")
async def save_details(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    data = await form_data(request)
    title, description = _text(data, "title"), _text(data, "description")
    errors: dict[str, str] = {}
    try:
        await service.update_form(db_session, form, msgspec.convert(
            {"title": title, "description": description}, FormUpdate))
    except msgspec.ValidationError as exc:
        errors = _length_errors(exc, {"title": "The title", "description": "The description"})
    except ProblemError as exc:
        errors = {e.get("field", ""): e.get("message", exc.detail) for e in exc.errors or []} or {"": exc.detail}
    if errors:
        values = {"title": title, "description": description, "errors": errors, "saved": False}
        if not is_htmx(request):
            return await _page(request, db_session, form, status=422, details=values,
                               summary=error_items(errors, "form-"))
        return render(request, "builder/_details.html", fragment="builder/_details.html", status_code=422,
                      form=form, details=values)
    if not is_htmx(request):
        return redirect(request, f"/forms/{form.id}/edit", flash="Saved the title and description.")
    return render(request, "builder/_details.html", fragment="builder/_details.html", form=form,
                  details=_details_values(form, saved=True))


def _settings_values(form: Form, **extra: Any) -> dict[str, Any]:
    closes = form.closes_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if form.closes_at else ""
    return {"closes_at": closes, "max_responses": "" if form.max_responses is None else str(form.max_responses),
            "confirmation_message": form.confirmation_message, "errors": {}, "saved": False, **extra}


def _parse_settings(data: Any, form: Form) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    shown = {"closes_at": _text(data, "closes_at").strip(), "max_responses": _text(data, "max_responses").strip(),
             "confirmation_message": _text(data, "confirmation_message")}
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {"confirmation_message": shown["confirmation_message"]}
    if shown["closes_at"]:
        try:
            closes = datetime.fromisoformat(shown["closes_at"])
            closes = closes.replace(tzinfo=UTC) if closes.tzinfo is None else closes.astimezone(UTC)
        except ValueError:
            errors["closes_at"] = "Enter a date and time, e.g. 2026-12-31 18:00."
        else:
            # A date that has passed may stay as it was (the form closed then), not be newly set.
            if closes <= utcnow() and shown["closes_at"] != _settings_values(form)["closes_at"]:
                errors["closes_at"] = "Choose a time in the future, or use Close to stop responses now."
            changes["closes_at"] = closes
    else:
        changes["closes_at"] = None
    if shown["max_responses"]:
        if re.fullmatch(r"\d{1,9}", shown["max_responses"]) and 1 <= int(shown["max_responses"]) <= 100_000_000:
            changes["max_responses"] = int(shown["max_responses"])
        else:
            errors["max_responses"] = "Enter a whole number from 1 to 100000000, or leave it empty for no limit."
    else:
        changes["max_responses"] = None
    return changes, errors, shown


@post("/forms/{form_id:str}/edit/settings", dependencies=page_user, name="builder_settings")
async def save_settings(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    changes, errors, shown = _parse_settings(await form_data(request), form)
    if not errors:
        try:
            update = msgspec.convert(changes, FormUpdate)
            await service.update_form(db_session, form, update)
        except msgspec.ValidationError as exc:
            errors = _length_errors(exc, {"confirmation_message": "The confirmation message"})
        except ProblemError as exc:
            errors = {e.get("field", ""): e.get("message", exc.detail) for e in exc.errors or []} or {"": exc.detail}
    if errors:
        values = {**shown, "errors": errors, "saved": False}
        if not is_htmx(request):
            return await _page(request, db_session, form, status=422, settings=values,
                               summary=error_items(errors, "settings-"))
        return render(request, "builder/_settings.html", fragment="builder/_settings.html", status_code=422,
                      form=form, settings=values)
    if not is_htmx(request):
        return redirect(request, f"/forms/{form.id}/edit", flash="Saved the settings.")
    return render(request, "builder/_settings.html", fragment="builder/_settings.html", form=form,
                  settings=_settings_values(form, saved=True))


_STATUS_ACTIONS = {"publish": (FormStatus.OPEN, "Published. Share the link to collect responses."),
                   "close": (FormStatus.CLOSED, "Closed. The form no longer accepts responses."),
                   "reopen": (FormStatus.OPEN, "Reopened. The form accepts responses again.")}


@post("/forms/{form_id:str}/edit/status", dependencies=page_user, name="builder_status")
async def change_status(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id, lock=True)
    action = _text(await form_data(request), "action")
    if action not in _STATUS_ACTIONS:
        raise ProblemError(400, "Choose publish, close or reopen.")
    status, message = _STATUS_ACTIONS[action]
    try:
        await service.change_status(db_session, form, status)
    except ProblemError as exc:
        if not is_htmx(request):
            return await _page(request, db_session, form, status=exc.status_code, publish_error=exc.detail,
                               summary=[{"href": "#publish", "text": exc.detail}])
        return render(request, "builder/_publish.html", fragment="builder/_publish.html", status_code=422, form=form,
                      share_url=share_url(request, form), publish_error=exc.detail)
    if not is_htmx(request):
        return redirect(request, f"/forms/{form.id}/edit", flash=message)
    return render(request, "builder/_publish.html", fragment="builder/_publish.html", form=form,
                  share_url=share_url(request, form), publish_message=message)


# ---- questions -------------------------------------------------------------------------------------

@post("/forms/{form_id:str}/questions", dependencies=page_user, name="builder_add_question")
async def add_question(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    form = await _owned(db_session, user, form_id, lock=True)
    data = await form_data(request)
    kind_raw, text = _text(data, "kind"), _text(data, "text")
    errors: dict[str, str] = {}
    try:
        kind = QuestionKind(kind_raw)
    except ValueError:
        kind = QuestionKind.SHORT_TEXT
        errors["kind"] = "Choose a kind of question from the list."
    question = None
    if not errors and not text.strip():
        errors["text"] = "Write the question first, e.g. “What is your name?”."
    if not errors:
        try:
            create = msgspec.convert({"text": text, "kind": kind.value}, QuestionCreate)
            if kind in CHOICE_KINDS:
                create.options = [NEW_OPTION.format(1), NEW_OPTION.format(2)]
            question = await service.add_question(db_session, form, create)
        except msgspec.ValidationError as exc:
            errors = _length_errors(exc, {"text": "The question"})
        except ProblemError as exc:
            errors = {"text" if e.get("field") == "text" else "": e.get("message", exc.detail)
                      for e in exc.errors or [{"message": exc.detail}]}
    if errors or question is None:
        add = {"kind": kind.value, "text": text, "errors": errors}
        if not is_htmx(request):
            return await _page(request, db_session, form, status=422, add=add,
                               summary=error_items(errors, "add-"))
        # The form's target is the question list; errors belong on the add form itself.
        return render(request, "builder/_add.html", fragment="builder/_add.html", status_code=422, form=form,
                      add=add, kinds=_kinds(), headers={"HX-Retarget": "#add-question", "HX-Reswap": "outerHTML"})
    if not is_htmx(request):
        return redirect(request, f"/forms/{form.id}/edit#qcard-{question.id}", flash="Question added.")
    editors = {question.id: Editor.of(question, focus="text")}
    return render(request, "builder/_added.html", fragment="builder/_added.html", kinds=_kinds(),
                  add={"kind": kind.value, "text": "", "errors": {}},
                  **await _questions_context(db_session, form, editors))


def _posted_editor(q: Question, data: Any) -> tuple[Editor, QuestionUpdate | None]:
    kind = QuestionKind(q.kind)
    options = [o for o in data.getall("options") if isinstance(o, str)] if kind in CHOICE_KINDS else []
    op = _text(data, "op")
    focus_option = None
    if op and kind in CHOICE_KINDS:
        options, focus_option = _apply_option_op(options, op)
    constraints, errors, shown = _constraints(kind, data)
    editor = Editor(q=q, text=_text(data, "text"), help_text=_text(data, "help_text"),
                    mandatory=bool(_text(data, "mandatory")), options=options, constraints=shown, errors=errors,
                    focus=f"option-{focus_option}" if focus_option is not None else None)
    if errors:
        return editor, None
    body: dict[str, Any] = {"text": editor.text, "help_text": editor.help_text, "mandatory": editor.mandatory,
                            "constraints": constraints}
    if kind in CHOICE_KINDS:
        body["options"] = options
    try:
        return editor, msgspec.convert(body, QuestionUpdate)
    except msgspec.ValidationError as exc:
        editor.errors = _length_errors(exc, {"text": "The question", "help_text": "The help text",
                                             "options": "An option"})
        if "text" in editor.errors and not editor.text.strip():
            editor.errors = {"text": "Enter the question."}
        return editor, None


@post("/forms/{form_id:str}/questions/{question_id:str}", dependencies=page_user, name="builder_save_question")
async def save_question(request: Request, db_session: AsyncSession, user: User, form_id: str,
                        question_id: str) -> Any:
    form = await _owned(db_session, user, form_id, lock=True)
    question = await _question(db_session, form, question_id)
    data = await form_data(request)
    editor, update = _posted_editor(question, data)
    if update is not None:
        try:
            question = await service.update_question(db_session, form, question, update)
        except ProblemError as exc:
            editor.errors = _map_errors(exc)
    if editor.errors:
        if not is_htmx(request):
            items = [{"href": f"#qe-{question.id}-{k}" if k else f"#qcard-{question.id}", "text": v}
                     for k, v in editor.errors.items()]
            return await _page(request, db_session, form, status=422, editors={question.id: editor}, summary=items)
        return await _card(request, db_session, form, editor, status=422)
    if not is_htmx(request):
        return redirect(request, f"/forms/{form.id}/edit#qcard-{question.id}", flash=f"Saved “{question.text}”.")
    saved = Editor.of(question, saved=True, focus=editor.focus)
    if _text(data, "op") or _text(data, "shown_errors"):  # the card's layout changes: redraw it
        return await _card(request, db_session, form, saved)
    # A plain save leaves the fields alone: redrawing them would drop what was typed while it ran.
    return await _card(request, db_session, form, saved, template="builder/_question_saved.html",
                        headers={"HX-Reswap": "none"})


async def _card(request: Request, db: AsyncSession, form: Form, editor: Editor, status: int = 200,
                template: str = "builder/_question.html", headers: dict[str, str] | None = None) -> Any:
    active = await service.load_questions(db, form.id, include_archived=False)
    ids = [q.id for q in active]
    index = ids.index(editor.q.id) if editor.q.id in ids else 0
    return render(request, "builder/_question.html", fragment=template, status_code=status, headers=headers,
                  form=form, e=editor, index=index, count=len(ids), scales=SCALES)


async def _list(request: Request, db: AsyncSession, form: Form, flash: str) -> Any:
    if not is_htmx(request):
        return redirect(request, f"/forms/{form.id}/edit#questions", flash=flash)
    return render(request, "builder/_questions.html", fragment="builder/_questions.html",
                  announce=flash, **await _questions_context(db, form))


@post("/forms/{form_id:str}/questions/{question_id:str}/move", dependencies=page_user, name="builder_move")
async def move_question(request: Request, db_session: AsyncSession, user: User, form_id: str,
                        question_id: str) -> Any:
    """The keyboard (and no-JavaScript) way to reorder: one step up or down."""
    form = await _owned(db_session, user, form_id, lock=True)
    question = await _question(db_session, form, question_id)
    direction = _text(await form_data(request), "direction")
    ids = [q.id for q in await service.load_questions(db_session, form.id, include_archived=False)]
    if question.id not in ids or direction not in ("up", "down"):
        raise ProblemError(400, "Move an active question up or down.")
    i = ids.index(question.id)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(ids):
        ids[i], ids[j] = ids[j], ids[i]
        await service.reorder_questions(db_session, form, ids)
        i = j
    return await _list(request, db_session, form, f"Moved “{question.text}” to position {i + 1} of {len(ids)}.")


@post("/forms/{form_id:str}/questions/reorder", dependencies=page_user, name="builder_reorder")
async def reorder(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    """Drag and drop (static/js/builder.js) posts the whole new order."""
    form = await _owned(db_session, user, form_id, lock=True)
    raw = [v for v in (await form_data(request)).getall("order") if isinstance(v, str)]
    try:
        ids = [UUID(v) for v in raw]
    except ValueError:
        raise ProblemError(400, "The new order lists something that is not a question.") from None
    try:
        await service.reorder_questions(db_session, form, ids)
    except ProblemError:
        # Another window added or removed a question since this page was drawn.
        raise ProblemError(409, "The questions changed since this page was loaded; reload it and try again.",
                           title="The form changed") from None
    return await _list(request, db_session, form, "New order saved.")


@get("/forms/{form_id:str}/questions/{question_id:str}/remove", dependencies=page_user,
     name="builder_confirm_remove")
async def confirm_remove(request: Request, db_session: AsyncSession, user: User, form_id: str,
                         question_id: str) -> Any:
    form = await _owned(db_session, user, form_id)
    question = await _question(db_session, form, question_id)
    answers = await _answer_count(db_session, question.id)
    return render(request, "builder/remove.html", form=form, question=question, answers=answers, tab="build")


async def _answer_count(db: AsyncSession, question_id: UUID) -> int:
    return await db.scalar(select(func.count()).select_from(Answer).where(Answer.question_id == question_id)) or 0


@post("/forms/{form_id:str}/questions/{question_id:str}/remove", dependencies=page_user, name="builder_remove")
async def remove_question(request: Request, db_session: AsyncSession, user: User, form_id: str,
                          question_id: str) -> Any:
    form = await _owned(db_session, user, form_id, lock=True)
    question = await _question(db_session, form, question_id)
    purge = _text(await form_data(request), "mode") == "delete"
    outcome = await service.remove_question(db_session, form, question, purge=purge)
    message = (f"Archived “{question.text}”: respondents no longer see it; its answers stay in the results."
               if outcome == "archived" else f"Deleted “{question.text}”.")
    return redirect(request, f"/forms/{form.id}/edit#questions", flash=message)


@get("/forms/{form_id:str}/preview", dependencies=page_user, name="builder_preview")
async def preview(request: Request, db_session: AsyncSession, user: User, form_id: str) -> Any:
    """The respondent page as people will see it, without a way to submit."""
    form = await _owned(db_session, user, form_id)
    questions = await service.load_questions(db_session, form.id, include_archived=False)
    required = await extra_required(db_session, form.id, form.version)
    return render(request, "builder/preview.html", form=form, questions=questions,
                  required_ids={str(q) for q in required})


builder_pages = [builder, save_details, save_settings, change_status, add_question, reorder, save_question,
                 move_question, confirm_remove, remove_question, preview]

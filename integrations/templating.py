"""A small, safe template language for messages built from a response (SMS bodies, later emails).

    Hello {{answers.3f9c2a1b}}, thanks for filling in {{form.title}}!

Placeholders are `{{ name }}`; the names are a fixed list, never expressions:

    form.title  form.id  response.id  response.submitted_at
    answers.<question id>          the full id of a question of the form
    answers.<last 8 hex digits>    the short key of that id (UUIDv7 ids made in one request share
                                   their leading, time-based digits; the trailing ones are random)

Why not Jinja: a user's template must never be evaluated. Even the sandbox exposes attribute access
and filters, and would still need strict-undefined and autoescape settings to be right for SMS. Here
rendering is one regex substitution from a dict of plain strings, so an answer that contains `{{`
is inserted as text and never read as a placeholder.

Also here: how long a text is in SMS segments (GSM-7 160/153 characters, UCS-2 70/67 code units).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.plugins import FormContext

PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
SHORT_KEY_LENGTH = 8
FIXED_NAMES = ("form.title", "form.id", "response.id", "response.submitted_at")
# Control characters other than newline and tab have no business in a message.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class TemplateError(ValueError):
    """The template cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str  # as written, e.g. "answers.3f9c2a1b"
    label: str  # what it stands for, for people


def short_key(question_id: Any) -> str:
    return str(question_id).replace("-", "").lower()[-SHORT_KEY_LENGTH:]


def names_in(template: str) -> list[str]:
    """The placeholder names used, in order; TemplateError for a malformed one."""
    names = []
    spans = []
    for match in PLACEHOLDER_RE.finditer(template):
        name = match.group(1)
        if not NAME_RE.match(name):
            raise TemplateError(f"{{{{{name}}}}} at character {match.start() + 1} is not a placeholder name; "
                                "use names like {{form.title}} or {{answers.<question id>}}.")
        names.append(name)
        spans.append(match.span())
    at = template.find("{{")
    while at != -1:
        if not any(start <= at < end for start, end in spans):
            raise TemplateError(f"The '{{{{' at character {at + 1} is not closed with '}}}}'.")
        at = template.find("{{", at + 1)
    return names


def _answer_keys(questions: Iterable[QuestionDef]) -> dict[str, QuestionDef]:
    """answers.<id> and answers.<short key> → question; a short key two questions share is left out."""
    keys: dict[str, QuestionDef] = {}
    shorts: dict[str, list[QuestionDef]] = {}
    for q in questions:
        keys[f"answers.{str(q.id).lower()}"] = q
        shorts.setdefault(short_key(q.id), []).append(q)
    for short, qs in shorts.items():
        if len(qs) == 1:
            keys[f"answers.{short}"] = qs[0]
    return keys


def placeholders(form: FormContext) -> list[Placeholder]:
    """What an owner may use in a template of this form (active questions, by short key)."""
    out = [Placeholder("form.title", "The form's title"), Placeholder("response.id", "The response's id"),
           Placeholder("response.submitted_at", "When the response was submitted (UTC)")]
    keys = _answer_keys(form.questions)
    for q in form.questions:
        if q.archived:
            continue
        name = f"answers.{short_key(q.id)}"
        if name not in keys:
            name = f"answers.{str(q.id).lower()}"
        out.append(Placeholder(name, f"The answer to “{q.text}”"))
    return out


def check(template: str, form: FormContext) -> list[str]:
    """Every problem with the template for this form, as sentences an owner can act on."""
    try:
        names = names_in(template)
    except TemplateError as exc:
        return [str(exc)]
    keys = _answer_keys(form.questions)
    problems = []
    for name in dict.fromkeys(names):
        lowered = name.lower()
        if lowered in FIXED_NAMES:
            continue
        q = keys.get(lowered)
        if q is None:
            if lowered.startswith("answers."):
                problems.append(f"{{{{{name}}}}} does not name a question of this form.")
            else:
                problems.append(f"{{{{{name}}}}} is not a known placeholder; use one of "
                                f"{', '.join('{{' + n + '}}' for n in FIXED_NAMES)} or {{{{answers.<question id>}}}}.")
        elif q.archived:
            problems.append(f"{{{{{name}}}}} names the question “{q.text}”, which is archived.")
    return problems


def _clean(value: str) -> str:
    return _CONTROL_RE.sub("", value)


def _stamp(raw: Any) -> str:
    try:
        return datetime.fromisoformat(str(raw)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(raw or "")


def event_values(form: FormContext, event: Mapping[str, Any]) -> dict[str, str]:
    """Placeholder name (lower case) → text, for one response event."""
    values = {
        "form.title": form.title,
        "form.id": str(form.form_id),
        "response.id": str(event.get("response_id") or ""),
        "response.submitted_at": _stamp(event.get("submitted_at")),
    }
    texts = {str(a.get("question_id", "")).lower(): str(a.get("text") or "") for a in event.get("answers") or ()}
    for key, q in _answer_keys(form.questions).items():
        values[key] = texts.get(str(q.id).lower(), "")
    return values


_SAMPLES = {
    QuestionKind.NUMBER: "42", QuestionKind.EMAIL: "name@example.com", QuestionKind.PHONE: "+12025550143",
    QuestionKind.URL: "https://example.com", QuestionKind.DATE: "2026-01-31", QuestionKind.RATING: "5",
    QuestionKind.YES_NO: "Yes",
}


def sample_values(form: FormContext) -> dict[str, str]:
    """Plausible values for a preview of the message (and of its length)."""
    values = {"form.title": form.title, "form.id": str(form.form_id),
              "response.id": "01900000-0000-7000-8000-000000000000",
              "response.submitted_at": "2026-01-31 09:30 UTC"}
    for key, q in _answer_keys(form.questions).items():
        values[key] = q.options[0] if q.options else _SAMPLES.get(q.kind, "Sample answer")
    return values


def render(template: str, values: Mapping[str, str], *, max_chars: int | None = None) -> str:
    """Substitute each placeholder once; unknown names become empty (the form changed since saving)."""
    text = PLACEHOLDER_RE.sub(lambda m: _clean(values.get(m.group(1).lower(), "")), template)
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text


# ---- SMS segments -------------------------------------------------------------------------------

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # each costs an escape plus the character


def segments(text: str) -> tuple[str, int]:
    """(encoding, segment count) as a carrier counts them: "GSM-7" or "UCS-2"; an empty text is 0."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # characters outside the BMP take two
        single, multi, encoding = 70, 67, "UCS-2"
    if units == 0:
        return encoding, 0
    return encoding, 1 if units <= single else math.ceil(units / multi)


def describe_length(text: str) -> str:
    encoding, count = segments(text)
    return f"{len(text)} characters, {count} SMS segment{'s' if count != 1 else ''} ({encoding})"

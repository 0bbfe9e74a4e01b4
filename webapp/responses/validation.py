"""Server-side validation of answers, per question kind. Pure functions: no I/O.

Each validator takes the raw value as it came (JSON-typed from the API, text from HTML forms and
the reference API) and returns the typed value to store plus its text rendering, or raises
AnswerError with a message a respondent can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import phonenumbers

from webapp.forms.constraints import DEFAULT_MAX_LENGTH, DEFAULT_RATING_SCALE, parse_iso_date
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind

EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
MAX_EMAIL_LENGTH = 320
MAX_URL_LENGTH = 2048
MAX_NUMBER_LENGTH = 100
YES = frozenset({"yes", "true", "1", "y", "on"})
NO = frozenset({"no", "false", "0", "n", "off"})


class AnswerError(ValueError):
    """The value does not fit the question; the message is shown to the respondent."""


@dataclass(frozen=True, slots=True)
class CleanAnswer:
    question_id: UUID
    value: Any
    text: str


def is_blank(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return raw.strip() == ""
    if isinstance(raw, list | tuple):
        return all(is_blank(item) for item in raw)
    return False


def _text(raw: Any, what: str = "text") -> str:
    if not isinstance(raw, str):
        raise AnswerError(f"Enter {what}, not {_describe(raw)}.")
    if "\x00" in raw:
        raise AnswerError("The answer contains a NUL character, which cannot be stored.")
    return raw.strip()


def _describe(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true/false"
    if isinstance(raw, int | float):
        return "a number"
    if isinstance(raw, list | tuple):
        return "a list"
    if isinstance(raw, dict):
        return "an object"
    return "this value"


def _check_length(value: str, q: QuestionDef) -> None:
    lo = q.constraints.get("min_length")
    hi = q.constraints.get("max_length", DEFAULT_MAX_LENGTH.get(q.kind))
    if lo is not None and len(value) < lo:
        raise AnswerError(f"Enter at least {lo} characters (you entered {len(value)}).")
    if hi is not None and len(value) > hi:
        raise AnswerError(f"Enter at most {hi} characters (you entered {len(value)}).")


def _short_text(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    value = _text(raw)
    _check_length(value, q)
    pattern = q.constraints.get("pattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise AnswerError(q.constraints.get("pattern_message") or "The answer is not in the expected format.")
    return value, value


def _long_text(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    value = _text(raw)
    _check_length(value, q)
    return value, value


def _number(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    if isinstance(raw, bool):
        raise AnswerError("Enter a number.")
    if isinstance(raw, int | float):
        number: int | float = raw
    elif isinstance(raw, str):
        if len(raw.strip()) > MAX_NUMBER_LENGTH:  # also keeps str(int) under Python's 4300-digit limit
            raise AnswerError(f"Enter a number of at most {MAX_NUMBER_LENGTH} characters.")
        try:
            dec = Decimal(raw.strip().replace(" ", ""))
        except InvalidOperation:
            raise AnswerError(f"Enter a number, such as 42 or 3.5 ({raw.strip()[:40]!r} is not one).") from None
        if not dec.is_finite():
            raise AnswerError("Enter a finite number.")
        number = int(dec) if dec == dec.to_integral_value() and "." not in raw and "e" not in raw.lower() \
            else float(dec)
    else:
        raise AnswerError(f"Enter a number, not {_describe(raw)}.")
    if isinstance(number, float):
        if not math.isfinite(number):
            raise AnswerError("Enter a finite number.")
        if number.is_integer() and q.constraints.get("integer_only"):
            number = int(number)
    if q.constraints.get("integer_only") and not isinstance(number, int):
        raise AnswerError("Enter a whole number.")
    lo, hi = q.constraints.get("min"), q.constraints.get("max")
    if lo is not None and number < lo:
        raise AnswerError(f"Enter a number of at least {_fmt(lo)}.")
    if hi is not None and number > hi:
        raise AnswerError(f"Enter a number of at most {_fmt(hi)}.")
    return number, _fmt(number)


def _fmt(number: float) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


def _email(raw: Any, _q: QuestionDef, _region: str) -> tuple[Any, str]:
    value = _text(raw, "an email address")
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL_RE.match(value):
        raise AnswerError("Enter an email address like name@example.com.")
    local, _, domain = value.rpartition("@")
    value = f"{local}@{domain.lower()}"
    return value, value


def _phone(raw: Any, _q: QuestionDef, region: str) -> tuple[Any, str]:
    value = _text(raw, "a phone number")
    if len(value) > 40:
        raise AnswerError("Enter a phone number, such as +1 202 555 0123.")
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise AnswerError("Enter a phone number, such as +1 202 555 0123.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise AnswerError("This is not a valid phone number; include the country code, e.g. +44 20 7946 0958.")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164, e164


def _url(raw: Any, _q: QuestionDef, _region: str) -> tuple[Any, str]:
    value = _text(raw, "a web address")
    if len(value) > MAX_URL_LENGTH:
        raise AnswerError(f"Enter a web address of at most {MAX_URL_LENGTH} characters.")
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        raise AnswerError("Enter a web address like https://example.com.") from None
    if parts.scheme.lower() not in {"http", "https"} or not host or re.search(r"\s", value) or \
            ("." not in host and host != "localhost"):
        raise AnswerError("Enter a web address like https://example.com.")
    return value, value


def _single_choice(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    value = _text(raw, "one of the options")
    if value not in q.options:
        raise AnswerError(f"Choose one of: {_list(q.options)}.")
    return value, value


def _multiple_choice(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise AnswerError("Choose one or more of the options.")
    chosen: list[str] = []
    for item in items:
        if is_blank(item):
            continue
        value = _text(item, "an option")
        if value not in q.options:
            raise AnswerError(f"{value[:60]!r} is not an option; choose from: {_list(q.options)}.")
        if value in chosen:
            raise AnswerError(f"{value!r} is chosen twice.")
        chosen.append(value)
    lo, hi = q.constraints.get("min_selections"), q.constraints.get("max_selections")
    if lo is not None and len(chosen) < lo:
        raise AnswerError(f"Choose at least {lo} option{'s' if lo != 1 else ''}.")
    if hi is not None and len(chosen) > hi:
        raise AnswerError(f"Choose at most {hi} option{'s' if hi != 1 else ''}.")
    ordered = [o for o in q.options if o in chosen]  # store in the form's order, whatever the input order
    return ordered, ", ".join(ordered)


def _list(options: Iterable[str]) -> str:
    options = list(options)
    shown = ", ".join(options[:10])
    return shown + (f" (and {len(options) - 10} more)" if len(options) > 10 else "")


def _date(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    value = _text(raw, "a date")
    parsed = parse_iso_date(value)
    if parsed is None:
        raise AnswerError("Enter a date written YYYY-MM-DD, such as 2024-03-31.")
    lo, hi = q.constraints.get("min_date"), q.constraints.get("max_date")
    if lo is not None and value < lo:
        raise AnswerError(f"Enter a date on or after {lo}.")
    if hi is not None and value > hi:
        raise AnswerError(f"Enter a date on or before {hi}.")
    iso = parsed.isoformat()
    return iso, iso


def _rating(raw: Any, q: QuestionDef, _region: str) -> tuple[Any, str]:
    scale = q.constraints.get("scale", DEFAULT_RATING_SCALE)
    message = f"Choose a rating from 1 to {scale}."
    if isinstance(raw, bool):
        raise AnswerError(message)
    if isinstance(raw, str) and raw.strip().isdigit():
        try:
            raw = int(raw.strip())
        except ValueError:  # isdigit() accepts "²"; int() also refuses more than 4300 digits
            raise AnswerError(message) from None
    elif isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int) or not 1 <= raw <= scale:
        raise AnswerError(message)
    return raw, str(raw)


def _yes_no(raw: Any, _q: QuestionDef, _region: str) -> tuple[Any, str]:
    if isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().lower() in YES:
        value = True
    elif isinstance(raw, str) and raw.strip().lower() in NO:
        value = False
    else:
        raise AnswerError("Answer yes or no.")
    return value, "Yes" if value else "No"


VALIDATORS: dict[QuestionKind, Callable[[Any, QuestionDef, str], tuple[Any, str]]] = {
    QuestionKind.SHORT_TEXT: _short_text,
    QuestionKind.LONG_TEXT: _long_text,
    QuestionKind.NUMBER: _number,
    QuestionKind.EMAIL: _email,
    QuestionKind.PHONE: _phone,
    QuestionKind.URL: _url,
    QuestionKind.SINGLE_CHOICE: _single_choice,
    QuestionKind.DROPDOWN: _single_choice,
    QuestionKind.MULTIPLE_CHOICE: _multiple_choice,
    QuestionKind.DATE: _date,
    QuestionKind.RATING: _rating,
    QuestionKind.YES_NO: _yes_no,
}


def validate_value(q: QuestionDef, raw: Any, region: str) -> tuple[Any, str]:
    return VALIDATORS[q.kind](raw, q, region)


def field_error(q: QuestionDef | None, question_id: Any, message: str) -> dict[str, Any]:
    error = {"field": f"answers.{question_id}", "question_id": str(question_id), "message": message}
    if q is not None:
        error["question"] = q.text
    return error


def parse_answer_items(items: Sequence[tuple[Any, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(question id, value) pairs → one value per id; duplicates are an error, never last-wins."""
    answers: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for question_id, value in items:
        key = str(question_id).strip().lower()
        if key in answers:
            errors.append(field_error(None, question_id, "This question is answered more than once."))
            continue
        answers[key] = value
    return answers, errors


def validate_answers(
    questions: Sequence[QuestionDef], answers: Mapping[str, Any], region: str,
    extra_required: frozenset[UUID] = frozenset(),
) -> tuple[list[CleanAnswer], list[dict[str, Any]]]:
    """Check every answer against the active questions; report every failing field at once.

    `extra_required`: questions an active integration needs (e.g. the SMS recipient's phone),
    required here even when the form does not mark them mandatory."""
    by_id = {str(q.id): q for q in questions}
    errors: list[dict[str, Any]] = []
    clean: list[CleanAnswer] = []
    for key in answers:
        q = by_id.get(key)
        if q is None:
            errors.append(field_error(None, key, "There is no such question in this form."))
        elif q.archived:
            errors.append(field_error(q, key, "This question has been removed from the form."))
    for q in questions:
        if q.archived:
            continue
        raw = answers.get(str(q.id))
        if is_blank(raw):
            if q.mandatory or q.id in extra_required:
                errors.append(field_error(q, q.id, "This question is required."))
            continue
        try:
            value, text = validate_value(q, raw, region)
        except AnswerError as exc:
            errors.append(field_error(q, q.id, str(exc)))
            continue
        clean.append(CleanAnswer(q.id, value, text))
    return clean, errors

"""What each question kind accepts as options and constraints, checked when a question is saved."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from webapp.forms.models import CHOICE_KINDS, QuestionKind

MAX_OPTIONS = 200
MAX_OPTION_LENGTH = 200
MAX_PATTERN_LENGTH = 500
DEFAULT_MAX_LENGTH = {QuestionKind.SHORT_TEXT: 1_000, QuestionKind.LONG_TEXT: 10_000}
HARD_MAX_LENGTH = {QuestionKind.SHORT_TEXT: 5_000, QuestionKind.LONG_TEXT: 100_000}
DEFAULT_RATING_SCALE = 5

_ALLOWED: dict[QuestionKind, dict[str, tuple[type, ...]]] = {
    QuestionKind.SHORT_TEXT: {"min_length": (int,), "max_length": (int,), "pattern": (str,),
                              "pattern_message": (str,)},
    QuestionKind.LONG_TEXT: {"min_length": (int,), "max_length": (int,)},
    QuestionKind.NUMBER: {"min": (int, float), "max": (int, float), "integer_only": (bool,)},
    QuestionKind.EMAIL: {},
    QuestionKind.PHONE: {},
    QuestionKind.URL: {},
    QuestionKind.SINGLE_CHOICE: {},
    QuestionKind.DROPDOWN: {},
    QuestionKind.MULTIPLE_CHOICE: {"min_selections": (int,), "max_selections": (int,)},
    QuestionKind.DATE: {"min_date": (str,), "max_date": (str,)},
    QuestionKind.RATING: {"scale": (int,)},
    QuestionKind.YES_NO: {},
}


def allowed_constraints(kind: QuestionKind) -> list[str]:
    return sorted(_ALLOWED[kind])


def parse_iso_date(value: str) -> date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def check_options(kind: QuestionKind, options: list[str] | None) -> tuple[list[str], list[dict[str, str]]]:
    """Choice kinds need distinct, non-empty options; other kinds take none."""
    errors: list[dict[str, str]] = []
    if kind not in CHOICE_KINDS:
        if options:
            errors.append({"field": "options", "message": f"A {kind.value} question takes no options."})
        return [], errors
    cleaned = [o.strip() for o in options or []]
    if not cleaned:
        errors.append({"field": "options", "message": "Add at least one option."})
    if len(cleaned) > MAX_OPTIONS:
        errors.append({"field": "options", "message": f"Use at most {MAX_OPTIONS} options."})
    for i, option in enumerate(cleaned):
        if not option:
            errors.append({"field": f"options[{i}]", "message": "An option cannot be empty."})
        elif len(option) > MAX_OPTION_LENGTH:
            errors.append({"field": f"options[{i}]",
                           "message": f"An option can be at most {MAX_OPTION_LENGTH} characters."})
        elif "\x00" in option:
            errors.append({"field": f"options[{i}]", "message": "An option cannot contain NUL characters."})
    seen: set[str] = set()
    for i, option in enumerate(cleaned):
        if option and option in seen:
            errors.append({"field": f"options[{i}]", "message": f"The option {option!r} appears twice."})
        seen.add(option)
    return cleaned, errors


def check_constraints(
    kind: QuestionKind, constraints: dict[str, Any] | None, options: list[str]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Return the constraints to store and a list of field errors."""
    constraints = dict(constraints or {})
    errors: list[dict[str, str]] = []
    allowed = _ALLOWED[kind]

    def err(key: str, message: str) -> None:
        errors.append({"field": f"constraints.{key}", "message": message})

    for key in list(constraints):
        value = constraints[key]
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            err(key, f"{key!r} is not a constraint of a {kind.value} question (allowed: {names}).")
            del constraints[key]
        elif value is None:
            del constraints[key]
        elif isinstance(value, bool) and bool not in allowed[key]:
            err(key, f"{key} must be a {_type_name(allowed[key])}.")
            del constraints[key]
        elif not isinstance(value, allowed[key]):
            err(key, f"{key} must be a {_type_name(allowed[key])}.")
            del constraints[key]
        elif isinstance(value, float) and not math.isfinite(value):
            err(key, f"{key} must be a finite number.")
            del constraints[key]

    if kind in DEFAULT_MAX_LENGTH:
        hard = HARD_MAX_LENGTH[kind]
        lo, hi = constraints.get("min_length"), constraints.get("max_length")
        if lo is not None and lo < 0:
            err("min_length", "min_length cannot be negative.")
        if hi is not None and not 1 <= hi <= hard:
            err("max_length", f"max_length must be between 1 and {hard}.")
        if lo is not None and lo > (DEFAULT_MAX_LENGTH[kind] if hi is None else hi):
            err("min_length", "min_length cannot be greater than max_length"
                + (f" ({DEFAULT_MAX_LENGTH[kind]} unless set)." if hi is None else "."))
        pattern = constraints.get("pattern")
        if pattern is not None:
            if len(pattern) > MAX_PATTERN_LENGTH:
                err("pattern", f"pattern can be at most {MAX_PATTERN_LENGTH} characters.")
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    err("pattern", f"pattern is not a valid regular expression: {exc}.")
    elif kind == QuestionKind.NUMBER:
        lo, hi = constraints.get("min"), constraints.get("max")
        if lo is not None and hi is not None and lo > hi:
            err("min", "min cannot be greater than max.")
    elif kind == QuestionKind.MULTIPLE_CHOICE:
        lo, hi = constraints.get("min_selections"), constraints.get("max_selections")
        n = len(options)
        if lo is not None and not 0 <= lo <= n:
            err("min_selections", f"min_selections must be between 0 and the number of options ({n}).")
        if hi is not None and not 1 <= hi <= max(n, 1):
            err("max_selections", f"max_selections must be between 1 and the number of options ({n}).")
        if lo is not None and hi is not None and lo > hi:
            err("min_selections", "min_selections cannot be greater than max_selections.")
    elif kind == QuestionKind.DATE:
        parsed = {}
        for key in ("min_date", "max_date"):
            if key in constraints:
                parsed[key] = parse_iso_date(constraints[key])
                if parsed[key] is None:
                    err(key, f"{key} must be a date written YYYY-MM-DD.")
        if parsed.get("min_date") and parsed.get("max_date") and parsed["min_date"] > parsed["max_date"]:
            err("min_date", "min_date cannot be after max_date.")
    elif kind == QuestionKind.RATING:
        scale = constraints.setdefault("scale", DEFAULT_RATING_SCALE)
        if isinstance(scale, int) and not 2 <= scale <= 10:
            err("scale", "scale must be between 2 and 10.")
    return constraints, errors


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "whole number", float: "number", str: "string", bool: "boolean (true or false)"}
    if types == (int, float):
        return "number"
    return " or ".join(names[t] for t in types)

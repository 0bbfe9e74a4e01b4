"""Options and constraints a question accepts, checked when the question is saved."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.forms.constraints import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_RATING_SCALE,
    HARD_MAX_LENGTH,
    MAX_OPTION_LENGTH,
    MAX_OPTIONS,
    MAX_PATTERN_LENGTH,
    allowed_constraints,
    check_constraints,
    check_options,
    parse_iso_date,
)
from webapp.forms.models import CHOICE_KINDS, QuestionKind

K = QuestionKind
NON_CHOICE = [k for k in QuestionKind if k not in CHOICE_KINDS]
FAST = settings(max_examples=100, deadline=None)


def fields(errors: list[dict[str, str]]) -> list[str]:
    return [e["field"] for e in errors]


def one_error(kind: QuestionKind, constraints: dict[str, Any], options: list[str] | None = None) -> dict:
    stored, errors = check_constraints(kind, constraints, options or [])
    assert len(errors) == 1, errors
    assert errors[0]["message"]
    return errors[0]


# ---- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(CHOICE_KINDS))
def test_choice_options_are_stripped(kind: QuestionKind) -> None:
    assert check_options(kind, [" Red ", "Green"]) == (["Red", "Green"], [])


@pytest.mark.parametrize("kind", sorted(CHOICE_KINDS))
@pytest.mark.parametrize("options", [None, []])
def test_choice_kinds_need_options(kind: QuestionKind, options: list[str] | None) -> None:
    cleaned, errors = check_options(kind, options)
    assert cleaned == []
    assert errors == [{"field": "options", "message": "Add at least one option."}]


@pytest.mark.parametrize("kind", NON_CHOICE)
def test_other_kinds_take_no_options(kind: QuestionKind) -> None:
    assert check_options(kind, None) == ([], [])
    assert check_options(kind, []) == ([], [])
    cleaned, errors = check_options(kind, ["a"])
    assert cleaned == []
    assert errors == [{"field": "options", "message": f"A {kind.value} question takes no options."}]


def test_blank_and_duplicate_options() -> None:
    cleaned, errors = check_options(K.DROPDOWN, ["Red", "  ", "Blue", "Red ", ""])
    assert cleaned == ["Red", "", "Blue", "Red", ""]
    assert errors == [
        {"field": "options[1]", "message": "An option cannot be empty."},
        {"field": "options[4]", "message": "An option cannot be empty."},
        {"field": "options[3]", "message": "The option 'Red' appears twice."},
    ]


def test_option_too_long_or_with_nul() -> None:
    _, errors = check_options(K.SINGLE_CHOICE, ["ok", "x" * (MAX_OPTION_LENGTH + 1), "a\x00b"])
    assert errors == [
        {"field": "options[1]", "message": f"An option can be at most {MAX_OPTION_LENGTH} characters."},
        {"field": "options[2]", "message": "An option cannot contain NUL characters."},
    ]
    assert check_options(K.SINGLE_CHOICE, ["x" * MAX_OPTION_LENGTH])[1] == []


def test_too_many_options() -> None:
    assert check_options(K.MULTIPLE_CHOICE, [f"o{i}" for i in range(MAX_OPTIONS)])[1] == []
    _, errors = check_options(K.MULTIPLE_CHOICE, [f"o{i}" for i in range(MAX_OPTIONS + 1)])
    assert errors == [{"field": "options", "message": f"Use at most {MAX_OPTIONS} options."}]


@FAST
@given(kind=st.sampled_from(sorted(CHOICE_KINDS)),
       options=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=10))
def test_options_property(kind: QuestionKind, options: list[str]) -> None:
    cleaned, errors = check_options(kind, options)
    assert cleaned == [o.strip() for o in options]
    ok = all(cleaned) and len(set(cleaned)) == len(cleaned) and not any("\x00" in o for o in cleaned)
    assert (errors == []) == ok
    for e in errors:
        assert e["field"].startswith("options")


# ---- constraints: common ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(QuestionKind))
def test_no_constraints(kind: QuestionKind) -> None:
    stored, errors = check_constraints(kind, None, ["a"])
    assert errors == []
    assert stored == ({"scale": DEFAULT_RATING_SCALE} if kind == K.RATING else {})


def test_unknown_constraint_key_names_the_allowed_ones() -> None:
    error = one_error(K.NUMBER, {"max_length": 5})
    assert error == {"field": "constraints.max_length",
                     "message": "'max_length' is not a constraint of a number question "
                                "(allowed: integer_only, max, min)."}
    assert one_error(K.EMAIL, {"pattern": "x"})["message"].endswith("(allowed: none).")


def test_unknown_key_is_dropped_and_none_values_removed() -> None:
    stored, errors = check_constraints(K.NUMBER, {"min": None, "max": 3, "bogus": 1}, [])
    assert stored == {"max": 3}
    assert fields(errors) == ["constraints.bogus"]


@pytest.mark.parametrize(("kind", "key", "value", "message"), [
    (K.SHORT_TEXT, "max_length", True, "max_length must be a whole number."),
    (K.SHORT_TEXT, "max_length", 5.0, "max_length must be a whole number."),
    (K.LONG_TEXT, "min_length", "3", "min_length must be a whole number."),
    (K.SHORT_TEXT, "pattern", 3, "pattern must be a string."),
    (K.NUMBER, "min", False, "min must be a number."),
    (K.NUMBER, "max", "10", "max must be a number."),
    (K.NUMBER, "integer_only", 1, "integer_only must be a boolean (true or false)."),
    (K.NUMBER, "integer_only", "yes", "integer_only must be a boolean (true or false)."),
    (K.MULTIPLE_CHOICE, "min_selections", True, "min_selections must be a whole number."),
    (K.DATE, "min_date", 20240101, "min_date must be a string."),
    (K.RATING, "scale", True, "scale must be a whole number."),
    (K.RATING, "scale", 5.0, "scale must be a whole number."),
])
def test_wrong_types(kind: QuestionKind, key: str, value: Any, message: str) -> None:
    stored, errors = check_constraints(kind, {key: value}, ["a", "b"])
    assert errors == [{"field": f"constraints.{key}", "message": message}]
    assert key not in stored or (kind == K.RATING and stored[key] == DEFAULT_RATING_SCALE)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_number_bounds_must_be_finite(value: float) -> None:
    assert one_error(K.NUMBER, {"min": value}) == {"field": "constraints.min",
                                                   "message": "min must be a finite number."}


def test_check_constraints_does_not_mutate_its_input() -> None:
    given_constraints = {"bogus": 1, "max_length": 5}
    check_constraints(K.SHORT_TEXT, given_constraints, [])
    assert given_constraints == {"bogus": 1, "max_length": 5}


# ---- text ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [K.SHORT_TEXT, K.LONG_TEXT])
def test_text_lengths(kind: QuestionKind) -> None:
    hard = HARD_MAX_LENGTH[kind]
    assert check_constraints(kind, {"min_length": 0, "max_length": hard}, []) == \
        ({"min_length": 0, "max_length": hard}, [])
    assert one_error(kind, {"min_length": -1}) == {"field": "constraints.min_length",
                                                   "message": "min_length cannot be negative."}
    for bad in (0, hard + 1):
        assert one_error(kind, {"max_length": bad}) == {
            "field": "constraints.max_length", "message": f"max_length must be between 1 and {hard}."}
    assert one_error(kind, {"min_length": 5, "max_length": 4}) == {
        "field": "constraints.min_length", "message": "min_length cannot be greater than max_length."}


@pytest.mark.parametrize("kind", [K.SHORT_TEXT, K.LONG_TEXT])
def test_min_length_above_the_default_max_length(kind: QuestionKind) -> None:
    # Without max_length the validator caps answers at the default: a larger minimum is unanswerable.
    default = DEFAULT_MAX_LENGTH[kind]
    assert check_constraints(kind, {"min_length": default}, [])[1] == []
    assert one_error(kind, {"min_length": default + 1}) == {
        "field": "constraints.min_length",
        "message": f"min_length cannot be greater than max_length ({default} unless set)."}
    assert check_constraints(kind, {"min_length": default + 1, "max_length": default + 1}, [])[1] == []


def test_pattern() -> None:
    good = {"pattern": r"[A-Z]{3}-\d{3}", "pattern_message": "Enter a code like ABC-123."}
    assert check_constraints(K.SHORT_TEXT, good, []) == (good, [])
    error = one_error(K.SHORT_TEXT, {"pattern": "([a-z"})
    assert error["field"] == "constraints.pattern"
    assert error["message"].startswith("pattern is not a valid regular expression: ")
    assert one_error(K.SHORT_TEXT, {"pattern": "a" * (MAX_PATTERN_LENGTH + 1)}) == {
        "field": "constraints.pattern", "message": f"pattern can be at most {MAX_PATTERN_LENGTH} characters."}
    assert one_error(K.LONG_TEXT, {"pattern": "a"})["field"] == "constraints.pattern"  # short text only


# ---- number -------------------------------------------------------------------------------------

def test_number_constraints() -> None:
    good = {"min": -1.5, "max": 10, "integer_only": True}
    assert check_constraints(K.NUMBER, good, []) == (good, [])
    assert check_constraints(K.NUMBER, {"min": 3, "max": 3}, [])[1] == []
    assert one_error(K.NUMBER, {"min": 3, "max": 2.5}) == {"field": "constraints.min",
                                                           "message": "min cannot be greater than max."}


@FAST
@given(lo=st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
       hi=st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_number_bounds_property(lo: float, hi: float) -> None:
    stored, errors = check_constraints(K.NUMBER, {"min": lo, "max": hi}, [])
    assert stored == {"min": lo, "max": hi}
    assert fields(errors) == ([] if lo <= hi else ["constraints.min"])


# ---- multiple choice ----------------------------------------------------------------------------

def test_selection_constraints() -> None:
    options = ["a", "b", "c"]
    assert check_constraints(K.MULTIPLE_CHOICE, {"min_selections": 0, "max_selections": 3}, options)[1] == []
    assert one_error(K.MULTIPLE_CHOICE, {"min_selections": 4}, options) == {
        "field": "constraints.min_selections",
        "message": "min_selections must be between 0 and the number of options (3)."}
    assert one_error(K.MULTIPLE_CHOICE, {"min_selections": -1}, options)["field"] == "constraints.min_selections"
    for bad in (0, 4):
        assert one_error(K.MULTIPLE_CHOICE, {"max_selections": bad}, options) == {
            "field": "constraints.max_selections",
            "message": "max_selections must be between 1 and the number of options (3)."}
    assert one_error(K.MULTIPLE_CHOICE, {"min_selections": 3, "max_selections": 2}, options) == {
        "field": "constraints.min_selections", "message": "min_selections cannot be greater than max_selections."}


@pytest.mark.parametrize("kind", [K.SINGLE_CHOICE, K.DROPDOWN])
def test_single_choice_kinds_take_no_constraints(kind: QuestionKind) -> None:
    assert one_error(kind, {"max_selections": 1}, ["a"])["field"] == "constraints.max_selections"


@FAST
@given(n=st.integers(1, 10), lo=st.integers(-2, 12), hi=st.integers(-2, 12))
def test_selection_property(n: int, lo: int, hi: int) -> None:
    options = [f"o{i}" for i in range(n)]
    _, errors = check_constraints(K.MULTIPLE_CHOICE, {"min_selections": lo, "max_selections": hi}, options)
    valid = 0 <= lo <= n and 1 <= hi <= n and lo <= hi
    assert (errors == []) == valid
    assert set(fields(errors)) <= {"constraints.min_selections", "constraints.max_selections"}


# ---- date ---------------------------------------------------------------------------------------

def test_date_constraints() -> None:
    good = {"min_date": "2024-01-01", "max_date": "2024-12-31"}
    assert check_constraints(K.DATE, good, []) == (good, [])
    assert one_error(K.DATE, {"min_date": "2025-01-01", "max_date": "2024-12-31"}) == {
        "field": "constraints.min_date", "message": "min_date cannot be after max_date."}


@pytest.mark.parametrize("bad", ["2024-02-30", "2024-1-1", "01/02/2024", "20240101", "soon", "２０２４-０１-０１"])
@pytest.mark.parametrize("key", ["min_date", "max_date"])
def test_bad_dates(key: str, bad: str) -> None:
    assert one_error(K.DATE, {key: bad}) == {"field": f"constraints.{key}",
                                             "message": f"{key} must be a date written YYYY-MM-DD."}


def test_parse_iso_date() -> None:
    assert str(parse_iso_date("2024-02-29")) == "2024-02-29"
    for bad in ("2023-02-29", "2024-2-29", " 2024-02-29", "2024-02-29\n", "2024-W09-4", "20240229"):
        assert parse_iso_date(bad) is None


# ---- rating -------------------------------------------------------------------------------------

def test_rating_scale() -> None:
    assert check_constraints(K.RATING, {}, []) == ({"scale": DEFAULT_RATING_SCALE}, [])
    for good in (2, 10):
        assert check_constraints(K.RATING, {"scale": good}, []) == ({"scale": good}, [])
    for bad in (1, 11, 0, -5):
        assert one_error(K.RATING, {"scale": bad}) == {"field": "constraints.scale",
                                                       "message": "scale must be between 2 and 10."}


# ---- allowed keys -------------------------------------------------------------------------------

def test_allowed_constraints() -> None:
    assert allowed_constraints(K.SHORT_TEXT) == ["max_length", "min_length", "pattern", "pattern_message"]
    assert allowed_constraints(K.NUMBER) == ["integer_only", "max", "min"]
    assert allowed_constraints(K.YES_NO) == []


def test_many_errors_at_once() -> None:
    _, errors = check_constraints(
        K.SHORT_TEXT, {"min_length": -1, "max_length": 0, "pattern": "(", "colour": "red"}, [])
    assert sorted(fields(errors)) == ["constraints.colour", "constraints.max_length",
                                      "constraints.min_length", "constraints.pattern"]

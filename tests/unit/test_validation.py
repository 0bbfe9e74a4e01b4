"""Answer validation per question kind: examples plus property-based tests (hypothesis)."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from webapp.forms.constraints import DEFAULT_MAX_LENGTH
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.responses.validation import (
    AnswerError,
    CleanAnswer,
    is_blank,
    parse_answer_items,
    validate_answers,
    validate_value,
)

K = QuestionKind
REGION = "US"
FAST = settings(max_examples=150, deadline=None)
COLOURS = ("Red", "Green", "Blue", "Yellow")


def make_q(kind: QuestionKind, *, options: tuple[str, ...] = (), mandatory: bool = False,
           archived: bool = False, text: str = "Question?", **constraints: Any) -> QuestionDef:
    return QuestionDef(id=uuid4(), position=0, kind=kind, text=text, help_text="", mandatory=mandatory,
                       options=options, constraints=constraints, archived=archived)


def choice_q(kind: QuestionKind = K.SINGLE_CHOICE, **kw: Any) -> QuestionDef:
    return make_q(kind, options=COLOURS, **kw)


def any_q(kind: QuestionKind, **kw: Any) -> QuestionDef:
    """A valid question of any kind (choice kinds get options)."""
    if kind in (K.SINGLE_CHOICE, K.MULTIPLE_CHOICE, K.DROPDOWN):
        return choice_q(kind, **kw)
    return make_q(kind, **kw)


def ok(q: QuestionDef, raw: Any, region: str = REGION) -> tuple[Any, str]:
    return validate_value(q, raw, region)


def rejected(q: QuestionDef, raw: Any, region: str = REGION) -> str:
    with pytest.raises(AnswerError) as info:
        validate_value(q, raw, region)
    message = str(info.value)
    assert message.strip(), "an error must carry a message"
    return message


def run(questions: list[QuestionDef], answers: dict[str, Any]) -> tuple[list[CleanAnswer], list[dict]]:
    return validate_answers(questions, answers, REGION)


# ---- strategies ---------------------------------------------------------------------------------

WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2003\u3000"
blank_strings = st.text(alphabet=WHITESPACE, max_size=8)
blank_values = st.one_of(
    st.none(), blank_strings, st.lists(st.one_of(st.none(), blank_strings), max_size=4),
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
finite_numbers = st.one_of(st.integers(min_value=-(10**18), max_value=10**18), finite_floats)
option_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12,
)
option_sets = st.lists(option_text, min_size=1, max_size=8, unique=True)
# NUL is refused everywhere a text value is taken.
nul_strings = st.tuples(st.text(max_size=5), st.text(max_size=5)).map(lambda t: f"{t[0]}\x00{t[1]}")


# ---- blank / mandatory --------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [None, "", " ", "\t\n", [], [""], ["  ", None], ()])
def test_is_blank(raw: Any) -> None:
    assert is_blank(raw)


@pytest.mark.parametrize("raw", [0, 0.0, False, "0", "a", [" x "], {}])
def test_not_blank(raw: Any) -> None:
    assert not is_blank(raw)


@pytest.mark.parametrize("kind", list(QuestionKind))
def test_mandatory_missing_fails_for_every_kind(kind: QuestionKind) -> None:
    q = any_q(kind, mandatory=True)
    clean, errors = run([q], {})
    assert clean == []
    assert errors == [{"field": f"answers.{q.id}", "question_id": str(q.id),
                       "message": "This question is required.", "question": q.text}]


@FAST
@given(kind=st.sampled_from(list(QuestionKind)), raw=blank_values)
def test_blank_fails_mandatory_and_is_omitted_when_optional(kind: QuestionKind, raw: Any) -> None:
    mandatory = any_q(kind, mandatory=True)
    clean, errors = run([mandatory], {str(mandatory.id): raw})
    assert clean == []
    assert [e["message"] for e in errors] == ["This question is required."]
    assert errors[0]["question_id"] == str(mandatory.id)

    optional = any_q(kind)
    clean, errors = run([optional], {str(optional.id): raw})
    assert (clean, errors) == ([], [])


def test_false_and_zero_satisfy_mandatory() -> None:
    yn = make_q(K.YES_NO, mandatory=True)
    num = make_q(K.NUMBER, mandatory=True)
    clean, errors = run([yn, num], {str(yn.id): False, str(num.id): 0})
    assert errors == []
    assert [(c.value, c.text) for c in clean] == [(False, "No"), (0, "0")]


# ---- text ---------------------------------------------------------------------------------------

def test_short_text_is_stripped() -> None:
    assert ok(make_q(K.SHORT_TEXT), "  hello  ") == ("hello", "hello")
    assert ok(make_q(K.LONG_TEXT), "line one\nline two\n") == ("line one\nline two", "line one\nline two")


def test_text_rejects_non_strings_saying_what_to_enter() -> None:
    assert rejected(make_q(K.SHORT_TEXT), 42) == "Enter text, not a number."
    assert rejected(make_q(K.LONG_TEXT), ["a"]) == "Enter text, not a list."
    assert rejected(make_q(K.SHORT_TEXT), {"a": 1}) == "Enter text, not an object."
    assert rejected(make_q(K.SHORT_TEXT), True) == "Enter text, not true/false."


def test_text_length_messages() -> None:
    q = make_q(K.SHORT_TEXT, min_length=3, max_length=5)
    assert rejected(q, "ab") == "Enter at least 3 characters (you entered 2)."
    assert rejected(q, "abcdef") == "Enter at most 5 characters (you entered 6)."
    assert ok(q, "abc") == ("abc", "abc")


@pytest.mark.parametrize("kind", [K.SHORT_TEXT, K.LONG_TEXT])
def test_default_max_length(kind: QuestionKind) -> None:
    limit = DEFAULT_MAX_LENGTH[kind]
    q = make_q(kind)
    assert ok(q, "x" * limit)[0] == "x" * limit
    assert "at most" in rejected(q, "x" * (limit + 1))


@FAST
@given(lo=st.integers(0, 20), span=st.integers(0, 20), value=st.text(max_size=50))
def test_text_length_limits_property(lo: int, span: int, value: str) -> None:
    hi = max(lo + span, 1)
    q = make_q(K.SHORT_TEXT, min_length=lo, max_length=hi)
    assume("\x00" not in value)
    stripped = value.strip()
    if lo <= len(stripped) <= hi:
        assert ok(q, value) == (stripped, stripped)
    else:
        message = rejected(q, value)
        assert f"(you entered {len(stripped)})" in message


CODE = r"[A-Z]{3}-[0-9]{3}"


def test_pattern_with_custom_and_default_message() -> None:
    q = make_q(K.SHORT_TEXT, pattern=CODE, pattern_message="Enter a code like ABC-123.")
    assert ok(q, " ABC-123 ") == ("ABC-123", "ABC-123")
    assert rejected(q, "ABC-1234") == "Enter a code like ABC-123."  # fullmatch, not search
    assert rejected(q, "xABC-123") == "Enter a code like ABC-123."
    assert rejected(make_q(K.SHORT_TEXT, pattern=CODE), "abc") == "The answer is not in the expected format."


@FAST
@given(data=st.data())
def test_pattern_fullmatch_property(data: st.DataObject) -> None:
    q = make_q(K.SHORT_TEXT, pattern=CODE, pattern_message="Enter a code like ABC-123.")
    good = data.draw(st.from_regex(CODE, fullmatch=True))
    assert ok(q, good) == (good, good)
    other = data.draw(st.text(max_size=12))
    assume("\x00" not in other)
    if re.fullmatch(CODE, other.strip()):
        assert ok(q, other)[0] == other.strip()
    else:
        assert rejected(q, other) == "Enter a code like ABC-123."


@FAST
@given(kind=st.sampled_from([K.SHORT_TEXT, K.LONG_TEXT, K.EMAIL, K.PHONE, K.URL, K.SINGLE_CHOICE,
                             K.DROPDOWN, K.MULTIPLE_CHOICE, K.DATE]),
       raw=nul_strings)
def test_nul_is_rejected(kind: QuestionKind, raw: str) -> None:
    assume(raw.strip())  # a blank-around-NUL string is still not blank: NUL is not whitespace
    message = rejected(any_q(kind), raw)
    assert "NUL" in message


def test_nul_inside_a_multiple_choice_list() -> None:
    assert "NUL" in rejected(choice_q(K.MULTIPLE_CHOICE), ["Red", "Gr\x00een"])


# ---- number -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "value", "text"), [
    (42, 42, "42"), (-3.5, -3.5, "-3.5"), (2.0, 2.0, "2"), ("17", 17, "17"), (" 1 000 ", 1000, "1000"),
    ("3.25", 3.25, "3.25"), ("1e3", 1000.0, "1000"), ("-0", 0, "0"), ("2.0", 2.0, "2"), (1e20, 1e20, "1e+20"),
])
def test_number_accepted(raw: Any, value: Any, text: str) -> None:
    got = ok(make_q(K.NUMBER), raw)
    assert got == (value, text)
    assert type(got[0]) is type(value)


@pytest.mark.parametrize(("raw", "expected"), [
    ("abc", "Enter a number, such as 42 or 3.5 ('abc' is not one)."),
    ("12abc", "Enter a number, such as 42 or 3.5 ('12abc' is not one)."),
    ("0x10", "Enter a number, such as 42 or 3.5 ('0x10' is not one)."),
    (True, "Enter a number."),
    ([1], "Enter a number, not a list."),
    ({"n": 1}, "Enter a number, not an object."),
    (math.nan, "Enter a finite number."),
    (math.inf, "Enter a finite number."),
    (-math.inf, "Enter a finite number."),
    ("nan", "Enter a finite number."),
    ("NaN", "Enter a finite number."),
    ("inf", "Enter a finite number."),
    ("-Infinity", "Enter a finite number."),
    ("sNaN", "Enter a finite number."),
    ("1e400", "Enter a finite number."),  # finite as a decimal, infinite as a float
])
def test_number_rejected(raw: Any, expected: str) -> None:
    assert rejected(make_q(K.NUMBER), raw) == expected


def test_number_bounds_messages() -> None:
    q = make_q(K.NUMBER, min=0, max=10.5)
    assert rejected(q, -1) == "Enter a number of at least 0."
    assert rejected(q, "10.6") == "Enter a number of at most 10.5."
    assert ok(q, 10.5) == (10.5, "10.5")
    assert ok(q, "0") == (0, "0")


def test_integer_only() -> None:
    q = make_q(K.NUMBER, integer_only=True)
    assert rejected(q, 2.5) == "Enter a whole number."
    assert rejected(q, "2.5") == "Enter a whole number."
    assert ok(q, 3.0) == (3, "3")
    assert type(ok(q, "3.0")[0]) is int
    assert ok(q, "1e3") == (1000, "1000")


def test_very_long_numeric_strings_are_rejected_not_crashing() -> None:
    # Regression: a 5000-digit string once escaped as a plain ValueError (Python's int/str digit limit).
    assert rejected(make_q(K.NUMBER), "9" * 5000) == "Enter a number of at most 100 characters."
    assert rejected(make_q(K.NUMBER, integer_only=True), "1" + "0" * 200).startswith("Enter a number")


@FAST
@given(bounds=st.tuples(finite_numbers, finite_numbers).map(sorted), x=finite_numbers)
def test_number_range_property(bounds: list[float], x: float) -> None:
    lo, hi = bounds
    q = make_q(K.NUMBER, min=lo, max=hi)
    if lo <= x <= hi:
        value, text = ok(q, x)
        assert value == x
        assert type(value) is type(x)
        assert text
    else:
        message = rejected(q, x)
        assert message.startswith("Enter a number of at")


@FAST
@given(x=finite_floats)
def test_integer_only_property(x: float) -> None:
    q = make_q(K.NUMBER, integer_only=True)
    if x.is_integer():
        value, text = ok(q, x)
        assert type(value) is int
        assert value == x
    else:
        assert rejected(q, x) == "Enter a whole number."


@FAST
@given(x=finite_numbers)
def test_numeric_strings_round_trip(x: float) -> None:
    value, _ = ok(make_q(K.NUMBER), repr(x))
    assert value == x
    if isinstance(x, int):
        assert type(value) is int


@FAST
@given(raw=st.sampled_from(["nan", "-nan", "NaN", "inf", "-inf", "Infinity", "+Infinity", "snan"]),
       pad=st.text(alphabet=" ", max_size=2), as_float=st.booleans())
def test_non_finite_always_rejected(raw: str, pad: str, as_float: bool) -> None:
    value: Any = float(raw.replace("snan", "nan")) if as_float else pad + raw + pad
    assert rejected(make_q(K.NUMBER), value) == "Enter a finite number."


# ---- email --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "stored"), [
    ("name@example.com", "name@example.com"),
    ("  First.Last+tag@Sub.Example.ORG ", "First.Last+tag@sub.example.org"),  # domain lower-cased only
    ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
])
def test_email_accepted(raw: str, stored: str) -> None:
    assert ok(make_q(K.EMAIL), raw) == (stored, stored)


@pytest.mark.parametrize("raw", [
    "plainaddress", "@example.com", "name@", "name@example", "name@@example.com", "na me@example.com",
    "name@exa_mple.com", "name@-example.com", "name@example-.com", "<name>@example.com",
    "a" * 320 + "@example.com",
])
def test_email_rejected(raw: str) -> None:
    assert rejected(make_q(K.EMAIL), raw) == "Enter an email address like name@example.com."


def test_email_non_string() -> None:
    assert rejected(make_q(K.EMAIL), 5) == "Enter an email address, not a number."


# ---- phone --------------------------------------------------------------------------------------

PHONE_REGIONS = ["US", "GB", "DE", "FR", "IN", "KE", "NG", "BR", "JP", "AU", "ZA"]


@pytest.mark.parametrize("region", PHONE_REGIONS)
def test_phone_example_numbers_normalise_to_e164(region: str) -> None:
    number = phonenumbers.example_number(region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    q = make_q(K.PHONE)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    # A national number is read in the default region; an international one is read the same anywhere.
    assert ok(q, national, region) == (e164, e164)
    assert ok(q, f"  {international} ", "US") == (e164, e164)
    assert ok(q, international, "GB") == (e164, e164)
    assert ok(q, e164, "JP") == (e164, e164)


@FAST
@given(region=st.sampled_from(PHONE_REGIONS), default=st.sampled_from(PHONE_REGIONS),
       fmt=st.sampled_from([phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164,
                            phonenumbers.PhoneNumberFormat.RFC3966]))
def test_phone_formats_agree_property(region: str, default: str, fmt: int) -> None:
    number = phonenumbers.example_number(region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert ok(make_q(K.PHONE), phonenumbers.format_number(number, fmt), default)[0] == e164


def test_phone_default_region_matters_for_national_numbers() -> None:
    gb = phonenumbers.example_number("GB")
    national = phonenumbers.format_number(gb, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert ok(make_q(K.PHONE), national, "GB")[0] == "+441212345678"
    assert "include the country code" in rejected(make_q(K.PHONE), national, "US")


@pytest.mark.parametrize(("raw", "expected"), [
    ("hello", "Enter a phone number, such as +1 202 555 0123."),
    ("+1 202 555 0123 " + "9" * 30, "Enter a phone number, such as +1 202 555 0123."),
    ("+1 000 000 0000", "This is not a valid phone number; include the country code, e.g. +44 20 7946 0958."),
    ("123", "This is not a valid phone number; include the country code, e.g. +44 20 7946 0958."),
    (2025550123, "Enter a phone number, not a number."),
])
def test_phone_rejected(raw: Any, expected: str) -> None:
    assert rejected(make_q(K.PHONE), raw) == expected


# ---- url ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "stored"), [
    ("https://example.com", "https://example.com"),
    ("http://example.com/path?q=1#top", "http://example.com/path?q=1#top"),
    ("example.org/page", "https://example.org/page"),
    ("http://localhost:8000/", "http://localhost:8000/"),
])
def test_url_accepted(raw: str, stored: str) -> None:
    assert ok(make_q(K.URL), raw) == (stored, stored)


@pytest.mark.parametrize("raw", [
    "ftp://example.com", "javascript:alert(1)", "javascript://example.com/%0aalert(1)", "https://",
    "https://exa mple.com", "https://exa\nmple.com", "https://example.com/a\tb", "notaurl", "http://[::1",
])
def test_url_rejected(raw: str) -> None:
    assert rejected(make_q(K.URL), raw) == "Enter a web address like https://example.com."


def test_url_too_long() -> None:
    assert rejected(make_q(K.URL), "https://example.com/" + "a" * 2100) == \
        "Enter a web address of at most 2048 characters."


# ---- single choice / dropdown -------------------------------------------------------------------

@pytest.mark.parametrize("kind", [K.SINGLE_CHOICE, K.DROPDOWN])
def test_single_choice(kind: QuestionKind) -> None:
    q = choice_q(kind)
    assert ok(q, "Green") == ("Green", "Green")
    assert ok(q, " Blue ") == ("Blue", "Blue")
    assert rejected(q, "green") == "Choose one of: Red, Green, Blue, Yellow."
    assert rejected(q, "Purple") == "Choose one of: Red, Green, Blue, Yellow."
    assert rejected(q, ["Red"]) == "Enter one of the options, not a list."


def test_single_choice_message_lists_at_most_ten() -> None:
    q = make_q(K.DROPDOWN, options=tuple(f"o{i}" for i in range(15)))
    assert rejected(q, "x") == "Choose one of: o0, o1, o2, o3, o4, o5, o6, o7, o8, o9 (and 5 more)."


@FAST
@given(options=option_sets, data=st.data())
def test_single_choice_only_exact_options(options: list[str], data: st.DataObject) -> None:
    q = make_q(data.draw(st.sampled_from([K.SINGLE_CHOICE, K.DROPDOWN])), options=tuple(options))
    pick = data.draw(st.sampled_from(options))
    assert ok(q, pick) == (pick, pick)
    other = data.draw(st.text(max_size=12))
    assume("\x00" not in other and other.strip() not in options)
    assert rejected(q, other).startswith("Choose one of: ")


# ---- multiple choice ----------------------------------------------------------------------------

def test_multiple_choice_examples() -> None:
    q = choice_q(K.MULTIPLE_CHOICE)
    assert ok(q, ["Blue", "Red"]) == (["Red", "Blue"], "Red, Blue")
    assert ok(q, "Green") == (["Green"], "Green")  # one value from an HTML form
    assert ok(q, ["Yellow", "", None]) == (["Yellow"], "Yellow")  # blank entries are skipped
    assert rejected(q, ["Red", "Purple"]) == "'Purple' is not an option; choose from: Red, Green, Blue, Yellow."
    assert rejected(q, ["Red", " Red"]) == "'Red' is chosen twice."
    assert rejected(q, {"Red": True}) == "Choose one or more of the options."
    assert rejected(q, 3) == "Choose one or more of the options."


def test_multiple_choice_selection_limits() -> None:
    q = choice_q(K.MULTIPLE_CHOICE, min_selections=2, max_selections=3)
    assert rejected(q, ["Red"]) == "Choose at least 2 options."
    assert rejected(q, list(COLOURS)) == "Choose at most 3 options."
    assert rejected(choice_q(K.MULTIPLE_CHOICE, max_selections=1), ["Red", "Blue"]) == "Choose at most 1 option."
    assert ok(q, ["Red", "Blue", "Green"])[0] == ["Red", "Green", "Blue"]


@FAST
@given(options=option_sets, data=st.data())
def test_multiple_choice_subset_stored_in_option_order(options: list[str], data: st.DataObject) -> None:
    q = make_q(K.MULTIPLE_CHOICE, options=tuple(options))
    subset = data.draw(st.lists(st.sampled_from(options), min_size=1, unique=True))
    shuffled = data.draw(st.permutations(subset))
    value, text = ok(q, shuffled)
    expected = [o for o in options if o in subset]
    assert value == expected
    assert text == ", ".join(expected)


@FAST
@given(options=option_sets, data=st.data())
def test_multiple_choice_rejects_unknown_and_duplicates(options: list[str], data: st.DataObject) -> None:
    q = make_q(K.MULTIPLE_CHOICE, options=tuple(options))
    chosen = data.draw(st.lists(st.sampled_from(options), unique=True))
    stranger = data.draw(option_text.filter(lambda s: s.strip() not in options))
    assert "is not an option" in rejected(q, [*chosen, stranger])
    twice = data.draw(st.sampled_from(options))
    assert "chosen twice" in rejected(q, [*chosen, twice] if twice in chosen else [twice, *chosen, twice])


@FAST
@given(n=st.integers(1, 8), data=st.data())
def test_multiple_choice_selection_bounds_property(n: int, data: st.DataObject) -> None:
    options = tuple(f"opt{i}" for i in range(n))
    lo = data.draw(st.integers(0, n))
    hi = data.draw(st.integers(max(lo, 1), n))
    q = make_q(K.MULTIPLE_CHOICE, options=options, min_selections=lo, max_selections=hi)
    chosen = data.draw(st.lists(st.sampled_from(options), min_size=1, unique=True))
    if lo <= len(chosen) <= hi:
        assert len(ok(q, chosen)[0]) == len(chosen)
    else:
        assert rejected(q, chosen).startswith(("Choose at least", "Choose at most"))


# ---- date ---------------------------------------------------------------------------------------

def test_date_examples() -> None:
    q = make_q(K.DATE, min_date="2024-01-01", max_date="2024-12-31")
    assert ok(q, " 2024-02-29 ") == ("2024-02-29", "2024-02-29")
    assert rejected(q, "2023-12-31") == "Enter a date on or after 2024-01-01."
    assert rejected(q, "2025-01-01") == "Enter a date on or before 2024-12-31."


@pytest.mark.parametrize("raw", [
    "2024-1-1", "2024/01/01", "20240101", "01-02-2024", "2023-02-29", "2024-13-01", "2024-00-10",
    "2024-W01-1", "2024-01-01T00:00", "２０２４-０１-０１", "yesterday",
])
def test_date_malformed(raw: str) -> None:
    assert rejected(make_q(K.DATE), raw) == "Enter a date written YYYY-MM-DD, such as 2024-03-31."


def test_date_non_string() -> None:
    assert rejected(make_q(K.DATE), 20240101) == "Enter a date, not a number."


@FAST
@given(d=st.dates(), lo=st.dates(), span=st.integers(0, 4000))
def test_date_range_property(d: date, lo: date, span: int) -> None:
    hi = lo + timedelta(days=span) if lo <= date.max - timedelta(days=span) else date.max
    q = make_q(K.DATE, min_date=lo.isoformat(), max_date=hi.isoformat())
    iso = d.isoformat()
    if lo <= d <= hi:
        assert ok(q, iso) == (iso, iso)
    else:
        assert rejected(q, iso).startswith("Enter a date on or")


@FAST
@given(raw=st.text(max_size=14))
def test_date_only_iso_strings_accepted(raw: str) -> None:
    assume("\x00" not in raw and raw.strip())
    try:
        value, _ = ok(make_q(K.DATE), raw)
    except AnswerError as exc:
        assert str(exc).startswith("Enter a date")
    else:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)
        assert date.fromisoformat(value).isoformat() == raw.strip()


# ---- rating -------------------------------------------------------------------------------------

def test_rating_examples() -> None:
    q = make_q(K.RATING)  # default scale 5
    assert ok(q, 4) == (4, "4")
    assert ok(q, " 5 ") == (5, "5")
    assert ok(q, 3.0) == (3, "3")
    for bad in (0, 6, "0", "6", 2.5, "2.5", True, "three", None, [3]):
        assert rejected(q, bad) == "Choose a rating from 1 to 5."
    assert rejected(make_q(K.RATING, scale=10), 11) == "Choose a rating from 1 to 10."


@pytest.mark.parametrize("raw", ["²", "9" * 5000, "³"])
def test_rating_odd_digit_strings_are_rejected_not_crashing(raw: str) -> None:
    # Regression: str.isdigit() accepts superscripts that int() refuses, and int() refuses > 4300 digits.
    assert rejected(make_q(K.RATING), raw) == "Choose a rating from 1 to 5."


@FAST
@given(scale=st.integers(2, 10), x=st.integers(-5, 20), as_text=st.booleans())
def test_rating_property(scale: int, x: int, as_text: bool) -> None:
    q = make_q(K.RATING, scale=scale)
    raw: Any = str(x) if as_text else x
    if 1 <= x <= scale:
        assert ok(q, raw) == (x, str(x))
    else:
        assert rejected(q, raw) == f"Choose a rating from 1 to {scale}."


# ---- yes / no -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "value", "text"), [
    (True, True, "Yes"), (False, False, "No"), ("yes", True, "Yes"), (" No ", False, "No"),
    ("on", True, "Yes"), ("0", False, "No"),
])
def test_yes_no(raw: Any, value: bool, text: str) -> None:
    assert ok(make_q(K.YES_NO), raw) == (value, text)


@pytest.mark.parametrize("raw", ["maybe", 1, 0, ["yes"]])
def test_yes_no_rejected(raw: Any) -> None:
    assert rejected(make_q(K.YES_NO), raw) == "Answer yes or no."


# ---- validate_answers ---------------------------------------------------------------------------

def test_validate_answers_returns_clean_answers_in_question_order() -> None:
    name = make_q(K.SHORT_TEXT, mandatory=True)
    age = make_q(K.NUMBER, integer_only=True)
    skip = make_q(K.EMAIL)
    clean, errors = run([name, age, skip], {str(age.id): "42", str(name.id): " Ada "})
    assert errors == []
    assert clean == [CleanAnswer(name.id, "Ada", "Ada"), CleanAnswer(age.id, 42, "42")]


def test_validate_answers_reports_every_failing_field() -> None:
    qs = [make_q(K.SHORT_TEXT, mandatory=True, text="Name"), make_q(K.EMAIL, text="Email"),
          make_q(K.NUMBER, max=10, text="Count"), choice_q(K.DROPDOWN, text="Colour"),
          make_q(K.DATE, text="When")]
    stranger = str(uuid4())
    answers = {str(qs[1].id): "nope", str(qs[2].id): 11, str(qs[3].id): "Purple",
               str(qs[4].id): "2024-02-02", stranger: "x"}
    clean, errors = run(qs, answers)
    assert [c.question_id for c in clean] == [qs[4].id]
    by_id = {e["question_id"]: e for e in errors}
    assert len(errors) == len(by_id) == 5
    assert by_id[stranger] == {"field": f"answers.{stranger}", "question_id": stranger,
                               "message": "There is no such question in this form."}
    assert by_id[str(qs[0].id)]["message"] == "This question is required."
    assert by_id[str(qs[1].id)] == {"field": f"answers.{qs[1].id}", "question_id": str(qs[1].id),
                                    "question": "Email",
                                    "message": "Enter an email address like name@example.com."}
    assert by_id[str(qs[2].id)]["message"] == "Enter a number of at most 10."
    assert by_id[str(qs[3].id)]["message"].startswith("Choose one of:")


def test_question_of_another_form_is_unknown() -> None:
    ours, theirs = make_q(K.SHORT_TEXT), make_q(K.SHORT_TEXT)
    clean, errors = run([ours], {str(ours.id): "a", str(theirs.id): "b"})
    assert [c.value for c in clean] == ["a"]
    assert errors == [{"field": f"answers.{theirs.id}", "question_id": str(theirs.id),
                       "message": "There is no such question in this form."}]


def test_archived_questions_are_rejected_and_never_required() -> None:
    gone = make_q(K.SHORT_TEXT, mandatory=True, archived=True, text="Old")
    live = make_q(K.SHORT_TEXT)
    clean, errors = run([gone, live], {})
    assert (clean, errors) == ([], [])
    clean, errors = run([gone, live], {str(gone.id): "x", str(live.id): "y"})
    assert [c.question_id for c in clean] == [live.id]
    assert errors == [{"field": f"answers.{gone.id}", "question_id": str(gone.id), "question": "Old",
                       "message": "This question has been removed from the form."}]


@FAST
@given(bad=st.lists(st.booleans(), min_size=1, max_size=12), extra=st.integers(0, 3))
def test_every_failing_field_is_reported_property(bad: list[bool], extra: int) -> None:
    qs = [make_q(K.NUMBER, min=0, max=100, mandatory=i % 2 == 0) for i in range(len(bad))]
    answers: dict[str, Any] = {str(q.id): (500 if b else 50) for q, b in zip(qs, bad, strict=True)}
    unknown = [str(uuid4()) for _ in range(extra)]
    answers.update(dict.fromkeys(unknown, 1))
    clean, errors = run(qs, answers)
    assert len(errors) == sum(bad) + extra
    assert len(clean) == len(bad) - sum(bad)
    expected_ids = {str(q.id) for q, b in zip(qs, bad, strict=True) if b} | set(unknown)
    assert {e["question_id"] for e in errors} == expected_ids
    for e in errors:
        assert e["field"] == f"answers.{e['question_id']}"
        assert e["message"]


# ---- parse_answer_items -------------------------------------------------------------------------

def test_parse_answer_items_normalises_ids() -> None:
    qid = uuid4()
    answers, errors = parse_answer_items([(f" {str(qid).upper()} ", "a")])
    assert errors == []
    assert answers == {str(qid): "a"}


def test_parse_answer_items_accepts_uuid_objects() -> None:
    qid = uuid4()
    answers, errors = parse_answer_items([(qid, 1)])
    assert (answers, errors) == ({str(qid): 1}, [])


@pytest.mark.parametrize("variant", [str, lambda s: s.upper(), lambda s: f" {s} ", UUID])
def test_parse_answer_items_rejects_duplicates(variant: Any) -> None:
    qid = str(uuid4())
    answers, errors = parse_answer_items([(qid, "first"), (variant(qid), "second")])
    assert answers == {qid: "first"}  # never last-wins
    assert len(errors) == 1
    assert errors[0]["message"] == "This question is answered more than once."
    assert errors[0]["field"].startswith("answers.")


@FAST
@given(n=st.integers(1, 6), dupes=st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=6))
def test_parse_answer_items_duplicate_property(n: int, dupes: list[tuple[int, bool]]) -> None:
    ids = [str(uuid4()) for _ in range(n)]
    items: list[tuple[Any, Any]] = [(i, "v") for i in ids]
    extra = [(ids[k % n].upper() if upper else ids[k % n], "again") for k, upper in dupes]
    answers, errors = parse_answer_items(items + extra)
    assert set(answers) == set(ids)
    assert all(v == "v" for v in answers.values())
    assert len(errors) == len(extra)

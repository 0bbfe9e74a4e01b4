"""The safe message templates and SMS segment counting."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations import templating
from integrations.templating import TemplateError, check, event_values, names_in, render, segments, short_key
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.plugins import FormContext


def q(text: str, kind: QuestionKind = QuestionKind.SHORT_TEXT, *, qid: uuid.UUID | None = None,
      archived: bool = False, options: tuple[str, ...] = ()) -> QuestionDef:
    return QuestionDef(qid or uuid.uuid4(), 0, kind, text, "", False, options, {}, archived)


NAME = q("Name")
PHONE = q("Phone", QuestionKind.PHONE)
OLD = q("Old question", archived=True)
FORM = FormContext(uuid.uuid4(), "Harvest survey", 3, (NAME, PHONE, OLD))


def event(**texts: str) -> dict:
    return {"type": "response.submitted", "response_id": "0190aaaa-0000-7000-8000-000000000001",
            "submitted_at": "2026-03-01T09:30:00+00:00",
            "answers": [{"question_id": str(qid), "kind": "short_text", "value": t, "text": t}
                        for qid, t in texts.items()]}


def test_placeholders_by_full_id_and_short_key_render_the_answers():
    template = f"Hi {{{{ answers.{NAME.id} }}}} ({{{{answers.{short_key(PHONE.id)}}}}}), thanks for {{{{form.title}}}}"
    assert check(template, FORM) == []
    values = event_values(FORM, event(**{str(NAME.id): "Ada", str(PHONE.id): "+14155550101"}))
    assert render(template, values) == "Hi Ada (+14155550101), thanks for Harvest survey"


def test_response_fields_and_missing_answers():
    values = event_values(FORM, event())
    assert render("{{response.id}} at {{response.submitted_at}}: [{{answers." + short_key(NAME.id) + "}}]",
                  values) == "0190aaaa-0000-7000-8000-000000000001 at 2026-03-01 09:30 UTC: []"


def test_an_answer_that_looks_like_a_placeholder_is_inserted_as_text():
    values = event_values(FORM, event(**{str(NAME.id): "{{form.title}} {% evil %} {{answers.x}}"}))
    assert render(f"Hi {{{{answers.{NAME.id}}}}}", values) == "Hi {{form.title}} {% evil %} {{answers.x}}"


def test_control_characters_are_removed_and_length_capped():
    values = event_values(FORM, event(**{str(NAME.id): "A\x07da\nLovelace\x1b"}))
    assert render(f"{{{{answers.{NAME.id}}}}}", values) == "Ada\nLovelace"
    long = render("x" * 50 + "{{form.title}}", {"form.title": "y" * 2000}, max_chars=1600)
    assert len(long) == 1600 and long.endswith("y…")


@pytest.mark.parametrize(("template", "expected"), [
    ("Hi {{answers.00000000}}", "does not name a question of this form"),
    ("Hi {{response.secret}}", "is not a known placeholder"),
    ("Hi {{ user.__class__ }}", "is not a known placeholder"),
    ("Hi {{form.title | upper}}", "is not a placeholder name"),
    ("Hi {{form.title}", "is not closed"),
    ("Hi {{answers." + str(OLD.id) + "}}", "which is archived"),
])
def test_template_problems_are_reported_precisely(template, expected):
    problems = check(template, FORM)
    assert len(problems) == 1 and expected in problems[0], problems


def test_unclosed_placeholder_names_its_position():
    with pytest.raises(TemplateError, match="character 11"):
        names_in("{{a}} and {{b")


def test_a_short_key_two_questions_share_is_refused_but_their_full_ids_work():
    a = q("A", qid=uuid.UUID("01900000-0000-7000-8000-0000deadbeef"))
    b = q("B", qid=uuid.UUID("01900000-0001-7000-8000-0000deadbeef"))
    form = FormContext(uuid.uuid4(), "T", 1, (a, b))
    assert check("{{answers.deadbeef}}", form) == ["{{answers.deadbeef}} does not name a question of this form."]
    assert check(f"{{{{answers.{a.id}}}}} {{{{answers.{b.id}}}}}", form) == []
    names = [p.name for p in templating.placeholders(form)]
    assert f"answers.{a.id}" in names and f"answers.{b.id}" in names


def test_placeholders_list_active_questions_only():
    names = [p.name for p in templating.placeholders(FORM)]
    assert f"answers.{short_key(NAME.id)}" in names and f"answers.{short_key(PHONE.id)}" in names
    assert not any(short_key(OLD.id) in n for n in names)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=300))
def test_any_answer_text_is_rendered_verbatim(text):
    values = event_values(FORM, event(**{str(NAME.id): text}))
    assert render(f"<{{{{answers.{NAME.id}}}}}>", values) == f"<{text}>"


@pytest.mark.parametrize(("text", "expected"), [
    ("", ("GSM-7", 0)),
    ("a" * 160, ("GSM-7", 1)),
    ("a" * 161, ("GSM-7", 2)),
    ("a" * 306, ("GSM-7", 2)),
    ("a" * 307, ("GSM-7", 3)),
    ("Ça coûte 5 €? {ok}", ("UCS-2", 1)),  # û is not in GSM-7
    ("Ça va, très bien! €" * 1, ("GSM-7", 1)),
    ("€" * 80, ("GSM-7", 1)),  # extension characters cost two
    ("€" * 81, ("GSM-7", 2)),
    ("ж" * 70, ("UCS-2", 1)),
    ("ж" * 71, ("UCS-2", 2)),
    ("ж" * 134, ("UCS-2", 2)),
    ("ж" * 135, ("UCS-2", 3)),
    ("😀" * 35, ("UCS-2", 1)),  # two UTF-16 code units each
    ("😀" * 36, ("UCS-2", 2)),
])
def test_segments(text, expected):
    assert segments(text) == expected


def test_describe_length_for_people():
    assert templating.describe_length("a" * 161) == "161 characters, 2 SMS segments (GSM-7)"

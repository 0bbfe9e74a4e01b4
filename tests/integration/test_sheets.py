"""Google Sheets delivery: the real gspread and google-auth clients against the fake Sheets and token
servers in tests/fakes/google.py (the HTTP boundary is the only thing replaced).

The first tests call the integration's handler with hand-built Work items; the last ones go end to
end: API submissions → outbox → the embedded delivery engine → rows in the fake sheet.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import gspread
import pytest
from google.oauth2.service_account import Credentials
from sqlalchemy import select

from integrations.sheets import DELETED_MARK, SheetsConfig, SheetsIntegration, spreadsheet_id, submitted_cell
from integrations.sheets_client import SCOPES, SheetsHTTPClient
from tests.fakes.google import FakeGoogle
from tests.fakes.service_account import make_service_account
from tests.pipeline_fixtures import pipeline_env, wait_until
from webapp.deliveries.embedded import EmbeddedDispatcher
from webapp.deliveries.models import Delivery, DeliveryState
from webapp.forms.definition import QuestionDef
from webapp.forms.models import QuestionKind
from webapp.outbox.events import RESPONSE_DELETED, RESPONSE_SUBMITTED, RESPONSE_UPDATED, response_event
from webapp.plugins import FormContext, Outcome, Registry, Work
from webapp.settings import Settings

WS = "Responses"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

pytest_plugins = ("tests.pipeline_fixtures",)


# ---- fixtures and helpers ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
def fake(google):
    google.clear_faults()
    yield google
    google.clear_faults()


@pytest.fixture
def account(fake, tmp_path):
    """A fresh service account per test: its quota (ours and the fake's) starts empty."""
    sa = make_service_account(tmp_path)
    fake.register_account(sa)
    return sa


def sheets_settings(fake, account, **extra) -> Settings:
    values = {"sheets_api_url": fake.url, "google_token_uri": fake.token_uri,
              "google_service_account_file": str(account.path), "sheets_timeout": 5.0, **extra}
    return replace(Settings(), **values)


@pytest.fixture
def sheets(fake, account) -> SheetsIntegration:
    integration = SheetsIntegration(sheets_settings(fake, account))
    integration.backoff_base, integration.backoff_cap = 0.05, 0.4  # keep the tests quick
    return integration


@pytest.fixture
def sid(fake, account) -> str:
    return fake.create_spreadsheet("Survey results", share_with=[account.email])


def q(text: str, kind: QuestionKind = QuestionKind.SHORT_TEXT, *, position: int = 0, archived: bool = False,
      qid: uuid.UUID | None = None) -> QuestionDef:
    return QuestionDef(id=qid or uuid.uuid4(), position=position, kind=kind, text=text, help_text="",
                       mandatory=False, options=(), constraints={}, archived=archived)


def form_of(*questions: QuestionDef, version: int = 1, form_id: uuid.UUID | None = None) -> FormContext:
    return FormContext(form_id=form_id or uuid.uuid4(), title="Survey", version=version, questions=questions)


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def event(form: FormContext, answers: dict[uuid.UUID, Any] | None, *, kind: str = RESPONSE_SUBMITTED,
          response_id: uuid.UUID | None = None, minute: int = 0) -> dict[str, Any]:
    """An outbox event as the app writes it; `answers` maps question ids to values."""
    kinds = {x.id: x.kind.value for x in form.questions}
    items = None if answers is None else [
        {"question_id": str(k), "kind": kinds[k], "value": v, "text": text_of(v)} for k, v in answers.items()]
    return response_event(kind, form_id=form.form_id, form_version=form.version,
                          response_id=response_id or uuid.uuid4(), submitted_at=T0,
                          answers=items, occurred_at=T0 + timedelta(minutes=minute))


def work(sid: str, form: FormContext, ev: dict[str, Any], *, worksheet: str = WS, attempt: int = 1,
         previous_claim_at: datetime | None = None, url: bool = False) -> Work:
    spreadsheet = f"https://docs.google.com/spreadsheets/d/{sid}/edit#gid=0" if url else sid
    return Work(delivery_id=uuid.uuid4(), integration_id=uuid.uuid4(),
                config=SheetsConfig(spreadsheet=spreadsheet, worksheet=worksheet), event=ev, form=form,
                attempt=attempt, previous_claim_at=previous_claim_at)


def data_rows(fake: FakeGoogle, sid: str, worksheet: str = WS) -> list[list[Any]]:
    return fake.values(sid, worksheet)[2:]


def calls(fake: FakeGoogle, sid: str, *, kind: str | None = None, suffix: str = "", status: int | None = None):
    return [r for r in fake.recorded(kind=kind, path_suffix=suffix, status=status) if sid in r.path]


def assert_all(results, outcome: Outcome) -> None:
    assert [r.outcome for r in results] == [outcome] * len(results), [r.detail for r in results]


# ---- the handler ---------------------------------------------------------------------------------------

async def test_a_batch_becomes_one_row_per_response_in_one_append(fake, sheets, sid, account):
    name, age, hobbies, ok = (q("Name"), q("Age", QuestionKind.NUMBER, position=1),
                              q("Hobbies", QuestionKind.MULTIPLE_CHOICE, position=2),
                              q("Subscribe?", QuestionKind.YES_NO, position=3))
    form = form_of(name, age, hobbies, ok)
    events = [event(form, {name.id: f"Person {i}", age.id: 30 + i, hobbies.id: ["Chess", "Judo"], ok.id: i % 2 == 0},
                    minute=i) for i in range(5)]
    results = await sheets.handle([work(sid, form, e, url=i == 0) for i, e in enumerate(events)])

    assert_all(results, Outcome.DELIVERED)
    assert [r.external_ref for r in results] == [f"{WS}!A{n}" for n in range(3, 8)]
    values = fake.values(sid, WS)
    assert values[0] == ["Response ID", "Submitted at", "Name", "Age", "Hobbies", "Subscribe?"]
    assert values[1] == ["response_id", "submitted_at", str(name.id), str(age.id), str(hobbies.id), str(ok.id)]
    assert values[2:] == [[e["response_id"], "2026-03-01 09:30:00 UTC", f"Person {i}", 30 + i, "Chess, Judo",
                           "Yes" if i % 2 == 0 else "No"] for i, e in enumerate(events)]
    sheet = fake.sheet(sid, WS)
    assert sheet.hidden_rows == {1} and sheet.frozen_rows == 2  # only the titles show
    [append] = calls(fake, sid, suffix=":append")
    assert append.query["valueInputOption"] == ["RAW"] and append.query["insertDataOption"] == ["INSERT_ROWS"]
    assert len(append.body["values"]) == 5
    # The token came from the configured token endpoint through the JWT-bearer grant.
    grants = [r for r in fake.recorded(kind="token") if r.status == 200]
    assert any(r.body["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"] for r in grants)
    assert {r.account for r in calls(fake, sid)} == {account.email}

    # The same batch again (a redelivered message): nothing new is written.
    again = await sheets.handle([work(sid, form, e) for e in events])
    assert_all(again, Outcome.DELIVERED)
    assert [r.external_ref for r in again] == [r.external_ref for r in results]
    assert len(data_rows(fake, sid)) == 5 and len(calls(fake, sid, suffix=":append")) == 1


async def test_columns_follow_question_ids_not_positions_or_titles(fake, sheets, sid):
    name, city, mood = q("Name"), q("City", position=1), q("Mood", position=2)
    v1 = form_of(name, city, mood)
    first = event(v1, {name.id: "Ada", city.id: "Paris", mood.id: "Happy"})
    assert_all(await sheets.handle([work(sid, v1, first)]), Outcome.DELIVERED)

    # Version 2: "City" renamed and moved to the end, "Mood" archived, "Age" added first.
    age = q("Age", QuestionKind.NUMBER, position=0)
    v2 = form_of(age, replace(name, position=1), replace(mood, position=2, archived=True),
                 replace(city, text="Town", position=3), version=2, form_id=v1.form_id)
    second = event(v2, {age.id: 41, name.id: "Grace", city.id: "Lyon"}, minute=1)
    assert_all(await sheets.handle([work(sid, v2, second)]), Outcome.DELIVERED)

    values = fake.values(sid, WS)
    assert values[0] == ["Response ID", "Submitted at", "Name", "Town", "Mood", "Age"]
    assert values[1][2:] == [str(name.id), str(city.id), str(mood.id), str(age.id)]
    assert values[2] == [first["response_id"], "2026-03-01 09:30:00 UTC", "Ada", "Paris", "Happy"]
    assert values[3] == [second["response_id"], "2026-03-01 09:30:00 UTC", "Grace", "Lyon", "", 41]


async def test_updated_and_deleted_responses_change_their_own_row(fake, sheets, sid):
    name, note = q("Name"), q("Note", QuestionKind.LONG_TEXT, position=1)
    form = form_of(name, note)
    keep, change = uuid.uuid4(), uuid.uuid4()
    await sheets.handle([work(sid, form, event(form, {name.id: "Keep", note.id: "as is"}, response_id=keep)),
                         work(sid, form, event(form, {name.id: "Old", note.id: "first words"}, response_id=change))])

    updated = event(form, {name.id: "New"}, kind=RESPONSE_UPDATED, response_id=change, minute=1)
    results = await sheets.handle([work(sid, form, updated)])
    assert_all(results, Outcome.DELIVERED)
    assert results[0].external_ref == f"{WS}!A4" and "updated" in results[0].detail
    assert data_rows(fake, sid) == [[str(keep), "2026-03-01 09:30:00 UTC", "Keep", "as is"],
                                    [str(change), "2026-03-01 09:30:00 UTC", "New"]]  # the cleared note is gone

    deleted = event(form, None, kind=RESPONSE_DELETED, response_id=change, minute=2)
    assert_all(await sheets.handle([work(sid, form, deleted)]), Outcome.DELIVERED)
    assert data_rows(fake, sid)[1] == [DELETED_MARK + str(change), "2026-03-01 09:30:00 UTC", "New"]

    # Late or repeated events for a deleted response change nothing, and add no row.
    late = [work(sid, form, event(form, {name.id: "Zombie"}, kind=RESPONSE_UPDATED, response_id=change, minute=1)),
            work(sid, form, event(form, {name.id: "Old"}, response_id=change))]
    assert_all(await sheets.handle(late), Outcome.DELIVERED)
    assert data_rows(fake, sid) == [[str(keep), "2026-03-01 09:30:00 UTC", "Keep", "as is"],
                                    [DELETED_MARK + str(change), "2026-03-01 09:30:00 UTC", "New"]]


async def test_events_arriving_out_of_order_still_leave_one_row_each(fake, sheets, sid):
    name = q("Name")
    form = form_of(name)
    a, b = uuid.uuid4(), uuid.uuid4()
    # a: its update (and, in the same batch, a later deletion) before its submission.
    # b: submitted and updated in one batch, the update listed first.
    batch = [work(sid, form, event(form, None, kind=RESPONSE_DELETED, response_id=a, minute=5)),
             work(sid, form, event(form, {name.id: "A2"}, kind=RESPONSE_UPDATED, response_id=a, minute=3)),
             work(sid, form, event(form, {name.id: "B2"}, kind=RESPONSE_UPDATED, response_id=b, minute=2)),
             work(sid, form, event(form, {name.id: "B1"}, response_id=b, minute=1))]
    assert_all(await sheets.handle(batch), Outcome.DELIVERED)
    assert_all(await sheets.handle([work(sid, form, event(form, {name.id: "A1"}, response_id=a))]), Outcome.DELIVERED)
    # Rows are added in the order the events occurred: b's first.
    assert data_rows(fake, sid) == [[str(b), "2026-03-01 09:30:00 UTC", "B2"],
                                    [DELETED_MARK + str(a), "2026-03-01 09:30:00 UTC", "A2"]]


async def test_an_append_whose_answer_was_lost_is_not_made_twice(fake, account, sid):
    sheets = SheetsIntegration(sheets_settings(fake, account, sheets_timeout=0.3))
    sheets.backoff_base, sheets.backoff_cap = 0.05, 0.2
    name = q("Name")
    form = form_of(name)
    await sheets.handle([work(sid, form, event(form, {name.id: "warm-up"}))])  # header in place
    fake.delay_next(1, 1.5, kind="write")  # the append is made, its answer comes too late
    events = [event(form, {name.id: f"N{i}"}) for i in range(3)]
    results = await sheets.handle([work(sid, form, e) for e in events])

    assert_all(results, Outcome.DELIVERED)
    assert [r[2] for r in data_rows(fake, sid)] == ["warm-up", "N0", "N1", "N2"]
    assert len(calls(fake, sid, suffix=":append")) == 2  # the warm-up and the one whose answer was lost
    assert [r.external_ref for r in results] == [f"{WS}!A{n}" for n in (4, 5, 6)]


async def test_a_claim_left_unknown_is_reconciled_by_response_id(fake, sheets, sid):
    name = q("Name")
    form = form_of(name)
    done, new = event(form, {name.id: "Sent before the crash"}), event(form, {name.id: "Never sent"})
    await sheets.handle([work(sid, form, done)])
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    results = await sheets.handle([work(sid, form, done, attempt=2, previous_claim_at=earlier),
                                   work(sid, form, new, attempt=2, previous_claim_at=earlier)])
    assert_all(results, Outcome.DELIVERED)
    assert results[0].external_ref == f"{WS}!A3" and "already" in results[0].detail
    assert [r[:3] for r in data_rows(fake, sid)] == [[done["response_id"], "2026-03-01 09:30:00 UTC",
                                                      "Sent before the crash"],
                                                     [new["response_id"], "2026-03-01 09:30:00 UTC", "Never sent"]]


async def test_formula_like_answers_are_stored_as_plain_text(fake, sheets, sid):
    text, phone, number = q("Text"), q("Phone", QuestionKind.PHONE, position=1), q("N", QuestionKind.NUMBER, position=2)
    form = form_of(text, phone, number)
    answers = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1:A2)"]
    events = [event(form, {text.id: a, phone.id: "+12025550143", number.id: -5}) for a in answers]
    assert_all(await sheets.handle([work(sid, form, e) for e in events]), Outcome.DELIVERED)

    assert fake.formulas(sid, WS) == []  # nothing Sheets would evaluate
    assert [r[2:] for r in data_rows(fake, sid)] == [[a, "+12025550143", -5] for a in answers]
    [append] = calls(fake, sid, suffix=":append")
    assert append.query["valueInputOption"] == ["RAW"]
    assert [r[2] for r in append.body["values"]] == answers  # exactly as typed: no apostrophe added


async def test_text_over_the_cell_limit_is_cut_with_a_visible_marker(fake, sheets, sid):
    essay = q("Essay", QuestionKind.LONG_TEXT)
    form = form_of(essay)
    long_text = "".join(f"{i:07d} " for i in range(7_500))  # 60,000 characters
    assert_all(await sheets.handle([work(sid, form, event(form, {essay.id: long_text}))]), Outcome.DELIVERED)
    cell = data_rows(fake, sid)[0][2]
    marker = "… [truncated: 60,000 characters in full]"
    assert len(cell) == 50_000 and cell.endswith(marker)
    assert cell[: -len(marker)] == long_text[: 50_000 - len(marker)]


async def test_429s_and_500s_are_retried_with_backoff_and_nothing_is_doubled(fake, sheets, sid, account):
    name = q("Name")
    form = form_of(name)
    await sheets.handle([work(sid, form, event(form, {name.id: "first"}))])
    fake.fail_next(2, 429, kind="write", retry_after=0.2)
    fake.fail_next(1, 500, kind="read")
    fake.fail_next(1, 503, kind="write")
    events = [event(form, {name.id: f"R{i}"}) for i in range(4)]
    results = await sheets.handle([work(sid, form, e) for e in events])

    assert_all(results, Outcome.DELIVERED)
    assert [r[0] for r in data_rows(fake, sid)][1:] == [e["response_id"] for e in events]
    assert len(calls(fake, sid, status=429)) == 2 and len(calls(fake, sid, status=503)) == 1
    assert len(calls(fake, sid, status=500)) == 1
    assert fake.max_in_window(account.email, "write") <= 60 and fake.quota_rejections == 0


async def test_a_storm_longer_than_the_inline_retries_goes_back_to_the_engine(fake, sheets, sid):
    sheets.max_tries = 3
    name = q("Name")
    form = form_of(name)
    fake.fail_next(50, 429, kind="any", retry_after=0.1)
    events = [event(form, {name.id: f"R{i}"}) for i in range(2)]
    results = await sheets.handle([work(sid, form, e) for e in events])
    assert_all(results, Outcome.RETRY)
    assert results[0].retry_after == pytest.approx(0.1) and "429" in results[0].detail
    assert len(calls(fake, sid)) == 3  # one request per try: each stopped at the first 429
    fake.clear_faults()

    results = await sheets.handle([work(sid, form, e, attempt=2) for e in events])
    assert_all(results, Outcome.DELIVERED)
    assert [r[0] for r in data_rows(fake, sid)] == [e["response_id"] for e in events]


async def test_writes_are_paced_under_the_per_account_quota(account, tmp_path):
    # Google's quota scaled down: 3 requests of a kind per 0.5 s window, in the fake and in the client.
    with FakeGoogle(read_quota=3, write_quota=3, quota_window=0.5) as fake:
        fake.register_account(account)
        sid = fake.create_spreadsheet(share_with=[account.email])
        sheets = SheetsIntegration(sheets_settings(fake, account, sheets_writes_per_minute=3))
        sheets.quota_period = 0.5
        name = q("Name")
        form = form_of(name)
        events = [event(form, {name.id: f"R{i}"}) for i in range(7)]
        results = await asyncio.gather(*(sheets.handle([work(sid, form, e)]) for e in events))

        assert [r.outcome for [r] in results] == [Outcome.DELIVERED] * 7
        assert sorted(r[0] for r in data_rows(fake, sid)) == sorted(e["response_id"] for e in events)
        writes = fake.recorded(kind="write")
        assert len(writes) >= 9  # worksheet, layout, header, 7 appends: more than three windows' worth
        assert fake.quota_rejections == 0
        assert fake.max_in_window(account.email, "write") <= 3
        assert fake.max_in_window(account.email, "read") <= 3


async def test_permanent_errors_fail_at_once_with_a_reason(fake, sheets, account, tmp_path):
    name = q("Name")
    form = form_of(name)
    not_shared = fake.create_spreadsheet()
    [r] = await sheets.handle([work(not_shared, form, event(form, {name.id: "x"}))])
    assert r.outcome == Outcome.FAILED and f"Share the spreadsheet with {account.email}" in r.detail
    assert len(calls(fake, not_shared)) == 1  # no retries

    gone = fake.create_spreadsheet(share_with=[account.email])
    fake.deny(gone, 404)
    [r] = await sheets.handle([work(gone, form, event(form, {name.id: "x"}))])
    assert r.outcome == Outcome.FAILED and "not found" in r.detail

    theirs = fake.create_spreadsheet(sheets=[WS], share_with=[account.email])
    await asyncio.to_thread(_put, fake, theirs, [["Budget", "2026"], ["Rent", 1200]])
    [r] = await sheets.handle([work(theirs, form, event(form, {name.id: "x"}))])
    assert r.outcome == Outcome.FAILED and "already holds data" in r.detail
    assert fake.values(theirs, WS) == [["Budget", "2026"], ["Rent", 1200]]  # untouched

    no_key = SheetsIntegration(replace(sheets.settings, google_service_account_file=""))
    [r] = await no_key.handle([work(theirs, form, event(form, {name.id: "x"}))])
    assert r.outcome == Outcome.FAILED and "GOOGLE_SERVICE_ACCOUNT_FILE" in r.detail

    stranger = make_service_account(tmp_path, name="not-registered")  # a key Google does not know
    unknown = SheetsIntegration(replace(sheets.settings, google_service_account_file=str(stranger.path)))
    [r] = await unknown.handle([work(theirs, form, event(form, {name.id: "x"}))])
    assert r.outcome == Outcome.FAILED and "Google rejected the service account" in r.detail
    assert "PRIVATE KEY" not in r.detail

    [r] = await sheets.handle([work("not an id", form, event(form, {name.id: "x"}))])
    assert r.outcome == Outcome.FAILED


def _put(fake: FakeGoogle, sid: str, values: list[list[Any]]) -> None:
    """Someone's own data in a worksheet (written straight into the fake's store)."""
    with fake._lock:
        sheet = fake._spreadsheets[sid].sheet(WS)
        for r, row in enumerate(values):
            for c, value in enumerate(row):
                sheet.cells[(r, c)] = value


async def test_two_worksheets_in_one_batch(fake, sheets, sid):
    name = q("Name")
    form_a, form_b = form_of(name), form_of(q("Other"))
    a, b = event(form_a, {name.id: "for A"}), event(form_b, None, kind=RESPONSE_DELETED)
    results = await sheets.handle([work(sid, form_a, a, worksheet="A"), work(sid, form_b, b, worksheet="B's tab")])
    assert_all(results, Outcome.DELIVERED)
    assert data_rows(fake, sid, "A") == [[a["response_id"], "2026-03-01 09:30:00 UTC", "for A"]]
    assert data_rows(fake, sid, "B's tab") == [[DELETED_MARK + b["response_id"], "2026-03-01 09:30:00 UTC"]]


async def test_send_test_checks_access_and_writes_the_header(fake, sheets, sid, account):
    name, age = q("Name"), q("Age", QuestionKind.NUMBER, position=1)
    form = form_of(name, age)
    result = await sheets.send_test(SheetsConfig(spreadsheet=sid, worksheet="Signups"), form)
    assert result.outcome == Outcome.DELIVERED, result.detail
    assert "Survey results" in result.detail and "Signups" in result.detail
    assert fake.values(sid, "Signups") == [["Response ID", "Submitted at", "Name", "Age"],
                                           ["response_id", "submitted_at", str(name.id), str(age.id)]]
    result = await sheets.send_test(SheetsConfig(spreadsheet=fake.create_spreadsheet()), form)
    assert result.outcome == Outcome.FAILED and account.email in result.detail


def test_the_fake_serves_gspreads_own_high_level_calls(fake, account, sid):
    """gspread as any script would use it, through the same HTTP boundary, against the fake."""
    creds = Credentials.from_service_account_file(str(account.path), scopes=list(SCOPES))
    gc = gspread.Client(creds.with_token_uri(fake.token_uri),
                        http_client=functools.partial(SheetsHTTPClient, base_url=fake.url, timeout=5.0))
    book = gc.open_by_key(sid)
    assert book.title == "Survey results"
    sheet = book.sheet1
    sheet.update([["Name", "Sum"], ["Ada", "=1+1"]], "A1:B2", raw=False)  # typed as a user would
    sheet.update([["=2+2"]], "C2")  # gspread's default: RAW
    sheet.append_rows([["Bob", 3]], value_input_option="RAW", insert_data_option="INSERT_ROWS")
    assert sheet.get_all_values() == [["Name", "Sum", ""], ["Ada", "=1+1", "=2+2"], ["Bob", "3", ""]]
    assert fake.formulas(sid, "Sheet1") == [(1, 1, "=1+1")]  # USER_ENTERED parses; RAW never does
    with pytest.raises(gspread.exceptions.WorksheetNotFound):
        book.worksheet("Nope")
    fake.fail_next(1, 429, kind="read", retry_after=7)
    with pytest.raises(gspread.exceptions.APIError) as caught:
        sheet.get_all_values()
    assert caught.value.code == 429 and caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.error["status"] == "RESOURCE_EXHAUSTED"


def test_config_accepts_a_spreadsheet_url_or_id():
    sheets = SheetsIntegration()
    sid = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
    for value in [sid, f"https://docs.google.com/spreadsheets/d/{sid}/edit#gid=0",
                  f"https://docs.google.com/spreadsheets/u/1/d/{sid}/edit", f"docs.google.com/spreadsheets/d/{sid}"]:
        assert spreadsheet_id(value) == sid, value
    form = form_of(q("Name"))
    assert sheets.validate_config(SheetsConfig(spreadsheet=sid, worksheet=" Tab "), form) == []
    for bad in ["short", "https://example.com/spreadsheets/d/" + sid, "https://docs.google.com/document/d/" + sid]:
        [error] = sheets.validate_config(SheetsConfig(spreadsheet=bad), form)
        assert error.field == "config.spreadsheet"
    [error] = sheets.validate_config(SheetsConfig(spreadsheet=sid, worksheet="   "), form)
    assert error.field == "config.worksheet"


# ---- end to end: API → outbox → embedded engine → sheet ---------------------------------------------

async def _form(client, owner, questions) -> tuple[str, list[str]]:
    r = await client.post("/api/v1/forms", json={"title": "Survey", "status": "open", "questions": questions},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"], [x["id"] for x in r.json()["questions"]]


async def _connect(client, owner, fid, sid) -> str:
    r = await client.post(f"/api/v1/forms/{fid}/integrations", headers=owner.headers, json={
        "kind": "sheets", "config": {"spreadsheet": f"https://docs.google.com/spreadsheets/d/{sid}/edit",
                                     "worksheet": WS}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _submit(client, fid, answers) -> dict[str, Any]:
    r = await client.post(f"/api/v1/forms/{fid}/responses", json={"answers": answers})
    assert r.status_code == 201, r.text
    return r.json()


async def _deliver(sessionmaker, settings, sheets) -> None:
    dispatcher = EmbeddedDispatcher(sessionmaker, settings, Registry(integrations={"sheets": sheets}))
    for _ in range(50):
        if not await dispatcher.run_once():
            return
    raise AssertionError("the dispatcher never ran out of work")


async def _states(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as s:
        states = list(await s.scalars(select(Delivery.state)))
    return {str(DeliveryState(x)): states.count(x) for x in set(states)}


def _row(response: dict[str, Any], order: list[str], numeric: tuple[str, ...] = ()) -> list[Any]:
    """The row a response should have: numbers as numbers, everything else as its text."""
    by_q = {a["question_id"]: a for a in response["answers"]}
    cells = [(by_q[qid]["value"] if qid in numeric else by_q[qid]["text"]) if qid in by_q else "" for qid in order]
    while cells and cells[-1] == "":
        cells.pop()
    return [response["id"], submitted_cell(response["submitted_at"]), *cells]


async def test_submissions_reach_the_sheet_end_to_end(client, owner, sessionmaker, settings, fake, sheets, sid):
    fid, (name, age, color) = await _form(client, owner, [
        {"text": "Name", "mandatory": True}, {"text": "Age", "kind": "number"},
        {"text": "Colour", "kind": "single_choice", "options": ["Red", "Blue"]}])
    await _connect(client, owner, fid, sid)
    n = 12
    sent = [await _submit(client, fid, {name: f"Person {i}", age: 20 + i, color: ["Red", "Blue"][i % 2]})
            for i in range(n)]
    await _deliver(sessionmaker, settings, sheets)

    assert await _states(sessionmaker) == {"delivered": n}
    assert data_rows(fake, sid) == [_row(s, [name, age, color], (age,)) for s in sent]
    assert len(calls(fake, sid, suffix=":append")) == 1  # one batch, one append

    # One question added, another renamed, then more activity.
    r = await client.post(f"/api/v1/forms/{fid}/questions", json={"text": "Email", "kind": "email"},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    email = r.json()["id"]
    r = await client.patch(f"/api/v1/forms/{fid}/questions/{age}", json={"text": "Age in years"},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    late = await _submit(client, fid, {name: "Late", age: 50, email: "late@example.com"})
    r = await client.patch(f"/api/v1/forms/{fid}/responses/{sent[0]['id']}", json={"answers": {age: 99}},
                           headers=owner.headers)
    assert r.status_code == 200, r.text
    changed = r.json()
    r = await client.delete(f"/api/v1/forms/{fid}/responses/{sent[1]['id']}", headers=owner.headers)
    assert r.status_code == 204
    await _deliver(sessionmaker, settings, sheets)

    assert await _states(sessionmaker) == {"delivered": n + 3}
    values = fake.values(sid, WS)
    assert values[0] == ["Response ID", "Submitted at", "Name", "Age in years", "Colour", "Email"]
    assert values[1] == ["response_id", "submitted_at", name, age, color, email]
    rows = values[2:]
    assert len(rows) == n + 1
    assert rows[0] == _row(changed, [name, age, color, email], (age,))
    assert rows[0][3] == 99
    assert rows[1][0] == DELETED_MARK + sent[1]["id"]
    assert rows[2:n] == [_row(s, [name, age, color], (age,)) for s in sent[2:]]
    assert rows[n] == _row(late, [name, age, color, email], (age,))


async def test_a_429_storm_is_ridden_out_end_to_end(client, owner, sessionmaker, settings, fake, sheets, sid, account):
    fid, (name,) = await _form(client, owner, [{"text": "Name", "mandatory": True}])
    await _connect(client, owner, fid, sid)
    sent = [await _submit(client, fid, {name: f"Person {i}"}) for i in range(8)]
    fake.fail_next(3, 429, kind="any", retry_after=0.2)
    fake.fail_next(2, 429, kind="write", retry_after=0.1)
    await _deliver(sessionmaker, settings, sheets)

    assert await _states(sessionmaker) == {"delivered": 8}
    assert sorted(r[0] for r in data_rows(fake, sid)) == sorted(s["id"] for s in sent)
    assert len(calls(fake, sid, status=429)) == 5
    assert fake.quota_rejections == 0
    assert fake.max_in_window(account.email, "write") <= 60


@pytest.fixture
def installed_sheets(fake, account):
    """The installed (entry-point) integration, pointed at the fakes for one test."""
    from integrations.sheets import integration

    integration.configure(sheets_settings(fake, account))
    yield integration
    integration._settings = None


async def test_the_owner_tests_the_connection_through_the_api(client, owner, fake, sid, account, installed_sheets):
    fid, (name,) = await _form(client, owner, [{"text": "Name"}])
    iid = await _connect(client, owner, fid, sid)
    r = await client.post(f"/api/v1/forms/{fid}/integrations/{iid}/test", headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "delivered" and "Survey results" in r.json()["detail"]
    assert fake.values(sid, WS)[:2] == [["Response ID", "Submitted at", "Name"], ["response_id", "submitted_at", name]]

    for config, field, words in [({"spreadsheet": "https://example.com/spreadsheets/d/x"}, "config.spreadsheet",
                                  "spreadsheet's URL"),
                                 ({"spreadsheet": sid, "worksheet": "  "}, "config.worksheet", "worksheet"),
                                 ({"spreadsheet": sid, "worksheet": "x" * 101}, "config.worksheet", "100")]:
        r = await client.post(f"/api/v1/forms/{fid}/integrations", headers=owner.headers,
                              json={"kind": "sheets", "config": config})
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == field and words in error["message"], error

    other = fake.create_spreadsheet()  # not shared with the service account
    iid = await _connect(client, owner, fid, other)
    r = await client.post(f"/api/v1/forms/{fid}/integrations/{iid}/test", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["outcome"] == "failed" and account.email in r.json()["detail"]


# ---- through the broker: a real worker process, killed mid-append ---------------------------------------

@pytest.mark.postgres_only
async def test_a_sheets_worker_killed_mid_append_leaves_one_row_per_response(
    backend, client, owner, sessionmaker, pipeline_settings, processes, fake, account, sid
):
    env = pipeline_env(pipeline_settings, SHEETS_API_URL=fake.url, GOOGLE_TOKEN_URI=fake.token_uri,
                       GOOGLE_SERVICE_ACCOUNT_FILE=str(account.path))
    fid, (name,) = await _form(client, owner, [{"text": "Name", "mandatory": True}])
    await _connect(client, owner, fid, sid)
    fake.delay_next(1, 20.0, kind="write", path_contains=":append")  # the rows land; the answer does not
    processes.relay(env)
    worker = processes.workers(env, "sheets")
    sent = [await _submit(client, fid, {name: f"Person {i}"}) for i in range(4)]

    await wait_until(lambda: fake.spreadsheet(sid).sheet(WS) and len(data_rows(fake, sid)) == 4, timeout=30,
                     what="the append to reach the sheet")
    worker.kill()  # before it learned the outcome
    assert {r.state for r in await _rows_of(sessionmaker)} == {DeliveryState.IN_FLIGHT}

    processes.workers(env, "sheets")
    rows = await wait_until(lambda: _all_delivered(sessionmaker, 4), timeout=40, what="the redelivered batch")
    assert all(r.attempts == 2 for r in rows)  # the second claim reconciled by Response ID
    assert sorted(r[0] for r in data_rows(fake, sid)) == sorted(s["id"] for s in sent)
    assert len(calls(fake, sid, suffix=":append")) == 1


async def _rows_of(sessionmaker) -> list[Delivery]:
    async with sessionmaker() as s:
        return list(await s.scalars(select(Delivery)))


async def _all_delivered(sessionmaker, n: int) -> list[Delivery] | None:
    rows = await _rows_of(sessionmaker)
    return rows if len(rows) == n and all(r.state == DeliveryState.DELIVERED for r in rows) else None


async def test_a_busy_sheet_costs_one_read_a_batch_and_a_deleted_worksheet_comes_back(fake, sheets, sid):
    """Google allows 60 reads a minute: after the first batch only the ids are read. A worksheet
    the owner deleted (or columns they removed) in the meantime is noticed and made again."""
    name = q("Name")
    form = form_of(name)
    assert_all(await sheets.handle([work(sid, form, event(form, {name.id: "first"}))]), Outcome.DELIVERED)
    reads_before = len(calls(fake, sid, kind="read"))
    assert_all(await sheets.handle([work(sid, form, event(form, {name.id: "second"}))]), Outcome.DELIVERED)
    assert len(calls(fake, sid, kind="read")) == reads_before + 1
    assert [r[2] for r in data_rows(fake, sid)] == ["first", "second"]

    with fake._lock:  # the owner deletes the worksheet in Google's UI
        book = fake._spreadsheets[sid]
        book.sheets = [s for s in book.sheets if s.title != WS]
    assert_all(await sheets.handle([work(sid, form, event(form, {name.id: "third"}))]), Outcome.DELIVERED)
    assert [r[2] for r in data_rows(fake, sid)] == ["third"]
    assert fake.values(sid, WS)[0][2] == "Name"  # a new header

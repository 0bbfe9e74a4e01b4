"""Google Sheets: one row per response in a worksheet the owner shares with our service account.

Layout of the worksheet (the worker manages rows 1 and 2; the owner should not edit them):

    row 1   Response ID | Submitted at | <question text> | <question text> | ...    (frozen)
    row 2   response_id | submitted_at | <question id>   | <question id>   | ...    (hidden)
    row 3+  one row per response

Columns are keyed by the ids in the hidden row 2, never by position or title, so the sheet itself
is the only state (nothing is stored on our side, and the owner may reorder columns). A new
question appends a column at the end; a renamed question relabels its row-1 cell; an archived
question keeps its column. A worksheet that holds other data (no id row) is refused, never
overwritten; a missing worksheet is created.

Delivery. Each batch is grouped by (spreadsheet, worksheet) and done under a per-sheet lock:
1. read the sheet's properties, and rows 1-2 plus column A (the Response IDs) in one batchGet;
2. plan: a response whose ID is not in column A gets a new row; `response.updated` rewrites its
   row; `response.deleted` marks it by writing "[deleted] <id>" into its Response ID cell (the
   answers stay, visibly marked). Deleted is final: a later or late-arriving event for that
   response changes nothing. An event for a response not in the sheet yet appends the response
   as the event describes it, so events delivered out of order still leave exactly one row;
3. write: widen the grid if needed (batchUpdate), header and changed rows (one values:batchUpdate),
   then every new row in ONE values:append (valueInputOption=RAW, insertDataOption=INSERT_ROWS).
Because step 1 always looks the Response IDs up, a retried append never makes a second row, whether
or not the earlier attempt's outcome was known (the handler does not even need `previous_claim_at`).
For the same reason a failure after a write (5xx, a timeout) is retried here and then reported as
RETRY, not UNKNOWN: the next attempt reconciles by itself. 429 and 5xx are retried in place with
jittered exponential backoff (bounded, honouring Retry-After); past that bound the batch goes back to
the engine's retry tiers. Requests are paced per service account to stay under Google's 60 writes
(and 60 reads) per minute per user (`SHEETS_WRITES_PER_MINUTE`, see sheets_client.py).

Known limit: two `response.updated` events for one response delivered in reverse order (the newer
in an earlier batch) leave the older content; within a batch events are applied in occurred order.
Only one worker process should write a given sheet at a time (the lock is per process).

Values. Everything is written with valueInputOption=RAW, which Sheets never parses: a text answer
"=IMPORTXML(...)", "+1 202 555 0143", "-5" or "@home" is stored and shown exactly as typed and never
evaluated. We do not prefix such values with an apostrophe: with RAW the apostrophe would be stored
and shown as part of the answer (and every E.164 phone number would carry one). Number and rating
answers are written as numbers; everything else as the answer's text (multiple choices joined with
", ", yes/no as "Yes"/"No"). Text over Google's 50,000-character cell limit is cut to fit and ends
with a visible "… [truncated: N characters in full]". Submitted at is UTC, "YYYY-MM-DD HH:MM:SS UTC".
(A CSV downloaded from the sheet and opened in a desktop spreadsheet is outside this protection.)
"""

from __future__ import annotations

import asyncio
import random
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
import structlog
from msgspec import Meta

from integrations.sheets_client import Account, Permanent, SheetsError, Transient, account_for
from webapp.forms.models import QuestionKind
from webapp.outbox.events import RESPONSE_DELETED, RESPONSE_SUBMITTED, RESPONSE_UPDATED
from webapp.plugins import FieldError, FormContext, Outcome, Result, SettingsAware, Work
from webapp.settings import Settings

log = structlog.get_logger("integrations.sheets")

CELL_LIMIT = 50_000
DELETED_MARK = "[deleted] "
FIXED_COLUMNS = (("response_id", "Response ID"), ("submitted_at", "Submitted at"))
HEADER_ROWS = 2
NEW_SHEET_ROWS = 1000
NEW_SHEET_COLUMNS = 26
MAX_WORKSHEET = 100
EVENT_TYPES = (RESPONSE_SUBMITTED, RESPONSE_UPDATED, RESPONSE_DELETED)
ID_RE = re.compile(r"[A-Za-z0-9_-]{20,200}")
URL_ID_RE = re.compile(r"/spreadsheets/(?:u/\d+/)?d/([A-Za-z0-9_-]+)")
NUMERIC_KINDS = (QuestionKind.NUMBER.value, QuestionKind.RATING.value)
MAX_EXACT_INT = 2**53  # Sheets stores doubles: larger whole numbers go in as text, digit for digit


class SheetsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    spreadsheet: Annotated[str, Meta(min_length=1, max_length=500, description=(
        "The spreadsheet's URL (https://docs.google.com/spreadsheets/d/…) or its id."))]
    worksheet: Annotated[str, Meta(min_length=1, max_length=MAX_WORKSHEET, description=(
        "The worksheet (tab) to write to; created if it does not exist."))] = "Responses"

    def __post_init__(self) -> None:
        self.spreadsheet = self.spreadsheet.strip()
        self.worksheet = self.worksheet.strip()


def spreadsheet_id(value: str) -> str | None:
    """The id from a spreadsheet URL or a bare id; None when it is neither."""
    value = value.strip()
    if "/" in value:
        parts = urlsplit(value if "://" in value else "https://" + value)
        found = URL_ID_RE.search(parts.path)
        if parts.hostname != "docs.google.com" or found is None:
            return None
        value = found.group(1)
    return value if ID_RE.fullmatch(value) else None


def quote_sheet(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def col_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def clip(text: str) -> str:
    """Fit Google's per-cell limit, visibly: the end of the cell says how long the answer was."""
    if len(text) <= CELL_LIMIT:
        return text
    marker = f"… [truncated: {len(text):,} characters in full]"
    return text[: CELL_LIMIT - len(marker)] + marker


def answer_cell(answer: dict[str, Any]) -> Any:
    value, text = answer.get("value"), answer.get("text")
    if (answer.get("kind") in NUMERIC_KINDS and isinstance(value, int | float) and not isinstance(value, bool)
            and abs(value) < MAX_EXACT_INT):
        return value
    if text is None:
        text = "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return clip(str(text))


def submitted_cell(value: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return clip(str(value or ""))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def id_cell(response_id: str, deleted: bool) -> str:
    return DELETED_MARK + response_id if deleted else response_id


# ---- one sheet's state and the plan for a batch ---------------------------------------------------

@dataclass(frozen=True)
class Target:
    spreadsheet_id: str
    worksheet: str

    @property
    def quoted(self) -> str:
        return quote_sheet(self.worksheet)


@dataclass
class SheetState:
    sheet_id: int
    title: str  # the spreadsheet's
    col_count: int
    titles: list[str]
    keys: list[str]
    rows: dict[str, tuple[int, bool]]  # response id -> (1-based row number, deleted)
    fresh: bool  # no header yet


@dataclass
class PendingRow:
    response_id: str
    submitted_at: str
    deleted: bool
    answers: list[dict[str, Any]] | None  # None: keep what the sheet has (a deletion mark only)


@dataclass
class Plan:
    keys: list[str]
    titles: list[str]
    header_changed: bool
    appends: list[PendingRow] = field(default_factory=list)
    changes: dict[str, tuple[int, PendingRow]] = field(default_factory=dict)  # response id -> (row, content)
    # Per work item: ("append", index) | ("change", response id) | ("row", row number, detail) | Result
    outcomes: dict[int, Any] = field(default_factory=dict)


def _occurred(work: Work) -> str:
    return str(work.event.get("occurred_at") or "")


def _header_keys(state: SheetState, forms: Sequence[FormContext], works: Sequence[Work]) -> tuple[list[str], list[str]]:
    """Existing columns keep their place; new questions are added at the end, in display order."""
    titles_by_key: dict[str, str] = dict(FIXED_COLUMNS)
    wanted: list[str] = [k for k, _ in FIXED_COLUMNS]
    for form in sorted(forms, key=lambda f: f.version):  # the newest version's titles win
        for q in form.questions:
            titles_by_key[str(q.id)] = q.text
    for form in forms:
        wanted += [str(q.id) for q in form.questions if not q.archived]
    for work in works:
        wanted += [str(a.get("question_id")) for a in work.event.get("answers") or [] if a.get("question_id")]
    keys = list(state.keys)
    present = set(keys)
    for key in wanted:
        if key not in present:
            keys.append(key)
            present.add(key)
    titles = list(state.titles) + [""] * (len(keys) - len(state.titles))
    for i, key in enumerate(keys):
        titles[i] = titles_by_key.get(key) or titles[i] or f"Question {key}"
    return keys, titles[: len(keys)]


def plan_batch(state: SheetState, works: Sequence[Work], forms: Sequence[FormContext]) -> Plan:
    keys, titles = _header_keys(state, forms, works)
    plan = Plan(keys=keys, titles=titles,
                header_changed=state.fresh or keys != state.keys or titles != state.titles[: len(keys)])
    pending: dict[str, int] = {}
    for i in sorted(range(len(works)), key=lambda i: _occurred(works[i])):
        event = works[i].event
        kind, rid = event.get("type"), str(event.get("response_id") or "")
        if kind not in EVENT_TYPES or not rid:
            plan.outcomes[i] = Result(Outcome.FAILED, f"The Sheets integration cannot deliver a {kind!r} event.")
            continue
        answers = None if kind == RESPONSE_DELETED else list(event.get("answers") or [])
        deleting = kind == RESPONSE_DELETED
        if rid in pending:
            row = plan.appends[pending[rid]]
            if deleting:
                row.deleted = True
            elif kind == RESPONSE_UPDATED and not row.deleted:
                row.answers = answers
            plan.outcomes[i] = ("append", pending[rid])
        elif rid in state.rows:
            number, deleted = state.rows[rid]
            change = plan.changes.get(rid)
            if deleted or (change is not None and change[1].deleted):
                plan.outcomes[i] = ("row", number, "already marked deleted")
            elif kind == RESPONSE_SUBMITTED:
                plan.outcomes[i] = ("row", number, "already in the sheet")
            else:
                content = change[1] if change else PendingRow(rid, submitted_cell(event.get("submitted_at")),
                                                              False, None)
                content.deleted = deleting
                if not deleting:
                    content.answers = answers
                plan.changes[rid] = (number, content)
                plan.outcomes[i] = ("change", rid)
        else:
            pending[rid] = len(plan.appends)
            plan.appends.append(PendingRow(rid, submitted_cell(event.get("submitted_at")), deleting, answers))
            plan.outcomes[i] = ("append", pending[rid])
    return plan


def row_values(row: PendingRow, keys: Sequence[str]) -> list[Any]:
    values: list[Any] = [""] * len(keys)
    where = {k: i for i, k in enumerate(keys)}
    values[0], values[1] = id_cell(row.response_id, row.deleted), row.submitted_at
    for answer in row.answers or []:
        col = where.get(str(answer.get("question_id")))
        if col is not None and col >= len(FIXED_COLUMNS):
            values[col] = answer_cell(answer)
    return values


# ---- the integration ------------------------------------------------------------------------------

class SheetsIntegration(SettingsAware):
    kind = "sheets"
    title = "Google Sheets"
    config_schema = SheetsConfig
    # Up to one read and one write per batch at Google's 60 a minute: a batch must carry a second's rows
    # at the rate we aim to keep up with (hundreds a second); one append of 500 rows is well within
    # the API's request limits.
    batch_size = 500

    # Retries inside one `handle` call, before the batch goes back to the engine's retry tiers.
    max_tries = 8
    backoff_base = 0.5  # seconds; doubled per try, with full jitter in its upper half
    backoff_cap = 8.0
    max_inline_wait = 30.0  # a longer Retry-After is left to the engine
    quota_period = 60.0  # Google's quota window; tests shrink it along with the fake's
    time_budget = 0.6  # share of the engine's handler timeout one `handle` call may use

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Target, asyncio.Lock]] = (
            weakref.WeakKeyDictionary())
        # What the last sync of a worksheet learnt of its layout (sheet id, the spreadsheet's title,
        # column count), so the next one reads only the ids: one read a sync instead of two, which
        # halves how often Google's read quota lets a busy sheet sync. Forgotten on any error.
        self._layouts: dict[Target, tuple[int, str, int]] = {}

    # -- protocol --

    def validate_config(self, config: SheetsConfig, form: FormContext) -> list[FieldError]:
        errors = []
        if spreadsheet_id(config.spreadsheet) is None:
            errors.append(FieldError("config.spreadsheet", "Enter the spreadsheet's URL "
                                     "(https://docs.google.com/spreadsheets/d/…) or its id."))
        if not config.worksheet:
            errors.append(FieldError("config.worksheet", "Enter the worksheet (tab) name."))
        elif any(ord(ch) < 32 for ch in config.worksheet):
            errors.append(FieldError("config.worksheet", "The worksheet name cannot contain control characters."))
        return errors

    def required_questions(self, config: SheetsConfig) -> Sequence[UUID]:
        return ()

    async def handle(self, batch: Sequence[Work]) -> list[Result]:
        results: list[Result | None] = [None] * len(batch)
        groups: dict[Target, list[int]] = {}
        for i, work in enumerate(batch):
            sid = spreadsheet_id(getattr(work.config, "spreadsheet", ""))
            if sid is None or not getattr(work.config, "worksheet", ""):
                results[i] = Result(Outcome.FAILED, "The spreadsheet setting is not a Google Sheets URL or id.")
                continue
            groups.setdefault(Target(sid, work.config.worksheet), []).append(i)
        if groups:
            try:
                account = account_for(self.settings, quota_period=self.quota_period)
            except Permanent as exc:
                for indexes in groups.values():
                    for i in indexes:
                        results[i] = Result(Outcome.FAILED, exc.message)
                groups = {}
            deadline = self._deadline()
            for target, indexes in groups.items():
                works = [batch[i] for i in indexes]
                if asyncio.get_running_loop().time() >= deadline:
                    # Quota pacing took the time this call may use: the engine brings these back.
                    done = [Result(Outcome.RETRY, "Not started in this pass: requests are paced to stay under "
                                                  "Google's per-minute quota.", retry_after=self.quota_period / 4)]
                    done *= len(works)
                else:
                    done = await self._deliver(account, target, works, deadline)
                for i, result in zip(indexes, done, strict=True):
                    results[i] = result
        return [r or Result(Outcome.FAILED, "not delivered") for r in results]

    async def send_test(self, config: SheetsConfig, form: FormContext) -> Result:
        """Check access, create the worksheet if needed and write the header; no response row."""
        sid = spreadsheet_id(config.spreadsheet)
        if sid is None:
            return Result(Outcome.FAILED, "The spreadsheet setting is not a Google Sheets URL or id.")
        try:
            account = account_for(self.settings, quota_period=self.quota_period)
        except Permanent as exc:
            return Result(Outcome.FAILED, exc.message)
        target = Target(sid, config.worksheet)
        self._layouts.pop(target, None)  # a test looks at the sheet as it is now
        # The API gives a test 30 s in all; leave room for its own bookkeeping.
        outcome = await self._with_retries(account, target, [], [form], self._deadline(limit=20.0))
        if isinstance(outcome, Result):
            return outcome
        state, _ = outcome
        return Result(Outcome.DELIVERED,
                      f"Connected to “{state.title}” as {account.email}: worksheet “{target.worksheet}” has "
                      f"the header row ({len(state.keys)} columns). Responses will be added below it.",
                      external_ref=f"{target.worksheet}!A1")

    # -- delivery --

    def _deadline(self, limit: float | None = None) -> float:
        """Finish well inside the engine's handler timeout: past it a call counts as unknown."""
        budget = getattr(self.settings, "delivery_handler_timeout", 60.0) * self.time_budget
        return asyncio.get_running_loop().time() + min(budget, limit or budget)

    def _lock(self, target: Target) -> asyncio.Lock:
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(target, asyncio.Lock())

    async def _deliver(self, account: Account, target: Target, works: list[Work], deadline: float) -> list[Result]:
        forms = list({w.form.form_id: w.form for w in sorted(works, key=lambda w: w.form.version)}.values())
        outcome = await self._with_retries(account, target, works, forms, deadline)
        if isinstance(outcome, Result):
            return [outcome] * len(works)
        return outcome[1]

    async def _with_retries(
        self, account: Account, target: Target, works: list[Work], forms: list[FormContext], deadline: float
    ) -> tuple[SheetState, list[Result]] | Result:
        loop = asyncio.get_running_loop()
        last: Transient | None = None
        tries = 0
        for attempt in range(self.max_tries):
            tries = attempt + 1
            try:
                async with self._lock(target):
                    return await self._sync(account, target, works, forms, deadline)
            except Permanent as exc:
                if self._layouts.pop(target, None) is not None:
                    continue  # perhaps the layout changed since (a worksheet renamed, columns removed): look again
                log.warning("sheets_failed", spreadsheet=target.spreadsheet_id, status=exc.status, error=exc.message)
                return Result(Outcome.FAILED, exc.message)
            except Transient as exc:
                self._layouts.pop(target, None)
                last = exc
                delay = self._backoff(attempt, exc.retry_after)
                log.info("sheets_backoff", spreadsheet=target.spreadsheet_id, status=exc.status, attempt=attempt + 1,
                         delay=round(delay, 2))
                if attempt + 1 == self.max_tries or delay > self.max_inline_wait or loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
            except Exception as exc:  # a bug or an answer we did not expect: never fail the whole batch loudly
                self._layouts.pop(target, None)
                log.exception("sheets_unexpected_error", spreadsheet=target.spreadsheet_id)
                return Result(Outcome.RETRY, f"Unexpected error while writing to Google Sheets ({type(exc).__name__}).")
        assert last is not None
        return Result(Outcome.RETRY, f"{last.message} (tried {tries} time{'s' if tries > 1 else ''}; the next attempt checks "
                                     "the sheet first, so nothing is written twice)", retry_after=last.retry_after)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2**attempt)
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after + random.uniform(0, min(1.0, retry_after / 4 + 0.1)))
        return delay

    async def _sync(
        self, account: Account, target: Target, works: list[Work], forms: list[FormContext], deadline: float
    ) -> tuple[SheetState, list[Result]]:
        state = await self._read(account, target, deadline)
        plan = plan_batch(state, works, forms)
        await self._widen(account, target, state, len(plan.keys), deadline)
        data: list[dict[str, Any]] = []
        last_col = col_letter(len(plan.keys) - 1)
        if plan.header_changed:
            data.append({"range": f"{target.quoted}!A1:{last_col}{HEADER_ROWS}", "values": [plan.titles, plan.keys]})
        for number, content in plan.changes.values():
            if content.answers is None:  # only the deletion mark
                data.append({"range": f"{target.quoted}!A{number}", "values": [[id_cell(content.response_id, True)]]})
            else:
                data.append({"range": f"{target.quoted}!A{number}:{last_col}{number}",
                             "values": [row_values(content, plan.keys)]})
        if data:
            await account.call("write", account.http.values_batch_update, target.spreadsheet_id,
                               {"valueInputOption": "RAW", "data": data}, deadline=deadline)
        first_row = 0
        if plan.appends:
            reply = await account.call(
                "write", account.http.values_append, target.spreadsheet_id, f"{target.quoted}!A1",
                {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"},
                {"majorDimension": "ROWS", "values": [row_values(r, plan.keys) for r in plan.appends]},
                deadline=deadline)
            first_row = _first_row(reply)
        state.keys, state.titles = plan.keys, plan.titles
        self._layouts[target] = (state.sheet_id, state.title, state.col_count)
        return state, [self._result(plan, i, target, first_row) for i in range(len(works))]

    @staticmethod
    def _result(plan: Plan, i: int, target: Target, first_row: int) -> Result:
        outcome = plan.outcomes[i]
        if isinstance(outcome, Result):
            return outcome
        if outcome[0] == "append":
            number = first_row + outcome[1]
            return Result(Outcome.DELIVERED, f"added as row {number}", external_ref=f"{target.worksheet}!A{number}")
        if outcome[0] == "change":
            number, content = plan.changes[outcome[1]]
            what = "marked deleted" if content.deleted else "updated"
            return Result(Outcome.DELIVERED, f"{what} in row {number}", external_ref=f"{target.worksheet}!A{number}")
        _, number, detail = outcome
        return Result(Outcome.DELIVERED, f"{detail} (row {number})", external_ref=f"{target.worksheet}!A{number}")

    async def _read(self, account: Account, target: Target, deadline: float) -> SheetState:
        layout = self._layouts.get(target)
        if layout is None:
            layout, created = await self._read_layout(account, target, deadline)
            if created:
                return SheetState(*layout, [], [], {}, True)
        sheet_id, book_title, col_count = layout
        got = await account.call(
            "read", account.http.values_batch_get, target.spreadsheet_id,
            [f"{target.quoted}!1:{HEADER_ROWS}", f"{target.quoted}!A{HEADER_ROWS + 1}:A"],
            {"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"}, deadline=deadline)
        header, column = (r.get("values", []) for r in got["valueRanges"])
        titles = [str(v) for v in (header[0] if header else [])]
        keys = [str(v) for v in (header[1] if len(header) > 1 else [])]
        ids = [str(row[0]) if row else "" for row in column]
        fixed = [k for k, _ in FIXED_COLUMNS]
        ours = titles[: len(fixed)] == [t for _, t in FIXED_COLUMNS] or keys[: len(fixed)] == fixed
        if (not keys and (any(titles) or any(ids))) or (keys and not ours):
            raise Permanent(f"The worksheet “{target.worksheet}” already holds data that Formwright did not "
                            "write. Choose an empty worksheet or a new name (it will be created).")
        if keys and (keys[: len(fixed)] != fixed or len(set(keys)) != len(keys)):
            raise Permanent(f"Row 2 of the worksheet “{target.worksheet}” (hidden; it maps columns to questions) "
                            "was changed. Restore it, or send responses to a new worksheet.")
        rows: dict[str, tuple[int, bool]] = {}
        for offset, cell in enumerate(ids):
            deleted = cell.startswith(DELETED_MARK)
            rid = cell.removeprefix(DELETED_MARK).strip()
            if rid:
                rows.setdefault(rid, (HEADER_ROWS + 1 + offset, deleted))
        return SheetState(sheet_id, book_title, col_count, titles, keys, rows, fresh=not keys)

    async def _read_layout(self, account: Account, target: Target, deadline: float,
                           ) -> tuple[tuple[int, str, int], bool]:
        """(sheet id, the spreadsheet's title, column count), creating the worksheet if it is missing
        (then True: it is empty)."""
        meta = await account.call("read", account.http.fetch_sheet_metadata, target.spreadsheet_id,
                                  {"includeGridData": "false", "fields": "properties.title,sheets.properties"},
                                  deadline=deadline)
        props = next((s["properties"] for s in meta.get("sheets", [])
                      if s.get("properties", {}).get("title") == target.worksheet), None)
        book_title = str(meta.get("properties", {}).get("title", ""))
        if props is not None:
            return (props["sheetId"], book_title, props.get("gridProperties", {}).get("columnCount", 0)), False
        reply = await account.call("write", account.http.batch_update, target.spreadsheet_id, {"requests": [
            {"addSheet": {"properties": {"title": target.worksheet, "gridProperties": {
                "rowCount": NEW_SHEET_ROWS, "columnCount": NEW_SHEET_COLUMNS}}}}]}, deadline=deadline)
        props = reply["replies"][0]["addSheet"]["properties"]
        log.info("sheets_worksheet_created", spreadsheet=target.spreadsheet_id, worksheet=target.worksheet)
        return (props["sheetId"], book_title, props["gridProperties"]["columnCount"]), True

    async def _widen(self, account: Account, target: Target, state: SheetState, columns: int, deadline: float,
                     ) -> None:
        """Add grid columns the header needs; on a new header, freeze row 1 and hide the id row."""
        requests: list[dict[str, Any]] = []
        if columns > state.col_count:
            requests.append({"appendDimension": {"sheetId": state.sheet_id, "dimension": "COLUMNS",
                                                 "length": columns - state.col_count}})
        if state.fresh:
            requests += [
                {"updateSheetProperties": {"properties": {"sheetId": state.sheet_id,
                                                          "gridProperties": {"frozenRowCount": HEADER_ROWS}},
                                           "fields": "gridProperties.frozenRowCount"}},
                {"updateDimensionProperties": {
                    "range": {"sheetId": state.sheet_id, "dimension": "ROWS", "startIndex": 1, "endIndex": 2},
                    "properties": {"hiddenByUser": True}, "fields": "hiddenByUser"}},
            ]
        if requests:
            await account.call("write", account.http.batch_update, target.spreadsheet_id, {"requests": requests},
                               deadline=deadline)
            state.col_count = max(state.col_count, columns)


def _first_row(reply: dict[str, Any]) -> int:
    """The first row number of a values:append's updatedRange, e.g. 'Responses'!A4:F9 -> 4."""
    updated = str(reply.get("updates", {}).get("updatedRange", ""))
    found = re.search(r"![A-Z]+(\d+)", updated)
    if found is None:
        raise Transient(f"Google Sheets answered an append without the rows it wrote ({updated!r}).",
                        ambiguous=True)
    return int(found.group(1))


integration = SheetsIntegration()

__all__ = ("SheetsConfig", "SheetsError", "SheetsIntegration", "integration", "spreadsheet_id")

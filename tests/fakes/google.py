"""A fake Google Sheets API v4 and OAuth 2.0 token endpoint: a real HTTP server on 127.0.0.1.

The real gspread and google-auth clients talk to it (point `SHEETS_API_URL` and `GOOGLE_TOKEN_URI`
at `fake.url` and `fake.token_uri`). It speaks the real shapes:

- POST /token  form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`; the
  RS256 assertion is verified against the registered service account's public key.
- GET  /v4/spreadsheets/{id}                       spreadsheets.get (sheet properties, no grid data)
- POST /v4/spreadsheets/{id}:batchUpdate           addSheet, appendDimension, updateDimensionProperties,
                                                   updateSheetProperties (all or nothing)
- GET  /v4/spreadsheets/{id}/values/{range}        values.get
- GET  /v4/spreadsheets/{id}/values:batchGet       values.batchGet
- PUT  /v4/spreadsheets/{id}/values/{range}        values.update
- POST /v4/spreadsheets/{id}/values/{range}:append values.append (INSERT_ROWS or OVERWRITE)
- POST /v4/spreadsheets/{id}/values:batchUpdate    values.batchUpdate
- POST /v4/spreadsheets/{id}/values/{range}:clear  values.clear

Cells live in memory per spreadsheet and worksheet (`fake.values(sid, "Sheet1")`). Every request is
recorded (`fake.requests`). Like Google it enforces a per-user quota of reads and writes per minute
(answering 429 RESOURCE_EXHAUSTED beyond it) and remembers the most requests any account made in one
window (`fake.max_in_window(email, "write")`). Switches: `fail_next` (429 with Retry-After, 500, ...),
`delay_next` (the change is applied, the answer is late), `deny` (a permanent 403 or 404).

Simplifications: `fields` masks are ignored (whole objects are returned); a "table" for append is the
whole sheet (new rows go under the last non-empty row); formulas are never evaluated, only marked.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.fakes.service_account import GOOGLE_TOKEN_URI, ServiceAccount

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SHEETS_SCOPES = {
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.file",
}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}
DEFAULT_MESSAGES = {
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' "
         "of service 'sheets.googleapis.com' for consumer 'project_number:000000000000'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}


class Formula(str):
    """A cell Sheets would evaluate (written as USER_ENTERED text starting with '=')."""


@dataclass
class Sheet:
    sheet_id: int
    title: str
    index: int
    row_count: int = 1000
    col_count: int = 26
    frozen_rows: int = 0
    hidden_rows: set[int] = field(default_factory=set)  # 0-based
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)  # (row, col), 0-based

    def properties(self) -> dict[str, Any]:
        grid: dict[str, Any] = {"rowCount": self.row_count, "columnCount": self.col_count}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        return {"sheetId": self.sheet_id, "title": self.title, "index": self.index, "sheetType": "GRID",
                "gridProperties": grid}

    def last_row(self) -> int:
        """0-based index of the last row holding any value, -1 when empty."""
        return max((r for (r, _c), v in self.cells.items() if v not in (None, "")), default=-1)

    def grid(self) -> list[list[Any]]:
        """All values as rows, trailing empty cells and rows trimmed (like values.get)."""
        rows: list[list[Any]] = []
        for r in range(self.last_row() + 1):
            row = [self.cells.get((r, c), "") for c in range(self.col_count)]
            while row and row[-1] in (None, ""):
                row.pop()
            rows.append(row)
        return rows


@dataclass
class Spreadsheet:
    id: str
    title: str
    sheets: list[Sheet]
    shared_with: set[str]
    next_sheet_id: int = 1

    def sheet(self, title: str | None) -> Sheet | None:
        if title is None:
            return min(self.sheets, key=lambda s: s.index) if self.sheets else None
        return next((s for s in self.sheets if s.title == title), None)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # decoded
    query: dict[str, list[str]]
    body: Any
    kind: str  # token | read | write
    account: str | None
    status: int
    at: float  # time.monotonic() at arrival


@dataclass
class _Fault:
    kind: str  # read | write | any | token
    remaining: int
    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0
    message: str = ""
    path_contains: str = ""  # only requests whose decoded path contains this


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# ---- A1 notation ---------------------------------------------------------------------------------

_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


def col_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def col_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def quote_title(title: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_]+", title) and not _CELL.fullmatch(title):
        return title
    return "'" + title.replace("'", "''") + "'"


@dataclass(frozen=True)
class A1:
    title: str | None
    r1: int = 0
    c1: int = 0
    r2: int | None = None  # inclusive; None: to the end of the sheet
    c2: int | None = None


def parse_a1(text: str) -> A1:
    text = text.strip()
    title: str | None = None
    cells = text
    if text.startswith("'"):
        end = 1
        buf = ""
        while end < len(text):
            if text[end] == "'":
                if end + 1 < len(text) and text[end + 1] == "'":
                    buf += "'"
                    end += 2
                    continue
                break
            buf += text[end]
            end += 1
        else:
            raise ApiError(400, f"Unable to parse range: {text}")
        title = buf
        rest = text[end + 1:]
        if rest and not rest.startswith("!"):
            raise ApiError(400, f"Unable to parse range: {text}")
        cells = rest[1:]
    elif "!" in text:
        title, cells = text.split("!", 1)
    else:
        # A bare word is a sheet name unless it looks like a cell reference.
        if not all(_CELL.fullmatch(p) for p in text.split(":")) or not text:
            title, cells = text, ""
    if not cells:
        return A1(title)
    parts = cells.split(":")
    if len(parts) > 2 or not all(_CELL.fullmatch(p) and p for p in parts):
        raise ApiError(400, f"Unable to parse range: {text}")
    (l1, n1) = _CELL.fullmatch(parts[0]).groups()  # type: ignore[union-attr]
    (l2, n2) = _CELL.fullmatch(parts[-1]).groups()  # type: ignore[union-attr]
    r1 = int(n1) - 1 if n1 else 0
    c1 = col_index(l1) if l1 else 0
    if len(parts) == 1:
        return A1(title, r1, c1, r1 if n1 else None, c1 if l1 else None)
    return A1(title, r1, c1, int(n2) - 1 if n2 else None, col_index(l2) if l2 else None)


def format_a1(title: str, r1: int, c1: int, r2: int, c2: int) -> str:
    start = f"{col_letter(c1)}{r1 + 1}"
    end = f"{col_letter(c2)}{r2 + 1}"
    return f"{quote_title(title)}!{start}" + ("" if (r1, c1) == (r2, c2) else f":{end}")


# ---- the server ------------------------------------------------------------------------------------

class FakeGoogle:
    """Start with `with FakeGoogle() as fake:` or `fake.start()` / `fake.stop()`."""

    def __init__(self, *, read_quota: int = 60, write_quota: int = 60, quota_window: float = 60.0) -> None:
        self.read_quota = read_quota
        self.write_quota = write_quota
        self.quota_window = quota_window
        self.requests: list[Recorded] = []
        self.quota_rejections = 0
        self._lock = threading.RLock()
        self._accounts: dict[str, Any] = {}  # email -> public key
        self._tokens: dict[str, tuple[str, set[str]]] = {}  # token -> (email, scopes)
        self._spreadsheets: dict[str, Spreadsheet] = {}
        self._denied: dict[str, tuple[int, str]] = {}
        self._faults: deque[_Fault] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-google", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    # -- test set-up --

    def register_account(self, account: ServiceAccount) -> None:
        key = serialization.load_pem_public_key(account.public_key_pem)
        with self._lock:
            self._accounts[account.email] = key

    def create_spreadsheet(
        self, title: str = "Responses", *, sheets: Iterable[str] = ("Sheet1",), share_with: Iterable[str] = ()
    ) -> str:
        sid = secrets.token_urlsafe(33)[:44]
        book = Spreadsheet(sid, title, [], set(share_with))
        for i, name in enumerate(sheets):
            book.sheets.append(Sheet(sheet_id=0 if i == 0 else book.next_sheet_id, title=name, index=i))
            if i:
                book.next_sheet_id += 1
        with self._lock:
            self._spreadsheets[sid] = book
        return sid

    def share(self, sid: str, email: str) -> None:
        with self._lock:
            self._spreadsheets[sid].shared_with.add(email)

    def deny(self, sid: str, status: int = 403, message: str = "") -> None:
        """Every request for this spreadsheet fails with `status` until `allow` (permanent errors)."""
        with self._lock:
            self._denied[sid] = (status, message or DEFAULT_MESSAGES.get(status, "Denied"))

    def allow(self, sid: str) -> None:
        with self._lock:
            self._denied.pop(sid, None)

    def fail_next(
        self, n: int, status: int = 429, *, kind: str = "any", retry_after: float | None = None, message: str = "",
        path_contains: str = "",
    ) -> None:
        """The next `n` requests of `kind` (read, write, any, token) answer `status`; nothing changes."""
        with self._lock:
            self._faults.append(_Fault(kind, n, status=status, retry_after=retry_after, message=message,
                                       path_contains=path_contains))

    def delay_next(self, n: int, seconds: float, *, kind: str = "write", path_contains: str = "") -> None:
        """The next `n` requests of `kind` (e.g. path_contains=":append") take effect at once but answer
        `seconds` later: a client that gives up first cannot know its change was made."""
        with self._lock:
            self._faults.append(_Fault(kind, n, delay=seconds, path_contains=path_contains))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- inspection --

    def spreadsheet(self, sid: str) -> Spreadsheet:
        with self._lock:
            return copy.deepcopy(self._spreadsheets[sid])

    def sheet(self, sid: str, title: str) -> Sheet:
        book = self.spreadsheet(sid)
        found = book.sheet(title)
        assert found is not None, f"no worksheet {title!r} in {sid}"
        return found

    def values(self, sid: str, title: str) -> list[list[Any]]:
        """The worksheet's cells as rows (trailing blanks trimmed), as Sheets would store them."""
        return self.sheet(sid, title).grid()

    def formulas(self, sid: str, title: str) -> list[tuple[int, int, str]]:
        """Cells Sheets would evaluate as formulas, as (row, col, text), 0-based."""
        return [(r, c, str(v)) for (r, c), v in self.sheet(sid, title).cells.items() if isinstance(v, Formula)]

    def recorded(self, *, kind: str | None = None, method: str | None = None, path_suffix: str = "",
                 status: int | None = None) -> list[Recorded]:
        with self._lock:
            items = list(self.requests)
        return [r for r in items if (kind is None or r.kind == kind) and (method is None or r.method == method)
                and r.path.endswith(path_suffix) and (status is None or r.status == status)]

    def max_in_window(self, account: str, kind: str = "write", window: float | None = None) -> int:
        """The most requests of `kind` this account made within any `window` seconds."""
        window = self.quota_window if window is None else window
        times = sorted(r.at for r in self.recorded(kind=kind) if r.account == account)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- request handling (called from the server's threads) --

    def _take_fault(self, kind: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.remaining > 0 and (fault.kind == kind or (fault.kind == "any" and kind != "token")):
                    fault.remaining -= 1
                    return fault
            return None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _over_quota(self, account: str, kind: str, now: float) -> bool:
        quota = self.write_quota if kind == "write" else self.read_quota
        with self._lock:
            recent = [r for r in self.requests if r.account == account and r.kind == kind
                      and now - r.at < self.quota_window]
        return len(recent) >= quota  # this request would be one too many

    def _account_for(self, authorization: str | None) -> tuple[str, set[str]]:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "Request is missing required authentication credential. Expected OAuth 2 access "
                                "token, login cookie or other valid authentication credential.")
        with self._lock:
            found = self._tokens.get(authorization[7:])
        if found is None:
            raise ApiError(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                "login cookie or other valid authentication credential.")
        return found

    def issue_token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        if form.get("grant_type", [""])[0] != JWT_BEARER:
            raise _OAuthError("unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", [""])[0])
        assertion = form.get("assertion", [""])[0]
        try:
            head_b64, body_b64, sig_b64 = assertion.split(".")
            header = json.loads(_b64d(head_b64))
            claims = json.loads(_b64d(body_b64))
            signature = _b64d(sig_b64)
        except ValueError:
            raise _OAuthError("invalid_request", "Invalid JWT: malformed assertion.") from None
        with self._lock:
            key = self._accounts.get(claims.get("iss", ""))
        if header.get("alg") != "RS256":
            raise _OAuthError("invalid_grant", "Invalid JWT: alg must be RS256.")
        if key is None:
            raise _OAuthError("invalid_grant", "Invalid grant: account not found")
        try:
            key.verify(signature, f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise _OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, self.token_uri):
            raise _OAuthError("invalid_grant", "Invalid JWT: Failed audience check.")
        if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)) or claims["exp"] - claims["iat"] > 3600:
            raise _OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and "
                                               "in a reasonable timeframe.")
        scopes = set(str(claims.get("scope", "")).split())
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (claims["iss"], scopes)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def handle_api(self, method: str, raw_path: str, query: dict[str, list[str]], body: Any,
                   account: str, scopes: set[str]) -> dict[str, Any]:
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(.*)", raw_path)
        if m is None:
            raise ApiError(404, "Requested entity was not found.")
        sid, rest = unquote(m.group(1)), m.group(2)
        if not scopes & SHEETS_SCOPES:
            raise ApiError(403, "Request had insufficient authentication scopes.")
        with self._lock:
            denied = self._denied.get(sid)
            book = self._spreadsheets.get(sid)
            if denied:
                raise ApiError(*denied)
            if book is None:
                raise ApiError(404, "Requested entity was not found.")
            if account not in book.shared_with:
                raise ApiError(403, "The caller does not have permission")
            if rest == "" and method == "GET":
                return self._get(book)
            if rest == ":batchUpdate" and method == "POST":
                return self._batch_update(book, body)
            if rest == "/values:batchGet" and method == "GET":
                return {"spreadsheetId": sid, "valueRanges": [
                    self._values_get(book, r, query) for r in query.get("ranges", [])]}
            if rest == "/values:batchUpdate" and method == "POST":
                return self._values_batch_update(book, body)
            if rest.startswith("/values/"):
                encoded, action = rest[len("/values/"):], ""
                for suffix in (":append", ":clear"):
                    if encoded.endswith(suffix):
                        encoded, action = encoded[: -len(suffix)], suffix
                rng = unquote(encoded)
                if method == "GET" and not action:
                    return self._values_get(book, rng, query)
                if method == "PUT" and not action:
                    return self._values_update(book, rng, query, body)
                if method == "POST" and action == ":append":
                    return self._values_append(book, rng, query, body)
                if method == "POST" and action == ":clear":
                    return self._values_clear(book, rng)
        raise ApiError(404, f"Method not found: {method} {raw_path}")

    # -- Sheets operations (caller holds the lock) --

    def _get(self, book: Spreadsheet) -> dict[str, Any]:
        return {
            "spreadsheetId": book.id,
            "properties": {"title": book.title, "locale": "en_US", "autoRecalc": "ON_CHANGE",
                           "timeZone": "Etc/GMT", "defaultFormat": {}},
            "sheets": [{"properties": s.properties()} for s in sorted(book.sheets, key=lambda s: s.index)],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.id}/edit",
        }

    def _resolve(self, book: Spreadsheet, rng: str) -> tuple[Sheet, A1]:
        a1 = parse_a1(rng)
        sheet = book.sheet(a1.title)
        if sheet is None:
            raise ApiError(400, f"Unable to parse range: {rng}")
        return sheet, a1

    @staticmethod
    def _render(value: Any, option: str) -> Any:
        if option == "FORMULA" or isinstance(value, Formula):
            return str(value)
        if option == "UNFORMATTED_VALUE":
            return value
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def _values_get(self, book: Spreadsheet, rng: str, query: dict[str, list[str]]) -> dict[str, Any]:
        sheet, a1 = self._resolve(book, rng)
        option = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        r2 = sheet.row_count - 1 if a1.r2 is None else a1.r2
        c2 = sheet.col_count - 1 if a1.c2 is None else a1.c2
        if r2 >= sheet.row_count or c2 >= sheet.col_count:
            raise ApiError(400, f"Range ({rng}) exceeds grid limits. Max rows: {sheet.row_count}, "
                                f"max columns: {sheet.col_count}")
        rows: list[list[Any]] = []
        for r in range(a1.r1, r2 + 1):
            row = [sheet.cells.get((r, c), "") for c in range(a1.c1, c2 + 1)]
            while row and row[-1] in (None, ""):
                row.pop()
            rows.append([self._render(v, option) for v in row])
        while rows and not rows[-1]:
            rows.pop()
        out: dict[str, Any] = {"range": format_a1(sheet.title, a1.r1, a1.c1, r2, c2), "majorDimension": "ROWS"}
        if query.get("majorDimension", ["ROWS"])[0] == "COLUMNS":
            width = max((len(r) for r in rows), default=0)
            rows = [[r[i] if i < len(r) else "" for r in rows] for i in range(width)]
            out["majorDimension"] = "COLUMNS"
        if rows:
            out["values"] = rows
        return out

    @staticmethod
    def _input(value: Any, option: str) -> Any:
        if option == "RAW":
            return value
        # USER_ENTERED: parsed as if typed into the UI.
        if isinstance(value, str):
            if value.startswith("="):
                return Formula(value)
            if value.startswith("'"):
                return value[1:]
            try:
                return float(value) if any(ch in value for ch in ".eE") else int(value)
            except ValueError:
                return value
        return value

    def _write(self, sheet: Sheet, top: int, left: int, values: list[list[Any]], option: str,
               bounds: A1 | None = None) -> dict[str, Any]:
        if option not in ("RAW", "USER_ENTERED"):
            raise ApiError(400, f"Invalid valueInputOption: {option or 'INPUT_VALUE_OPTION_UNSPECIFIED'}")
        height = len(values)
        width = max((len(r) for r in values), default=0)
        bottom, right = top + height - 1, left + width - 1
        if bounds is not None and ((bounds.r2 is not None and bottom > bounds.r2)
                                   or (bounds.c2 is not None and right > bounds.c2)):
            raise ApiError(400, "Requested writing within range [{}], but tried writing to row [{}] column [{}]"
                           .format(format_a1(sheet.title, bounds.r1, bounds.c1, bounds.r2 if bounds.r2 is not None
                                             else bottom, bounds.c2 if bounds.c2 is not None else right),
                                   bottom + 1, right + 1))
        if height and (bottom >= sheet.row_count or right >= sheet.col_count):
            raise ApiError(400, f"Range ({format_a1(sheet.title, top, left, bottom, right)}) exceeds grid limits. "
                                f"Max rows: {sheet.row_count}, max columns: {sheet.col_count}")
        cells = 0
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is None:  # null means "leave this cell alone"
                    continue
                if isinstance(value, str) and len(value) > 50_000:
                    raise ApiError(400, "Your input contains more than the maximum of 50000 characters in a "
                                        "single cell.")
                sheet.cells[(top + i, left + j)] = self._input(value, option)
                cells += 1
        result: dict[str, Any] = {"updatedRows": height, "updatedColumns": width, "updatedCells": cells}
        if height:
            result["updatedRange"] = format_a1(sheet.title, top, left, bottom, right)
        return result

    def _values_update(self, book: Spreadsheet, rng: str, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        sheet, a1 = self._resolve(book, rng)
        values = _values_of(body)
        option = query.get("valueInputOption", [""])[0]
        return {"spreadsheetId": book.id, **self._write(sheet, a1.r1, a1.c1, values, option, a1)}

    def _values_batch_update(self, book: Spreadsheet, body: Any) -> dict[str, Any]:
        option = (body or {}).get("valueInputOption", "")
        data = (body or {}).get("data") or []
        staged = copy.deepcopy(book)  # all or nothing, like the real API
        responses = []
        for item in data:
            sheet, a1 = self._resolve(staged, item.get("range", ""))
            responses.append({"spreadsheetId": book.id,
                              **self._write(sheet, a1.r1, a1.c1, _values_of(item), option, a1)})
        book.sheets = staged.sheets
        return {
            "spreadsheetId": book.id,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedColumns": max((r["updatedColumns"] for r in responses), default=0),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len({r["updatedRange"].rsplit("!", 1)[0] for r in responses
                                       if "updatedRange" in r}),
            "responses": responses,
        }

    def _values_append(self, book: Spreadsheet, rng: str, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        sheet, a1 = self._resolve(book, rng)
        values = _values_of(body)
        option = query.get("valueInputOption", [""])[0]
        insert = query.get("insertDataOption", ["OVERWRITE"])[0]
        if insert not in ("OVERWRITE", "INSERT_ROWS"):
            raise ApiError(400, f"Invalid value at 'insert_data_option' ({insert})")
        last = sheet.last_row()
        top = max(last + 1, a1.r1)
        table = format_a1(sheet.title, a1.r1, a1.c1, max(last, a1.r1), max(a1.c1, sheet.col_count - 1))
        staged = copy.deepcopy(sheet)
        if insert == "INSERT_ROWS":
            # New rows are inserted below the table: every cell under it moves down.
            staged.cells = {((r + len(values)) if r >= top else r, c): v for (r, c), v in staged.cells.items()}
            staged.row_count += len(values)
        elif top + len(values) > staged.row_count:
            staged.row_count = top + len(values)
        updates = self._write(staged, top, a1.c1, values, option)
        book.sheets[book.sheets.index(sheet)] = staged
        return {"spreadsheetId": book.id, "tableRange": table, "updates": {"spreadsheetId": book.id, **updates}}

    def _values_clear(self, book: Spreadsheet, rng: str) -> dict[str, Any]:
        sheet, a1 = self._resolve(book, rng)
        r2 = sheet.row_count - 1 if a1.r2 is None else a1.r2
        c2 = sheet.col_count - 1 if a1.c2 is None else a1.c2
        for key in [k for k in sheet.cells if a1.r1 <= k[0] <= r2 and a1.c1 <= k[1] <= c2]:
            del sheet.cells[key]
        return {"spreadsheetId": book.id, "clearedRange": format_a1(sheet.title, a1.r1, a1.c1, r2, c2)}

    def _batch_update(self, book: Spreadsheet, body: Any) -> dict[str, Any]:
        staged = copy.deepcopy(book)
        replies: list[dict[str, Any]] = []
        for i, request in enumerate((body or {}).get("requests") or []):
            if not isinstance(request, dict) or len(request) != 1:
                raise ApiError(400, f"Invalid requests[{i}]: exactly one request kind is required")
            (name, spec), = request.items()
            replies.append(self._apply(staged, i, name, spec or {}))
        book.sheets, book.next_sheet_id = staged.sheets, staged.next_sheet_id
        return {"spreadsheetId": book.id, "replies": replies}

    def _sheet_by_id(self, book: Spreadsheet, i: int, sheet_id: Any) -> Sheet:
        found = next((s for s in book.sheets if s.sheet_id == sheet_id), None)
        if found is None:
            raise ApiError(400, f"Invalid requests[{i}]: No grid with id: {sheet_id}")
        return found

    def _apply(self, book: Spreadsheet, i: int, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if name == "addSheet":
            props = spec.get("properties") or {}
            title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
            if book.sheet(title) is not None:
                raise ApiError(400, f'Invalid requests[{i}].addSheet: A sheet with the name "{title}" already '
                                    "exists. Please enter another name.")
            grid = props.get("gridProperties") or {}
            sheet = Sheet(sheet_id=book.next_sheet_id, title=title, index=len(book.sheets),
                          row_count=grid.get("rowCount", 1000), col_count=grid.get("columnCount", 26),
                          frozen_rows=grid.get("frozenRowCount", 0))
            book.next_sheet_id += 1
            book.sheets.append(sheet)
            return {"addSheet": {"properties": sheet.properties()}}
        if name == "appendDimension":
            sheet = self._sheet_by_id(book, i, spec.get("sheetId"))
            length = int(spec.get("length", 0))
            if length < 1:
                raise ApiError(400, f"Invalid requests[{i}].appendDimension: length must be positive")
            if spec.get("dimension") == "COLUMNS":
                sheet.col_count += length
            elif spec.get("dimension") == "ROWS":
                sheet.row_count += length
            else:
                raise ApiError(400, f"Invalid requests[{i}].appendDimension: dimension is required")
            return {}
        if name == "updateDimensionProperties":
            rng = spec.get("range") or {}
            sheet = self._sheet_by_id(book, i, rng.get("sheetId"))
            hidden = (spec.get("properties") or {}).get("hiddenByUser")
            if rng.get("dimension") == "ROWS" and "hiddenByUser" in spec.get("fields", ""):
                rows = set(range(rng.get("startIndex", 0), rng.get("endIndex", sheet.row_count)))
                sheet.hidden_rows = sheet.hidden_rows | rows if hidden else sheet.hidden_rows - rows
            return {}
        if name == "updateSheetProperties":
            props = spec.get("properties") or {}
            sheet = self._sheet_by_id(book, i, props.get("sheetId"))
            fields = spec.get("fields", "")
            grid = props.get("gridProperties") or {}
            if "gridProperties.frozenRowCount" in fields or fields == "*":
                sheet.frozen_rows = int(grid.get("frozenRowCount", 0))
            if "title" in fields.split(",") and props.get("title"):
                sheet.title = props["title"]
            return {}
        raise ApiError(400, f"Invalid requests[{i}]: unsupported request {name!r} in the fake")


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _values_of(body: Any) -> list[list[Any]]:
    values = (body or {}).get("values") or []
    if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
        raise ApiError(400, "Invalid values: expected a list of rows")
    if (body or {}).get("majorDimension") == "COLUMNS":
        height = max((len(c) for c in values), default=0)
        values = [[c[i] if i < len(c) else None for c in values] for i in range(height)]
    return values


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass

    def _dispatch(self) -> None:
        fake = self.owner
        arrived = time.monotonic()
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        is_token = split.path == "/token"
        kind = "token" if is_token else ("read" if self.command == "GET" else "write")
        body: Any = None
        account: str | None = None
        status, payload, headers, delay = 200, {}, {}, 0.0
        try:
            if is_token:
                body = parse_qs(raw.decode(), keep_blank_values=True)
            elif raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "Invalid JSON payload received.") from None
            fault = fake._take_fault(kind, unquote(split.path))
            if fault is not None and fault.status:
                extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                raise ApiError(fault.status, fault.message or DEFAULT_MESSAGES.get(fault.status, "Error"), extra)
            delay = fault.delay if fault is not None else 0.0
            if is_token:
                if self.command != "POST":
                    raise ApiError(405, "Method not allowed")
                payload = fake.issue_token(body)
            else:
                account, scopes = fake._account_for(self.headers.get("Authorization"))
                if fake._over_quota(account, kind, arrived):
                    with fake._lock:
                        fake.quota_rejections += 1
                    raise ApiError(429, DEFAULT_MESSAGES[429].replace("Write", "Read" if kind == "read" else "Write"))
                payload = fake.handle_api(self.command, split.path, query, body, account, scopes)
        except _OAuthError as exc:
            status, payload = 400, {"error": exc.error, "error_description": exc.description}
        except ApiError as exc:
            status, headers = exc.status, exc.headers
            payload = {"error": {"code": exc.status, "message": exc.message,
                                 "status": STATUS_NAMES.get(exc.status, "UNKNOWN")}}
        fake._record(Recorded(self.command, unquote(split.path), query, body, kind, account, status, arrived))
        if delay:
            time.sleep(delay)  # the change above is already made: only the answer is late
        self._send(status, payload, headers)

"""Everything the HTML pages share: templates, static files, CSRF, the signed-in user, flash
messages, redirects and error pages. Page modules import from here; app.py mounts `page_router`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID

import structlog
from advanced_alchemy.exceptions import NotFoundError
from jinja2 import Environment
from litestar import MediaType, Request, Response, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader, Cookie
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.plugins.htmx import ClientRedirect, HTMXRequest, HTMXTemplate
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState
from sqlalchemy.ext.asyncio import AsyncSession

from webapp import __version__
from webapp.accounts.models import User
from webapp.accounts.sessions import SESSION_COOKIE, CurrentSession, cookie_secure, session_for_token
from webapp.errors import ProblemError
from webapp.settings import ROOT, Settings
from webapp.timeutil import utcnow

log = structlog.get_logger("webapp.web")

TEMPLATE_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
CSRF_COOKIE = "fw_csrf"
CSRF_HEADER = "X-CSRFToken"
CSRF_FIELD = "_csrf_token"  # the form field name Litestar's CSRF middleware reads
FLASH_COOKIE = "fw_flash"

# Paths that are not cookie-authenticated (bearer-token JSON API, the reference API, ops and
# the schema) stay outside CSRF: a cross-site page cannot attach a bearer token.
CSRF_EXCLUDE = [r"^/api/", r"^/(form|question|response)(/|$)", r"^/(health|ready|metrics)$", r"^/schema(/|$)",
                r"^/static/"]


def settings_of(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """An htmx request that wants a fragment (boosted links and forms want whole pages).

    Read from the headers: exception handlers get a plain Request, not an HTMXRequest."""
    headers = request.headers
    return headers.get("hx-request") == "true" and headers.get("hx-boosted") != "true"


def _derived_key(settings: Settings, purpose: str) -> bytes:
    return hmac.new(settings.secret_key.encode(), purpose.encode(), hashlib.sha256).digest()


# ---- configuration mounted by app.py -------------------------------------------------------------

def csrf_config(settings: Settings) -> CSRFConfig:
    """Double-submit cookie signed with a key derived from SECRET_KEY: no database involved."""
    return CSRFConfig(
        secret=_derived_key(settings, "csrf").hex(), cookie_name=CSRF_COOKIE, header_name=CSRF_HEADER.lower(),
        cookie_httponly=True, cookie_secure=cookie_secure(settings), cookie_samesite="lax",
        exclude=CSRF_EXCLUDE,
    )


def _asset_version() -> str:
    """Changes whenever a static file changes, so `?v=` lets browsers cache assets for long."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:10]


def _when(value: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    return "" if value is None else value.strftime(fmt) + " UTC"


def _ago(value: datetime | None) -> str:
    """'3 minutes ago'-style text; the exact time goes in a title attribute next to it."""
    if value is None:
        return ""
    seconds = int((utcnow() - value).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    version = _asset_version()

    def setup(engine: JinjaTemplateEngine) -> None:
        env: Environment = engine.engine
        env.trim_blocks = True
        env.lstrip_blocks = True
        env.globals.update(
            static=lambda path: f"/static/{path}?v={version}",
            app_version=__version__,
            csrf_field=CSRF_FIELD,
            csrf_header=CSRF_HEADER,
        )
        env.filters.update(when=_when, ago=_ago, plural=_plural)

    return TemplateConfig(directory=TEMPLATE_DIR, engine=JinjaTemplateEngine, engine_callback=setup)


def static_router() -> Router:
    return create_static_files_router(
        path="/static", directories=[STATIC_DIR], cache_control=CacheControlHeader(max_age=86400, public=True),
        include_in_schema=False,
    )


# ---- the signed-in user ------------------------------------------------------------------------------

class LoginRequired(NotAuthorizedException):
    """Raised by `provide_page_user`; the page exception handler turns it into a redirect to /login."""


async def _current(request: Request[Any, Any, Any], db_session: AsyncSession) -> CurrentSession | None:
    if "fw_current" in request.scope:  # resolved once per request
        return request.scope["fw_current"]  # type: ignore[typeddict-item]
    current = await session_for_token(db_session, request.cookies.get(SESSION_COOKIE))
    request.scope["fw_current"] = current  # type: ignore[typeddict-unknown-key]
    request.state.user = current.user if current else None
    request.state.session_id = current.id if current else None
    return current


async def provide_page_user(request: Request[Any, Any, Any], db_session: AsyncSession) -> User:
    """The signed-in user; anonymous visitors are sent to /login?next=<this page>."""
    current = await _current(request, db_session)
    if current is None:
        raise LoginRequired("Log in to continue.")
    return current.user


async def provide_optional_page_user(request: Request[Any, Any, Any], db_session: AsyncSession) -> User | None:
    current = await _current(request, db_session)
    return current.user if current else None


def safe_next(target: str | None, default: str = "/forms") -> str:
    """Only same-site paths: '/x' yes; '//evil', 'https://evil', '/\\evil' no."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(c in target for c in "\r\n\t"):
        return default
    return target


def login_url(request: Request[Any, Any, Any]) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or is_htmx(request):  # come back to the page, not to a post or fragment
        current = urlsplit(request.headers.get("hx-current-url", ""))
        here = (current.path + (f"?{current.query}" if current.query else "")) if current.path else "/forms"
    return "/login?next=" + quote(safe_next(here), safe="/")


# ---- flash messages: a short-lived signed cookie read by the next full page ---------------------

def _sign(settings: Settings, payload: bytes) -> str:
    return hmac.new(_derived_key(settings, "flash"), payload, hashlib.sha256).hexdigest()[:32]


def flash_cookie(settings: Settings, messages: Sequence[tuple[str, str]]) -> Cookie:
    payload = base64.urlsafe_b64encode(json.dumps(list(messages)).encode()).decode()
    return Cookie(key=FLASH_COOKIE, value=f"{payload}.{_sign(settings, payload.encode())}", path="/",
                  httponly=True, samesite="lax", secure=cookie_secure(settings), max_age=120)


def read_flash(request: Request[Any, Any, Any]) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw or len(raw) > 4000:
        return []
    payload, _, signature = raw.rpartition(".")
    if not hmac.compare_digest(signature, _sign(settings_of(request), payload.encode())):
        return []
    try:
        items = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return [{"kind": str(k), "text": str(t)} for k, t in items]
    except (ValueError, TypeError):
        return []


# ---- responses -----------------------------------------------------------------------------------

def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    fragment: str | None = None,
    status_code: int = 200,
    flash: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """A full page, or `fragment` (a partial template) when htmx asks and one is given.

    Full pages show pending flash messages (and clear their cookie) plus any passed in `flash`.
    """
    htmx = is_htmx(request)
    cookies: list[Cookie] = []
    messages = [{"kind": k, "text": t} for k, t in flash]
    name = template
    if htmx and fragment:
        name = fragment
    elif FLASH_COOKIE in request.cookies:
        messages = read_flash(request) + messages
        cookies.append(Cookie(key=FLASH_COOKIE, value="", path="/", max_age=0))
    # Pages carry a CSRF token and often private data: never serve one person's copy to another.
    headers = {"Cache-Control": "no-store", **(headers or {})}
    context.setdefault("current_user", getattr(request.state, "user", None))
    context["flashes"] = messages
    cls = HTMXTemplate if htmx else Template
    # Explicit: handlers are annotated `-> Any`, whose default media type would be JSON.
    return cls(template_name=name, context=context, status_code=status_code, cookies=cookies, headers=headers,
               media_type=MediaType.HTML)


# ---- pages shared by every visitor ----------------------------------------------------------------
# The respondent form is the same page for everyone but for the CSRF token. It is rendered once per
# key, kept as the bytes around the token, and each visitor gets those joined with their own token.
# The slot is random per process, so no form text can contain it.
_CSRF_SLOT = "fwcsrf" + secrets.token_hex(16)
_SHARED_SIZE = 1024
_shared: OrderedDict[Hashable, tuple[bytes, ...]] = OrderedDict()


def _shareable(request: Request[Any, Any, Any]) -> bool:
    # A flash message or an htmx fragment makes the page personal.
    return not is_htmx(request) and FLASH_COOKIE not in request.cookies


def _shared_response(request: Request[Any, Any, Any], parts: tuple[bytes, ...]) -> Response[bytes]:
    token = html.escape(str(value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")))
    return Response(content=token.encode().join(parts), media_type=MediaType.HTML,
                    headers={"Cache-Control": "no-store"})


def shared_page(request: Request[Any, Any, Any], key: Hashable) -> Response[bytes] | None:
    """The stored copy of a shared page for this visitor, or None (not stored, or not shareable)."""
    parts = _shared.get(key)
    if parts is None or not _shareable(request):
        return None
    _shared.move_to_end(key)
    return _shared_response(request, parts)


def render_shared(request: Request[Any, Any, Any], key: Hashable, template: str, **context: Any) -> Any:
    """`render` for an anonymous page that is the same for every visitor; stored under `key`.

    The key must change whenever anything the page shows changes (e.g. a form's version and
    updated_at)."""
    if not _shareable(request):
        return render(request, template, **context)
    state = ScopeState.from_scope(request.scope)
    token = state.csrf_token
    state.csrf_token = _CSRF_SLOT
    try:
        page = Template(template_name=template, context={**context, "current_user": None, "flashes": []})
        text = request.app.template_engine.get_template(template).render(**page.create_template_context(request))
    finally:
        state.csrf_token = token
    parts = tuple(part.encode() for part in text.split(_CSRF_SLOT))
    _shared[key] = parts
    if len(_shared) > _SHARED_SIZE:
        _shared.popitem(last=False)
    return _shared_response(request, parts)


def redirect(
    request: Request[Any, Any, Any], url: str, *, flash: str | None = None, kind: str = "success",
    cookies: Sequence[Cookie] = (),
) -> Response[Any]:
    """303 See Other for plain form posts; an HX-Redirect for htmx, so the whole page changes."""
    response: Response[Any]
    if is_htmx(request):
        response = ClientRedirect(url)
        response.status_code = 200  # else a @post handler's default, 201
    else:
        response = Redirect(path=url, status_code=303)
    for cookie in cookies:
        response.cookies.append(cookie)
    if flash:
        response.cookies.append(flash_cookie(settings_of(request), [(kind, flash)]))
    return response


# ---- error pages ---------------------------------------------------------------------------------

_PAGE_TITLES = {
    400: "That request didn't look right",
    403: "That action isn't allowed",
    404: "Page not found",
    405: "That action isn't allowed here",
    409: "That can't be done right now",
    410: "No longer available",
    413: "That was too much to send",
    422: "Please check what you entered",
    429: "Slow down a little",
}

CSRF_MESSAGE = ("Your form had expired or was sent from another site, so nothing was saved. "
                "Go back, reload the page and try again.")


def toast_header(text: str, kind: str = "success") -> dict[str, str]:
    """Headers that make app.js show a toast when an htmx response arrives (JSON is ASCII-escaped)."""
    return {"HX-Trigger": json.dumps({"fw:flash": {"kind": kind, "text": text}})}


def error_page(request: Request[Any, Any, Any], status: int, detail: str, *, title: str | None = None,
               headers: dict[str, str] | None = None) -> Template:
    if is_htmx(request):
        # Swap nothing (a 422 would otherwise replace the target); say what went wrong in a toast.
        headers = {**(headers or {}), "HX-Reswap": "none", **toast_header(detail, "error")}
    return render(request, "errors/error.html", fragment="errors/_error.html", status_code=status,
                  headers=headers, title=title or _PAGE_TITLES.get(status, "Something went wrong"),
                  detail=detail, status=status)


def _page_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, LoginRequired):
        if is_htmx(request):
            return ClientRedirect(login_url(request))
        return Redirect(path=login_url(request), status_code=303)
    status = exc.status_code
    detail = exc.detail or ""
    if status == 403 and "CSRF" in detail:
        detail = CSRF_MESSAGE
    elif status >= 500:
        log.error("page_error", status=status, path=request.url.path)
        detail = "Something went wrong on our side; nothing was saved. Please try again."
    elif not isinstance(exc, ProblemError) and status in {400, 404, 405}:
        # Framework messages ("Validation failed for GET ...") mean nothing to people.
        detail = {404: "There is nothing at this address. Check the link, or go back to your forms.",
                  405: "This page can't do that.",
                  400: "Part of the address or the form was not in the expected shape."}[status]
    return error_page(request, status, detail, title=getattr(exc, "title", None) if status != 403 else None,
                      headers=exc.headers)


def _page_not_found(request: Request[Any, Any, Any], _exc: NotFoundError) -> Response[Any]:
    return error_page(request, 404, "There is nothing at this address. Check the link, or go back to your forms.")


def _page_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_page_error", path=request.url.path, method=request.method, error=type(exc).__name__)
    return error_page(request, 500, "Something went wrong on our side; nothing was saved. Please try again.")


page_exception_handlers = {
    HTTPException: _page_http_error,
    NotFoundError: _page_not_found,
    Exception: _page_internal_error,
}


def page_router(handlers: Sequence[ControllerRouterHandler]) -> Router:
    """All HTML pages: htmx-aware requests and HTML error pages (the JSON API keeps problem+json)."""
    return Router(path="/", route_handlers=[*handlers, static_router()], request_class=HTMXRequest,
                  exception_handlers=page_exception_handlers, include_in_schema=False)


async def form_data(request: Request[Any, Any, Any]) -> Any:
    """The posted form (urlencoded or multipart); the CSRF middleware already parsed it once."""
    return await request.form()


def parse_id(value: str, what: str = "Page") -> UUID:
    """Ids in page URLs: a malformed one is simply a page that does not exist."""
    try:
        return UUID(value)
    except ValueError:
        raise ProblemError(404, "There is nothing at this address. Check the link, or go back to your forms.",
                           title=f"{what} not found") from None


def error_items(errors: dict[str, str], prefix: str = "f-") -> list[dict[str, str]]:
    """{field: message} → the error summary's links to each field."""
    return [{"href": f"#{prefix}{name}" if name else "", "text": message} for name, message in errors.items()]


def field_errors(exc: ProblemError) -> dict[str, str]:
    """A service's ProblemError as {field: message}; errors without a field go under ''."""
    if not exc.errors:
        return {"": exc.detail}
    out: dict[str, str] = {}
    for e in exc.errors:
        out.setdefault(str(e.get("field", "")), str(e.get("message", exc.detail)))
    return out

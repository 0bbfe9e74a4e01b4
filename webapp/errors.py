"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from advanced_alchemy.exceptions import NotFoundError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = structlog.get_logger("webapp.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemError(HTTPException):
    """An error with a status, a human detail and optional per-field errors."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)
        self.errors = errors
        self.title = title or _TITLES.get(status_code, "Error")


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"{what} not found.")


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    out = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            field = item.get("key") or item.get("source") or "body"
            out.append({"field": str(field), "message": str(item.get("message", "is invalid"))})
    return out


def _json_cause(exc: BaseException) -> msgspec.DecodeError | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, msgspec.DecodeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _friendly_detail(exc: HTTPException) -> str:
    detail = exc.detail or _TITLES.get(exc.status_code, "Error")
    cause = _json_cause(exc)
    if cause is not None and not isinstance(cause, msgspec.ValidationError):
        return f"The request body is not valid JSON ({cause})."
    if isinstance(exc, ValidationException) and detail.startswith("Validation failed for"):
        return "The request is malformed: " + "; ".join(
            f"{e['field']}: {e['message']}" for e in _validation_errors(exc)
        ) if exc.extra else "The request body is malformed."
    return detail


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ProblemError):
        return problem_response(exc.status_code, exc.detail, title=exc.title, errors=exc.errors,
                                headers=exc.headers)
    errors = _validation_errors(exc) if isinstance(exc, ValidationException) else None
    status = exc.status_code
    if status >= 500:
        log.error("http_error", status=status, path=request.url.path, detail=exc.detail)
    return problem_response(status, _friendly_detail(exc), errors=errors, headers=exc.headers)


def not_found_handler(_request: Request[Any, Any, Any], exc: NotFoundError) -> Response[Any]:
    return problem_response(404, str(exc.detail or "Not found."))


def _pool_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PoolTimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if _pool_timeout(exc):
        # Every pooled database connection stayed busy for the whole wait: overload, not a bug.
        log.warning("database_pool_exhausted", path=request.url.path, method=request.method)
        return problem_response(503, "The service is busy; nothing was saved. Please retry shortly.",
                                headers={"Retry-After": "1"})
    log.exception("unhandled_error", path=request.url.path, method=request.method, error=type(exc).__name__)
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "Something went wrong on our side; nothing was saved.")


exception_handlers = {
    HTTPException: http_exception_handler,
    NotFoundError: not_found_handler,
    Exception: internal_error_handler,
}

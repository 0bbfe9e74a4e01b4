"""Request guards shared by every JSON endpoint."""

from __future__ import annotations

from typing import Any

from litestar import Request

from webapp.errors import ProblemError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _has_body(request: Request[Any, Any, Any]) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in {"", "0"}
    return "transfer-encoding" in request.headers


async def require_json(request: Request[Any, Any, Any]) -> None:
    """A JSON endpoint answers 415 to any other body, before trying to parse it."""
    if request.method not in _BODY_METHODS or not _has_body(request):
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    shown = media_type or "none"
    raise ProblemError(415, f"Send the body as JSON with 'Content-Type: application/json' (got {shown}).")

"""The reference ("seed") API at its own paths and shapes, over the same services."""

from __future__ import annotations

from litestar import get


@get("/health", summary="Liveness: the process is up", tags=["ops"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


compat_handlers = [health]

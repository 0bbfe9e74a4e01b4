"""JSON API for the caller's API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts import service
from webapp.accounts.deps import provide_user
from webapp.accounts.models import ApiToken, User


class TokenCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]


class TokenOut(Struct):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str  # shown once, never stored in clear


def _out(t: ApiToken) -> TokenOut:
    return TokenOut(id=t.id, name=t.name, prefix=t.prefix, created_at=t.created_at,
                    last_used_at=t.last_used_at, revoked_at=t.revoked_at)


class TokenController(Controller):
    path = "/api/v1/tokens"
    tags = ["tokens"]
    dependencies = {"user": Provide(provide_user)}

    @get("/", summary="List my API tokens")
    async def list_tokens(self, db_session: AsyncSession, user: User) -> list[TokenOut]:
        return [_out(t) for t in await service.list_tokens(db_session, user.id)]

    @post("/", summary="Create an API token; the token is shown in this response only")
    async def create_token(self, db_session: AsyncSession, user: User, data: TokenCreate) -> NewTokenOut:
        token, plaintext = await service.create_token(db_session, user, data.name)
        return NewTokenOut(**{f: getattr(_out(token), f) for f in TokenOut.__struct_fields__}, token=plaintext)

    @delete("/{token_id:str}", status_code=HTTP_200_OK, summary="Revoke an API token")
    async def revoke_token(self, db_session: AsyncSession, user: User, token_id: UUID) -> TokenOut:
        return _out(await service.revoke_token(db_session, user.id, token_id))

"""API tokens: created once in clear, stored hashed, listed by prefix, revocable."""

from __future__ import annotations

from sqlalchemy import select

from webapp.accounts.models import ApiToken


async def test_token_lifecycle(client, owner, sessionmaker):
    r = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=owner.headers)
    assert r.status_code == 201
    new = r.json()
    token = new["token"]
    assert token.startswith(new["prefix"]) and len(token) > 40
    async with sessionmaker() as s:
        stored = await s.scalar(select(ApiToken).where(ApiToken.name == "ci"))
    assert stored.token_hash != token and token not in stored.token_hash

    listed = (await client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})).json()
    assert {t["name"] for t in listed} == {"tests", "ci"}
    assert all("token" not in t for t in listed)
    mine = next(t for t in listed if t["name"] == "ci")
    assert mine["last_used_at"] is not None  # the request above used it

    r = await client.delete(f"/api/v1/tokens/{new['id']}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = await client.get("/api/v1/forms", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


async def test_tokens_are_private_to_their_owner(client, owner, make_owner):
    other = await make_owner()
    mine = (await client.get("/api/v1/tokens", headers=owner.headers)).json()[0]
    r = await client.delete(f"/api/v1/tokens/{mine['id']}", headers=other.headers)
    assert r.status_code == 404
    assert (await client.get("/api/v1/forms", headers=owner.headers)).status_code == 200
    r = await client.post("/api/v1/tokens", json={"name": ""}, headers=owner.headers)
    assert r.status_code == 400

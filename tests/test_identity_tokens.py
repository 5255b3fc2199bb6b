"""Identity tokens: `/auth/token` hands the logged-in user to the product as an ES256 JWT,
verified here with authlib against `/.well-known/jwks.json`; keys rotate without breaking
tokens already handed out."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from authlib.deprecate import AuthlibDeprecationWarning
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from gateway.auth_api import SESSION_COOKIE
from gateway.credentials import new_session_secret
from gateway.identity_tokens import TokenIssuer
from sso import tokens
from sso.mapping import DEFAULT_ROLE
from storage.key_store import KeyStore
from storage.session_store import SessionStore
from tests.conftest import Scim, TenantAccess, group, user
from tests.test_cli import _cli

with warnings.catch_warnings():
    # authlib 1.7 deprecates authlib.jose in favour of joserfc, and says so at import.
    warnings.filterwarnings("ignore", "authlib.jose", AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError


def _verify(token: str, jwks: dict[str, Any], audience: str) -> dict[str, Any]:
    claims = JsonWebToken(["ES256"]).decode(
        token,
        JsonWebKey.import_key_set(jwks),
        claims_options={"aud": {"essential": True, "value": audience}},
    )
    claims.validate()
    return dict(claims)


def _kid(token: str) -> str:
    head = token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]
    return kid


async def _cookie(engine: AsyncEngine, tenant: TenantAccess, user_id: str) -> dict[str, str]:
    secret, secret_hash = new_session_secret()
    await SessionStore(engine, DEFAULT_ROLE).create(
        secret_hash,
        tenant.tenant.id,
        uuid.UUID(user_id),
        None,
        utc_now(),
        idle=timedelta(hours=1),
        lifetime=timedelta(hours=1),
    )
    return {"Cookie": f"{SESSION_COOKIE}={secret}"}


async def test_the_token_says_who_for_which_tenant(
    client: TestClient[Any, Any], scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    _, ada, _ = await scim.post(
        "/Users", user("ada", emails=[{"value": "ada@corp.example", "primary": True}])
    )
    await scim.post("/Groups", group("Engineers", [ada["id"]]))
    resp = await client.get("/auth/token", headers=await _cookie(engine, tenant, ada["id"]))
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert all("d" not in key for key in jwks["keys"])  # public halves only
    claims = _verify(body["token"], jwks, f"idgate:{tenant.slug}")
    assert claims["sub"] == ada["id"] and claims["email"] == "ada@corp.example"
    assert claims["iss"] == "http://scim.test" and claims["tenant"] == tenant.slug
    assert claims["groups"] == ["Engineers"] and claims["exp"] - claims["iat"] == 300
    # Nothing gives ada a role: the tenant's default one.
    assert (claims["roles"], claims["projects"]) == (["readonly"], {})
    # Another tenant's product refuses it.
    with pytest.raises(JoseError):
        _verify(body["token"], jwks, "idgate:another-tenant")


async def test_no_session_no_token(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/auth/token")).status == 401
    bad = {"Cookie": f"{SESSION_COOKIE}=nope"}
    assert (await client.get("/auth/token", headers=bad)).status == 401


async def test_a_tampered_token_is_refused(
    client: TestClient[Any, Any], scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    _, bob, _ = await scim.post("/Users", user("bob@corp.example"))
    body = await (
        await client.get("/auth/token", headers=await _cookie(engine, tenant, bob["id"]))
    ).json()
    head, payload, signature = body["token"].split(".")
    forged = ".".join([head, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), signature])
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    with pytest.raises((JoseError, ValueError)):
        _verify(forged, jwks, f"idgate:{tenant.slug}")


async def test_rotation_keeps_earlier_tokens_verifiable(
    database_url: str, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    _, carl, _ = await scim.post("/Users", user("carl@corp.example"))
    now = utc_now()
    claims = tokens.identity_claims(
        issuer="http://scim.test",
        tenant=tenant.slug,
        user_id=carl["id"],
        email=None,
        groups=(),
        roles=("readonly",),
        project_roles=(),
        now=int(now.timestamp()),
        lifetime=300,
    )
    before = await TokenIssuer(KeyStore(engine)).sign(claims, now)
    rotated = await _cli(database_url, "keys", "rotate")
    assert rotated.exit_code == 0 and "new signing key" in rotated.output
    issuer = TokenIssuer(KeyStore(engine))  # a process that reads the keys after the rotation
    after = await issuer.sign(claims, now)
    jwks = await issuer.jwks(now)
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) >= 2  # the new key signs, the earlier one is still published
    assert _kid(after) == kids[0] and _kid(before) in kids[1:]
    for token in (before, after):
        assert _verify(token, jwks, f"idgate:{tenant.slug}")["sub"] == carl["id"]
    # Once superseded for longer than the grace period, the old keys are no longer published.
    store = KeyStore(engine)
    assert await store.prune(now + timedelta(days=2), timedelta(hours=24)) >= 1
    remaining = [key.kid for key in await store.published()]
    assert remaining == [kids[0]]

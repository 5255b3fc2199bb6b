"""How the product learns who is logged in: `GET /auth/verify`, a forward-auth endpoint for
nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`, and `POST /auth/logout`.

`/auth/verify` answers 200 with the user in `X-Idgate-*` headers when the request carries a
live session cookie, else 401. A session is live until it is logged out, reaches its
absolute lifetime, stays idle too long, or its user is deactivated (SCIM `active: false`):
each of those is decided in the one statement that reads the session, whose answer each
process keeps for a moment (`gateway.session_cache`, dropped as soon as the database says
it may have changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.credentials import hash_token, new_session_secret
from gateway.keys import CLOCK, SESSION_CACHE, SESSIONS, SETTINGS, TOKEN_ISSUER
from sso import tokens

SESSION_COOKIE = "idgate_session"
_NO_STORE = {"Cache-Control": "no-store"}


def _names(names: Iterable[str]) -> str:
    return ",".join(quote(name, safe=" ") for name in names)


async def start_session(
    request: web.Request,
    tenant: Any,
    user_id: uuid.UUID,
    connection_id: uuid.UUID | None,
    response: web.StreamResponse,
    started_at: datetime | None = None,
) -> None:
    """Start a session of `user_id` and set its cookie on `response`: how every login ends,
    through SSO (`connection_id`) or a local password (None). Its limits are the tenant's
    own (`idgate tenant set`), else the gateway's. `started_at`: the login an organisation
    switch carries on (a switch is no new login)."""
    settings = request.config_dict[SETTINGS]
    idle = tenant.settings.get("session_idle_minutes") or settings.session_idle_minutes
    hours = tenant.settings.get("session_lifetime_hours") or settings.session_lifetime_hours
    secret, secret_hash = new_session_secret()
    await request.config_dict[SESSIONS].create(
        secret_hash,
        tenant.id,
        user_id,
        connection_id,
        request.config_dict[CLOCK](),
        idle=timedelta(minutes=idle),
        lifetime=timedelta(hours=hours),
        started_at=started_at,
    )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        path="/",
        secure=True,
        httponly=True,
        samesite="Lax",
        max_age=int(hours * 3600),
    )
    response.headers["Cache-Control"] = "no-store"


def _secret(request: web.Request) -> bytes | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    return hash_token(cookie) if cookie else None


async def verify(request: web.Request) -> web.Response:
    secret_hash = _secret(request)
    settings = request.config_dict[SETTINGS]
    found = (
        await request.config_dict[SESSION_CACHE].check(
            secret_hash, request.config_dict[CLOCK](), settings.session_touch_seconds
        )
        if secret_hash
        else None
    )
    if found is None:
        return web.Response(status=401, headers=_NO_STORE)
    headers = {
        **_NO_STORE,
        "X-Idgate-User": str(found.user_id),
        "X-Idgate-Tenant": found.tenant,
        "X-Idgate-Email": quote(found.email or found.user_name, safe="@+"),
        # Names may hold any character: each is percent-encoded, then joined with commas.
        "X-Idgate-Groups": _names(found.groups),
        "X-Idgate-Roles": _names(found.roles),
        # project:role pairs, each side percent-encoded.
        "X-Idgate-Project-Roles": ",".join(
            f"{quote(p, safe=' ')}:{quote(r, safe=' ')}" for p, r in found.project_roles
        ),
    }
    return web.Response(status=200, headers=headers)


async def token(request: web.Request) -> web.Response:
    """The logged-in user as a signed JWT (`sso.tokens`), for the product to verify with
    `/.well-known/jwks.json` instead of asking the gateway on each request."""
    secret_hash = _secret(request)
    settings, now = request.config_dict[SETTINGS], request.config_dict[CLOCK]()
    found = (
        await request.config_dict[SESSION_CACHE].check(
            secret_hash, now, settings.session_touch_seconds
        )
        if secret_hash
        else None
    )
    if found is None:
        return web.json_response({"error": "no live session"}, status=401, headers=_NO_STORE)
    claims = tokens.identity_claims(
        issuer=settings.base_url,
        tenant=found.tenant,
        user_id=str(found.user_id),
        email=found.email,
        groups=found.groups,
        roles=found.roles,
        project_roles=found.project_roles,
        now=int(now.timestamp()),
        lifetime=settings.identity_token_seconds,
    )
    signed = await request.config_dict[TOKEN_ISSUER].sign(claims, now)
    body = {"token": signed, "token_type": "Bearer", "expires_in": settings.identity_token_seconds}
    return web.json_response(body, headers=_NO_STORE)


async def jwks(request: web.Request) -> web.Response:
    keys = await request.config_dict[TOKEN_ISSUER].jwks(request.config_dict[CLOCK]())
    return web.json_response(keys, headers={"Cache-Control": "max-age=300"})


async def logout(request: web.Request) -> web.Response:
    secret_hash = _secret(request)
    if secret_hash:
        await request.config_dict[SESSION_CACHE].revoke(secret_hash, request.config_dict[CLOCK]())
    response = web.Response(status=204, headers=_NO_STORE)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/auth/verify", verify)
    app.router.add_get("/auth/token", token)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_post("/auth/logout", logout)

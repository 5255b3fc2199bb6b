"""`GET /api/v1/events`: a tenant's events in order, for a product that reconciles by pulling
instead of (or besides) receiving webhooks, like WorkOS's Events API.

Authenticated by an API key of the tenant with the `events:read` scope
(`Authorization: Bearer idgk_...`; `idgate api-key create SLUG --scope events:read`).
`after` is the `sequence` of the last event the caller has (0, or absent, for the start);
`limit` at most 1,000 (default 100); `types` a comma-separated list of event types. The
answer is `{"data": [...], "next_after": N, "has_more": bool}`: call again with
`after=next_after`. Numbers have no gaps in commit order, so nothing is ever skipped.
"""

from __future__ import annotations

from aiohttp import web

from gateway.credentials import hash_token
from gateway.keys import API_KEYS, CLOCK, EVENTS
from gateway.webhooks import event_json
from storage.api_key_store import ApiCaller

EVENTS_SCOPE = "events:read"
_MAX_LIMIT = 1000


async def _caller(request: web.Request, scope: str) -> ApiCaller:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    caller = None
    if scheme.lower() == "bearer" and secret:
        caller = await request.config_dict[API_KEYS].authenticate(
            hash_token(secret.strip()), request.config_dict[CLOCK]()
        )
    if caller is None:
        raise web.HTTPUnauthorized(
            text='{"error": "an API key is required (Authorization: Bearer idgk_...)"}',
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scope not in caller.scopes:
        raise web.HTTPForbidden(
            text=f'{{"error": "this API key lacks the {scope} scope"}}',
            content_type="application/json",
        )
    return caller


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be an integer from {low} to {high}"}}',
            content_type="application/json",
        )
    return value


async def list_events(request: web.Request) -> web.Response:
    caller = await _caller(request, EVENTS_SCOPE)
    after = _int(request, "after", 0, 0, 2**62)
    limit = _int(request, "limit", 100, 1, _MAX_LIMIT)
    types = [t for t in request.query.get("types", "").split(",") if t]
    found = await request.config_dict[EVENTS].after(caller.tenant_id, after, limit + 1, types)
    page = found[:limit]
    body = {
        "data": [event_json(e, caller.tenant_slug) for e in page],
        "next_after": page[-1].seq if page else after,
        "has_more": len(found) > limit,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/events", list_events)

"""The `/api/v1` routes: each declared once with what it needs, what it takes and what it
answers, so that authentication, authorisation, input validation, errors and the OpenAPI
document (`gateway.admin.openapi`) all come from the same declaration.

A handler receives a `Call`: the request, the caller's standing in the organisation the
path names (`{org}`), and its query and body already validated by their pydantic models.
It returns a model, a plain JSON value or a `web.Response`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.admin.callers import Caller, Level, Standing, standing
from gateway.admin.problems import (
    ApiError,
    FieldError,
    from_http,
    internal_error,
    not_found,
    problem_response,
)
from gateway.auth_api import SESSION_COOKIE
from gateway.credentials import hash_token
from gateway.errors import Handler
from gateway.keys import ADMIN_STORE, API_KEYS, CLOCK, REQUEST_ID, SESSION_CACHE, SETTINGS
from scim.errors import ScimError


class Need(enum.Enum):
    """What a route asks of its caller."""

    SIGNED_IN = "signed-in"  # any caller; no organisation in the path
    READ = "read"  # read level in {org}
    ADMIN = "admin"
    OWNER = "owner"


_LEVELS = {Need.READ: Level.READ, Need.ADMIN: Level.ADMIN, Need.OWNER: Level.OWNER}


@dataclass
class Call:
    request: web.Request
    caller: Caller
    standing: Standing | None
    query: Any
    body: Any
    headers: dict[str, str]  # added to the answer

    @property
    def org(self) -> Any:
        assert self.standing is not None, "a route without {org}"
        return self.standing.org

    @property
    def actor(self) -> str:
        return self.standing.actor if self.standing else self.caller.actor

    @property
    def context(self) -> dict[str, str]:
        """What the audit log adds to an entry: the request id, the address, the reseller."""
        context = {"request_id": self.request[REQUEST_ID]}
        if self.request.remote:
            context["ip"] = self.request.remote
        if self.standing and self.standing.via:
            context["via"] = self.standing.via
        return context

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    def require(self, level: Level, detail: str) -> None:
        assert self.standing is not None
        if self.standing.level < level:
            raise ApiError(403, "forbidden", detail)


Route = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under /api/v1
    handler: Route
    summary: str
    need: Need
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    raw_body: str | None = None  # a body of this media type, handed over as text
    response: type[BaseModel] | None = None
    status: int = 200
    content_type: str = "application/json"  # of the answer
    description: str = ""
    scope: str | None = None  # an API key scope the route asks for instead of a level
    errors: tuple[int, ...] = ()  # what else it may answer, besides 400/401/403/404


@dataclass
class Api:
    operations: list[Operation] = field(default_factory=list)

    def route(
        self, method: str, path: str, summary: str, need: Need, tag: str, **options: Any
    ) -> Callable[[Route], Route]:
        def declare(handler: Route) -> Route:
            self.operations.append(Operation(method, path, handler, summary, need, tag, **options))
            return handler

        return declare

    def install(self, app: web.Application) -> None:
        for operation in self.operations:
            app.router.add_route(operation.method, operation.path, _serve(operation))


def _dumps(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json(exclude_none=False).encode()
    return orjson.dumps(value)


def _serve(operation: Operation) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        if any("\x00" in value for value in request.match_info.values()):
            raise not_found("item")  # no name holds a NUL
        caller = await authenticate(request)
        position = None
        if "{org}" in operation.path:
            position = await _standing(request, caller, operation)
        elif operation.scope and operation.scope not in caller.scopes:
            raise ApiError(403, "forbidden", f"this API key lacks the {operation.scope} scope")
        _check_origin(request, caller, operation)
        query = _validated(operation.query, dict(request.query), "query")
        body = await _body(request, operation.body, operation.raw_body)
        headers = {"Cache-Control": "no-store"}
        if position is not None and position.via:
            # Visibly marked: this call acts in a dependent organisation through a reseller.
            headers["X-Idgate-Acting-As"] = f"{position.level.name.lower()} via {position.via}"
        result = await operation.handler(Call(request, caller, position, query, body, headers))
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204, headers=headers)
        return web.Response(
            body=_dumps(result),
            status=operation.status,
            content_type=operation.content_type,
            headers=headers,
        )

    return serve


async def authenticate(request: web.Request) -> Caller:
    """The API key in `Authorization`, else the session cookie, else 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    now = request.config_dict[CLOCK]()
    if scheme.lower() == "bearer" and secret.strip():
        key = await request.config_dict[API_KEYS].authenticate(hash_token(secret.strip()), now)
        if key is not None:
            return Caller(key.tenant_id, key.tenant_slug, key_id=key.key_id, scopes=key.scopes)
    elif not header:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            settings = request.config_dict[SETTINGS]
            user = await request.config_dict[SESSION_CACHE].check(
                hash_token(cookie), now, settings.session_touch_seconds
            )
            if user is not None:
                return Caller(
                    user.tenant_id,
                    user.tenant,
                    user_id=user.user_id,
                    roles=user.roles,
                    session_started=user.started_at,
                )
    raise ApiError(
        401,
        "unauthenticated",
        "an API key (Authorization: Bearer idgk_...) or a session is required",
        headers={"WWW-Authenticate": 'Bearer realm="idgate"'},
    )


async def _standing(request: web.Request, caller: Caller, operation: Operation) -> Standing:
    org = await request.config_dict[ADMIN_STORE].org(request.match_info["org"])
    found = standing(caller, org) if org is not None else None
    if found is None:
        raise not_found("organisation")
    if found.level < _LEVELS[operation.need]:
        raise ApiError(403, "forbidden", f"this needs the {operation.need.value} level or above")
    return found


_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _check_origin(request: web.Request, caller: Caller, operation: Operation) -> None:
    """A write authenticated by the cookie must come from the gateway's own pages: a
    browser says where a request comes from (`Sec-Fetch-Site`, `Origin`), and a page of
    another site may not act with the cookie (cross-site request forgery)."""
    if not caller.by_session or operation.method in _SAFE:
        return
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    ours = {f"{request.scheme}://{request.host}"}
    public = request.config_dict[SETTINGS].public_url
    if public:
        ours.add(public.rstrip("/"))
    if (site is not None and site not in ("same-origin", "none")) or (
        origin is not None and origin not in ours
    ):
        raise ApiError(403, "cross_site", "a write with the session cookie from another site")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul(value: Any, where: str) -> None:
    if _has_nul(value):  # PostgreSQL text cannot hold it; no name or e-mail has one
        raise ApiError(400, "invalid_request", f"the {where} holds a NUL character")


def _validated(model: type[BaseModel] | None, value: Any, where: str, json: bool = False) -> Any:
    if model is None:
        return None
    try:
        if json:
            return model.model_validate_json(value, strict=True)
        _refuse_nul(value, where)
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError(
            400,
            "invalid_request",
            f"the {where} is not valid",
            [
                FieldError(field=".".join(str(p) for p in e["loc"]) or where, message=e["msg"])
                for e in exc.errors()
            ],
        ) from None


async def _body(request: web.Request, model: type[BaseModel] | None, raw: str | None) -> Any:
    if raw is not None:
        if request.content_type != raw:
            raise ApiError(415, "unsupported_media_type", f"the body must be {raw}")
        return await request.read()
    if model is None:
        return None
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    data = await request.read()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    _refuse_nul(value, "body")
    # Strict: a JSON body says what it means (no 0 for false, no "1" for 1); strings are
    # still read as the ids and times the document says they are.
    return _validated(model, data, "body", json=True)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error under /api/v1 as problem details (`gateway.admin.problems`)."""
    try:
        return await handler(request)
    except ApiError as error:
        return problem_response(error)
    except ScimError as error:  # a store or use case refusing (a name taken, no such user)
        code = error.scim_type or {404: "not_found", 409: "conflict"}.get(error.status, "refused")
        return problem_response(ApiError(error.status, code, error.detail))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(from_http(exc))
    except Exception:
        return internal_error(request)

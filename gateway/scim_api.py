"""The SCIM 2.0 HTTP endpoints under /scim/v2/<tenant>/ (RFC 7644 §3).

Thin adapters: read the request, call the protocol core (scim/) and the store (storage/),
shape the response. The tenant always comes from the authenticated token, passed down
explicitly; nothing about the current tenant is kept in shared state.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from gateway.credentials import hash_token
from gateway.errors import SCIM_CONTENT_TYPE, Handler, scim_errors, scim_json
from gateway.keys import (
    CLOCK,
    PRINCIPAL,
    PROVISIONING,
    REQUEST_ID,
    SETTINGS,
    STORE,
    TOKEN_CACHE,
)
from gateway.provisioning import Provisioning
from gateway.request_log import log_scim_requests
from scim import discovery
from scim.bulk import (
    BulkOperation,
    Outcome,
    bulk_response,
    check_payload_size,
    parse_bulk_request,
    run_bulk,
)
from scim.errors import (
    InvalidFilterError,
    InvalidSyntaxError,
    NotFoundError,
    ScimError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from scim.filter import Filter, parse_filter
from scim.listing import Query, list_response, parse_query, parse_search_request
from scim.quirks import normalise_filter
from scim.resources import parse_attribute_list, project_stored
from scim.schema import GROUP, RESOURCE_TYPES, SCHEMAS, USER, ResourceType
from storage.filter_sql import compile_filter, sort_key, user_name_lookup
from storage.scim_store import Principal

log = logging.getLogger(__name__)

_JSON_TYPES = ("application/scim+json", "application/json")


# --- request plumbing ---------------------------------------------------------------------


def _principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def base_url(request: web.Request) -> str:
    public = request.config_dict[SETTINGS].base_url
    return f"{public}/scim/v2/{_principal(request).tenant_slug}"


async def _body(request: web.Request) -> Any:
    # RFC 7644 §3.1: requests use application/scim+json; plain JSON is accepted too.
    if request.content_type not in _JSON_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/scim+json, not {request.content_type!r}"
        )
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSyntaxError(f"request body is not valid JSON: {exc}") from None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise UnauthorizedError("a bearer token is required")
    settings, cache = request.config_dict[SETTINGS], request.config_dict[TOKEN_CACHE]
    secret_hash, slug = hash_token(secret.strip()), request.match_info["tenant"]
    principal = cache.get(secret_hash, slug)
    if principal is None:
        principal = await request.config_dict[STORE].authenticate(
            secret_hash, slug, request.config_dict[CLOCK](), settings.token_touch_seconds
        )
        if principal is None:
            # One answer for unknown, revoked and other-tenant tokens: nothing to probe.
            raise UnauthorizedError("the bearer token is not valid for this tenant")
        cache.put(secret_hash, slug, principal)
    request[PRINCIPAL] = principal
    return await handler(request)


# --- shaping responses ----------------------------------------------------------------------


def _present(
    request: web.Request,
    resource_type: ResourceType,
    resource: dict[str, Any],
    attributes: tuple[str, ...] = (),
    excluded: tuple[str, ...] = (),
    base: str | None = None,
) -> dict[str, Any]:
    base = base or base_url(request)
    resource["meta"]["location"] = f"{base}{resource_type.endpoint}/{resource['id']}"
    _add_refs(base, resource.get("members", ()), None)
    _add_refs(base, resource.get("groups", ()), "Group")
    return project_stored(
        resource_type, resource, attributes=attributes, excluded_attributes=excluded
    )


def _add_refs(base: str, refs: Any, kind: str | None) -> None:
    """Each reference's `$ref`: the URL of the User or Group it names."""
    for ref in refs:
        endpoint = "/Groups" if (kind or ref.get("type")) == "Group" else "/Users"
        ref["$ref"] = f"{base}{endpoint}/{ref['value']}"


def _one(
    request: web.Request,
    resource_type: ResourceType,
    resource: dict[str, Any],
    status: int = 200,
) -> web.Response:
    attributes, excluded = _projection(request)
    body = _present(request, resource_type, resource, attributes, excluded)
    headers = {"ETag": resource["meta"]["version"]}
    if status == 201:
        headers["Location"] = resource["meta"]["location"]
    return scim_json(body, status=status, headers=headers)


def _projection(request: web.Request) -> tuple[tuple[str, ...], tuple[str, ...]]:
    query = request.query
    return (
        parse_attribute_list(query.get("attributes")),
        parse_attribute_list(query.get("excludedAttributes")),
    )


# --- Users and Groups -----------------------------------------------------------------------

_TYPES = {"Users": USER, "Groups": GROUP}


def _resource_type(request: web.Request) -> ResourceType:
    return _TYPES[request.match_info["kind"]]


def request_context(request: web.Request) -> dict[str, str]:
    """What audit entries say of the request: its id and source address."""
    return {"request_id": request[REQUEST_ID], "ip": request.remote or ""}


def _provisioning(request: web.Request) -> Provisioning:
    """The use cases, acting for the SCIM token that authenticated the request."""
    return request.config_dict[PROVISIONING].acting(
        f"scim:{_principal(request).token_id}", context=request_context(request)
    )


async def create(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    body = await _body(request)
    tenant_id = _principal(request).tenant_id
    created = await _provisioning(request).create(tenant_id, resource_type, body)
    return _one(request, resource_type, created, status=201)


async def get(request: web.Request) -> web.StreamResponse:
    resource_type = _resource_type(request)
    store, tenant_id = request.config_dict[STORE], _principal(request).tenant_id
    resource_id = request.match_info["id"]
    if resource_type is GROUP:
        if _wants_members(*_projection(request)):
            return await _stream_group(request, resource_id)
        found = await store.get_group(tenant_id, resource_id, with_members=False)
    else:
        found = await store.get_user(tenant_id, resource_id)
    if found is None:
        raise NotFoundError(f"{resource_type.name} {resource_id} not found")
    return _not_modified(request, found) or _one(request, resource_type, found)


def _not_modified(request: web.Request, found: dict[str, Any]) -> web.Response | None:
    # RFC 7644 §3.14: a GET with a matching If-None-Match is answered 304.
    if request.headers.get("If-None-Match") == found["meta"]["version"]:
        return web.Response(status=304, headers={"ETag": found["meta"]["version"]})
    return None


async def _stream_group(request: web.Request, group_id: str) -> web.StreamResponse:
    """A Group with its members, written as they are read in chunks: memory stays flat
    whatever the group's size."""
    store, tenant_id = request.config_dict[STORE], _principal(request).tenant_id
    attributes, excluded = _projection(request)
    base = base_url(request)
    async with store.streaming_group(tenant_id, group_id) as found:
        if found is None:
            raise NotFoundError(f"Group {group_id} not found")
        group, chunks = found
        unchanged = _not_modified(request, group)
        if unchanged is not None:
            return unchanged
        head = orjson.dumps(_present(request, GROUP, group, attributes, excluded, base))
        response = web.StreamResponse(headers={"ETag": group["meta"]["version"]})
        response.content_type = SCIM_CONTENT_TYPE
        response.charset = "utf-8"
        await response.prepare(request)
        await response.write(head[:-1])  # the object stays open for "members"
        opened = False
        async for members in chunks:
            _add_refs(base, members, None)
            shown = project_stored(
                GROUP, {"members": members}, attributes=attributes, excluded_attributes=excluded
            ).get("members", [])
            if not shown:
                continue
            items = b",".join(orjson.dumps(m) for m in shown)
            await response.write((b"," if opened else b',"members":[') + items)
            opened = True
        await response.write(b"]}" if opened else b"}")
        await response.write_eof()
    return response


async def replace(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    body = await _body(request)
    updated = await _provisioning(request).replace(
        _principal(request).tenant_id,
        resource_type,
        request.match_info["id"],
        body,
        request.headers.get("If-Match"),
    )
    return _one(request, resource_type, updated)


async def remove(request: web.Request) -> web.Response:
    await _provisioning(request).delete(
        _principal(request).tenant_id,
        _resource_type(request),
        request.match_info["id"],
        request.headers.get("If-Match"),
    )
    return web.Response(status=204)


def _wants_members(attributes: tuple[str, ...], excluded: tuple[str, ...]) -> bool:
    """Whether a Group response shows `members`: if not, they are never loaded."""

    def names_members(items: tuple[str, ...]) -> bool:
        core = GROUP.schema.id.lower() + ":"
        return any(i.lower().removeprefix(core).split(".")[0] == "members" for i in items)

    if attributes:
        return names_members(attributes)
    return not names_members(excluded)


async def patch(request: web.Request) -> web.Response:
    """RFC 7644 §3.5.2. A User answers 200 with the resource; a Group answers 204 unless the
    request names `attributes` (what Entra ID and Okta expect; no member list is sent back)."""
    resource_type = _resource_type(request)
    body = await _body(request)
    attributes, excluded = _projection(request)
    show = resource_type is USER or bool(attributes or excluded)
    updated = await _provisioning(request).patch(
        _principal(request).tenant_id,
        resource_type,
        request.match_info["id"],
        body,
        request.headers.get("If-Match"),
        with_members=show and _wants_members(attributes, excluded),
    )
    if not show:
        return web.Response(status=204, headers={"ETag": updated["meta"]["version"]})
    return _one(request, resource_type, updated)


# --- Bulk (RFC 7644 §3.7) -------------------------------------------------------------------

_ENDPOINTS = {"Users": USER, "Groups": GROUP}


async def bulk(request: web.Request) -> web.Response:
    """Each operation is the same use case as its own request: one that fails changes
    nothing and the others go on (§3.7)."""
    settings = request.config_dict[SETTINGS]
    if request.content_length is not None:
        check_payload_size(request.content_length, max_payload_size=settings.max_body_bytes)
    parsed = parse_bulk_request(await _body(request), max_operations=settings.bulk_max_operations)
    tenant_id, base = _principal(request).tenant_id, base_url(request)

    def locate(endpoint: str, resource_id: str) -> str:
        return f"{base}/{endpoint}/{resource_id}"

    async def execute(op: BulkOperation) -> Outcome:
        resource_type = _ENDPOINTS[op.resource_type_endpoint]
        if op.method == "POST":
            done = await provisioning.create(tenant_id, resource_type, op.data)
            status = 201
        elif op.method == "DELETE":
            assert op.resource_id is not None
            await provisioning.delete(tenant_id, resource_type, op.resource_id, op.version)
            return Outcome(204, op.resource_id, locate(op.resource_type_endpoint, op.resource_id))
        elif op.method == "PUT":
            assert op.resource_id is not None
            done = await provisioning.replace(
                tenant_id, resource_type, op.resource_id, op.data, op.version
            )
            status = 200
        else:
            assert op.resource_id is not None
            done = await provisioning.patch(
                tenant_id, resource_type, op.resource_id, op.data, op.version
            )
            status = 200
        return Outcome(
            status,
            done["id"],
            locate(op.resource_type_endpoint, done["id"]),
            done["meta"]["version"],
        )

    async def execute_many(ops: list[BulkOperation]) -> list[Outcome]:
        """User creations, in one statement."""
        made = await provisioning.create_users(tenant_id, [op.data for op in ops])
        return [
            Outcome(status=item.status, error=item.to_json())
            if isinstance(item, ScimError)
            else Outcome(201, item["id"], locate("Users", item["id"]), item["meta"]["version"])
            for item in made
        ]

    def creates_user(op: BulkOperation) -> bool:
        return op.method == "POST" and op.resource_type_endpoint == "Users"

    # One transaction, each operation a savepoint of it: an operation that fails is rolled
    # back alone, and the whole request costs one commit.
    # Grants are recomputed after the commit: a recomputation in its own transaction would
    # wait for the rows this one has locked.
    store = request.config_dict[STORE]
    async with store.engine.begin() as conn:
        provisioning = request.config_dict[PROVISIONING].acting(
            f"scim:{_principal(request).token_id}",
            context=request_context(request),
            store=store.within(conn),
            deferred=True,
        )
        results = await run_bulk(
            parsed, execute, locate=locate, execute_many=execute_many, batchable=creates_user
        )
    await provisioning.flush()
    return scim_json(bulk_response(results))


# --- listing and search ---------------------------------------------------------------------


def _parse(request: web.Request, text: str | None) -> Filter | None:
    if text is None:
        return None
    settings = request.config_dict[SETTINGS]
    limits = {"max_length": settings.filter_max_length, "max_depth": settings.filter_max_depth}
    try:
        return parse_filter(text, **limits)
    except InvalidFilterError:
        # Only a refused filter goes through the client normalisers (Entra ID's unquoted
        # `externalId eq jyoung`); one they leave as it is keeps its error.
        fixed = normalise_filter(text)
        if fixed == text:
            raise
        return parse_filter(fixed, **limits)


def _lister(request: web.Request, resource_type: ResourceType, query: Query) -> Any:
    store = request.config_dict[STORE]
    if resource_type is USER:
        return store.list_users
    return partial(
        store.list_groups, with_members=_wants_members(query.attributes, query.excluded_attributes)
    )


async def _list_one(
    request: web.Request, resource_type: ResourceType, query: Query
) -> dict[str, Any]:
    tenant_id = _principal(request).tenant_id
    node = _parse(request, query.filter)
    user_name = user_name_lookup(node) if resource_type is USER and not query.sort_by else None
    if user_name is not None:
        # What IdPs send before every create: a prepared statement, nothing to compile.
        store = request.config_dict[STORE]
        page = await store.find_users_by_name(tenant_id, user_name, query.start_index, query.count)
    else:
        where = None if node is None else compile_filter(resource_type.name, node)
        order = sort_key(resource_type.name, query.sort_by) if query.sort_by else None
        lister = _lister(request, resource_type, query)
        page = await lister(
            tenant_id, where, order, query.descending, query.start_index, query.count
        )
    base = base_url(request)
    resources = [
        _present(request, resource_type, r, query.attributes, query.excluded_attributes, base)
        for r in page.resources
    ]
    return list_response(resources, total=page.total, start_index=query.start_index)


def _query(request: web.Request) -> Query:
    settings = request.config_dict[SETTINGS]
    return parse_query(
        request.query,
        default_count=settings.scim_default_count,
        max_results=settings.scim_max_results,
    )


async def _search_query(request: web.Request) -> Query:
    settings = request.config_dict[SETTINGS]
    return parse_search_request(
        await _body(request),
        default_count=settings.scim_default_count,
        max_results=settings.scim_max_results,
    )


async def list_resources(request: web.Request) -> web.Response:
    return scim_json(await _list_one(request, _resource_type(request), _query(request)))


async def search_resources(request: web.Request) -> web.Response:
    query = await _search_query(request)
    return scim_json(await _list_one(request, _resource_type(request), query))


async def search_root(request: web.Request) -> web.Response:
    """POST /.search at the root: Users then Groups, paged as one list (RFC 7644 §3.4.3)."""
    query = await _search_query(request)
    node = _parse(request, query.filter)
    parts: list[tuple[ResourceType, Any]] = []
    errors: list[InvalidFilterError] = []
    for resource_type in RESOURCE_TYPES:
        try:
            where = None if node is None else compile_filter(resource_type.name, node)
            parts.append((resource_type, where))
        except InvalidFilterError as exc:
            # An attribute that only one resource type has simply matches none of the other.
            errors.append(exc)
    if not parts:
        raise errors[0]
    tenant_id = _principal(request).tenant_id
    resources: list[dict[str, Any]] = []
    total, skip, remaining = 0, query.start_index - 1, query.count
    base = base_url(request)
    for resource_type, where in parts:
        lister = _lister(request, resource_type, query)
        page = await lister(tenant_id, where, None, False, skip + 1, remaining)
        resources.extend(
            _present(request, resource_type, r, query.attributes, query.excluded_attributes, base)
            for r in page.resources
        )
        remaining -= len(page.resources)
        skip = max(0, skip - page.total)
        total += page.total
    return scim_json(list_response(resources, total=total, start_index=query.start_index))


# --- discovery (RFC 7644 §4) ----------------------------------------------------------------


def _discovery_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return list_response(items, total=len(items), start_index=1)


async def service_provider_config(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    body = discovery.service_provider_config(
        base_url=base_url(request),
        documentation_uri=None,
        max_results=settings.scim_max_results,
        max_payload_size=settings.max_body_bytes,
        patch=True,
        bulk=True,
        etag=True,
        sort=True,
        max_operations=settings.bulk_max_operations,
    )
    return scim_json(body)


async def resource_types(request: web.Request) -> web.Response:
    return scim_json(_discovery_list(discovery.resource_types_document(base_url(request))))


async def resource_type(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for item in discovery.resource_types_document(base_url(request)):
        if item["id"] == name:
            return scim_json(item)
    raise NotFoundError(f"ResourceType {name} not found")


async def schemas(request: web.Request) -> web.Response:
    return scim_json(_discovery_list(discovery.schemas_document(base_url(request))))


async def schema(request: web.Request) -> web.Response:
    urn = request.match_info["urn"]
    for item in discovery.schemas_document(base_url(request)):
        if item["id"].lower() == urn.lower():
            return scim_json(item)
    raise NotFoundError(f"Schema {urn} not found")


def create_scim_app(client_max_size: int) -> web.Application:
    app = web.Application(
        middlewares=[log_scim_requests, scim_errors, authenticate],
        client_max_size=client_max_size,
    )
    r = app.router
    kind = "{kind:Users|Groups}"
    r.add_get("/{tenant}/ServiceProviderConfig", service_provider_config)
    r.add_get("/{tenant}/ResourceTypes", resource_types)
    r.add_get("/{tenant}/ResourceTypes/{name}", resource_type)
    r.add_get("/{tenant}/Schemas", schemas)
    r.add_get("/{tenant}/Schemas/{urn}", schema)
    r.add_post("/{tenant}/.search", search_root)
    r.add_post("/{tenant}/Bulk", bulk)
    r.add_get(f"/{{tenant}}/{kind}", list_resources)
    r.add_post(f"/{{tenant}}/{kind}", create)
    r.add_post(f"/{{tenant}}/{kind}/.search", search_resources)
    r.add_get(f"/{{tenant}}/{kind}/{{id}}", get)
    r.add_put(f"/{{tenant}}/{kind}/{{id}}", replace)
    r.add_patch(f"/{{tenant}}/{kind}/{{id}}", patch)
    r.add_delete(f"/{{tenant}}/{kind}/{{id}}", remove)
    return app


__all__ = ["SCHEMAS", "SCIM_CONTENT_TYPE", "create_scim_app"]

"""The one place where errors become HTTP responses.

SCIM errors become RFC 7644 §3.12 JSON. aiohttp's own HTTP errors raised under /scim/v2
(unknown route, wrong method, body too large) become the same shape. Anything else is a bug:
logged with an error id, answered with a bare 500 that carries the id and no traceback.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from scim.errors import (
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ScimError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

log = logging.getLogger(__name__)

SCIM_CONTENT_TYPE = "application/scim+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def scim_json(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type=SCIM_CONTENT_TYPE,
        charset="utf-8",
        headers=headers,
    )


def scim_error_response(error: ScimError) -> web.Response:
    headers: dict[str, str] = {}
    if error.status == 401:
        # RFC 6750 §3: a 401 carries the authentication scheme the resource expects.
        headers["WWW-Authenticate"] = 'Bearer realm="idgate-scim"'
    return scim_json(error.to_json(), status=error.status, headers=headers)


def _from_http(exc: web.HTTPException) -> ScimError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFoundError("no such endpoint")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowedError(f"method {exc.method} is not allowed on this endpoint")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLargeError("request body is larger than the gateway accepts")
    if isinstance(exc, web.HTTPUnsupportedMediaType):
        return UnsupportedMediaTypeError(exc.text or "unsupported media type")
    if isinstance(exc, web.HTTPUnauthorized):
        return UnauthorizedError("authentication required")
    error = ScimError(exc.reason)
    error.status = exc.status
    return error


@web.middleware
async def scim_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ScimError as error:
        return scim_error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = scim_error_response(_from_http(exc))
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except Exception:
        error_id = "err_" + secrets.token_hex(8)
        log.exception("unhandled error %s on %s %s", error_id, request.method, request.path)
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "500",
            "detail": f"internal error {error_id}",
        }
        return scim_json(body, status=500)

"""Errors of the `/api/v1` API as RFC 9457 problem details (`application/problem+json`).

Every refusal has the same shape: `status`, a stable machine `code`, a `title`, a `detail`
for people, and for invalid input `errors`, one entry per field at fault. A refusal changes
nothing: handlers raise before they write, and writes are single transactions.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    500: "Internal error",
}


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    errors: list[FieldError] | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def invalid(detail: str, field: str | None = None) -> ApiError:
    errors = [FieldError(field=field, message=detail)] if field else []
    return ApiError(400, "invalid_request", detail, errors)


def conflict(detail: str) -> ApiError:
    return ApiError(409, "conflict", detail)


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "forbidden", detail)


def problem_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {
        "type": f"urn:idgate:problem:{error.code}",
        "title": _TITLES.get(error.status, "Error"),
        "status": error.status,
        "code": error.code,
        "detail": error.detail,
    }
    if error.errors:
        body["errors"] = [e.model_dump() for e in error.errors]
    return web.Response(
        body=orjson.dumps(body),
        status=error.status,
        content_type=PROBLEM_TYPE,
        headers={"Cache-Control": "no-store", **error.headers},
    )


def from_http(exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (no route, wrong method, body too large) in the same shape."""
    code = {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }.get(exc.status, "http_error")
    detail = {404: "no such endpoint"}.get(exc.status, exc.reason)
    headers = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    return ApiError(exc.status, code, detail, headers=headers)


def internal_error(request: web.Request) -> web.Response:
    error_id = "err_" + secrets.token_hex(8)
    log.exception("unhandled error %s on %s %s", error_id, request.method, request.path)
    return problem_response(ApiError(500, "internal_error", f"internal error {error_id}"))

"""The OpenAPI 3.1 document of `/api/v1`, built from the route declarations
(`gateway.admin.api.Operation`) and their pydantic models: what the routes check is what
the document says."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.admin.api import Need, Operation
from gateway.admin.problems import Problem

_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "The input is not valid; `errors` names each field at fault.",
    401: "No valid API key or session.",
    403: "The caller's level or scope does not allow this.",
    404: "No such organisation (or none the caller may see), or no such item.",
}
_NEEDS = {
    Need.SIGNED_IN: "any caller",
    Need.READ: "read level (admin:read key, admin or owner)",
    Need.ADMIN: "admin or owner",
    Need.OWNER: "owner",
}


Mode = Literal["validation", "serialization"]
Refs = Mapping[Any, Any]  # (model, mode) -> {"$ref": ...}


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], Mode]]:
    """Bodies as they are validated, answers as they are written."""
    seen: dict[tuple[type[BaseModel], Mode], None] = {(Problem, "serialization"): None}
    for op in operations:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        if op.response is not None:
            seen[(op.response, "serialization")] = None
    return list(seen)


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF)
        for name, prop in schema.get("properties", {}).items():
            prop = dict(prop)
            description = prop.pop("description", None)
            param = {"name": name, "in": "query", "required": False, "schema": prop}
            if description:
                param["description"] = description
            params.append(param)
        schemas.update(schema.get("$defs", {}))
    return params


def _operation(op: Operation, refs: Refs, schemas: dict[str, Any]) -> dict[str, Any]:
    needs = f"scope {op.scope}" if op.scope else _NEEDS[op.need]
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "description": (op.description + "\n\n" if op.description else "") + f"Needs: {needs}.",
        "tags": [op.tag],
        "parameters": _parameters(op, schemas),
    }
    if op.raw_body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {op.raw_body: {"schema": {"type": "string"}}},
        }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.status == 204:
        ok: dict[str, Any] = {"description": "Done."}
    elif op.response is not None:
        ok = {
            "description": "OK",
            "content": {op.content_type: {"schema": refs[(op.response, "serialization")]}},
        }
    else:
        ok = {"description": "OK", "content": {op.content_type: {"schema": {"type": "string"}}}}
    problem = {"application/problem+json": {"schema": refs[(Problem, "serialization")]}}
    responses: dict[str, Any] = {str(op.status): ok}
    codes = set(_ERRORS) | set(op.errors) | ({415} if op.body or op.raw_body else set())
    for code in sorted(codes):
        responses[str(code)] = {"description": _ERRORS.get(code, "Refused."), "content": problem}
    doc["responses"] = responses
    return doc


def document(operations: list[Operation], server: str) -> dict[str, Any]:
    refs, defs = models_json_schema(_models(operations), ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idgate administration API",
            "version": "1",
            "description": "Manage an organisation's users, invitations, groups, roles and "
            "projects; read its events. Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "idgk_... key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "idgate_session"},
            },
        },
        "security": [{"apiKey": []}, {"session": []}],
    }

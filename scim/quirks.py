"""Client normalisers: what real IdPs send that the RFC-clean core would refuse.

Each normaliser is one function, named for what it fixes, with the client that needs it. They
run at the edge, before the core parses a request; the core (scim.patch, scim.resources) stays
strict. docs/idp-compatibility.md lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from scim.schema import Attribute, ResourceType, Type

_BOOLEAN_STRINGS = {"true": True, "false": False}


def lowercase_patch_ops(body: Any) -> Any:
    """Microsoft Entra ID sends `"op": "Replace"` / `"Add"` / `"Remove"` (capitalised) in its
    default flavour; RFC 7644 §3.5.2 spells them in lower case."""
    operations = _operations(body)
    if operations is None:
        return body
    fixed = [
        {**op, "op": op["op"].lower()} if isinstance(op.get("op"), str) else op for op in operations
    ]
    return {**body, "Operations": fixed}


def member_removal_by_value_list(body: Any) -> Any:
    """Microsoft Entra ID removes group members with `{"op": "Remove", "path": "members",
    "value": [{"value": "<id>"}]}`. Read literally (RFC 7644 §3.5.2.2) that path removes every
    member; the client means only the listed ones, so the list becomes a value filter:
    `members[value eq "<id>" or ...]`."""
    operations = _operations(body)
    if operations is None:
        return body
    fixed = []
    for op in operations:
        value = op.get("value")
        if (
            isinstance(op.get("op"), str)
            and op["op"].lower() == "remove"
            and isinstance(op.get("path"), str)
            and op["path"].strip().lower() == "members"
            and isinstance(value, list)
            and value
            and all(isinstance(v, Mapping) and isinstance(v.get("value"), str) for v in value)
        ):
            ids = " or ".join(f"value eq {json.dumps(v['value'])}" for v in value)
            op = {k: v for k, v in op.items() if k != "value"} | {"path": f"members[{ids}]"}
        fixed.append(op)
    return {**body, "Operations": fixed}


def string_booleans(resource_type: ResourceType, resource: Any) -> Any:
    """Microsoft Entra ID sends booleans as strings (`"active": "False"`, `"primary": "True"`).
    For attributes the schema types boolean, the strings "true"/"false" (any case) become
    booleans; any other string is left for validation to refuse."""
    if not isinstance(resource, Mapping):
        return resource
    out = dict(resource)
    for key, value in resource.items():
        extension = resource_type.extension(key)
        if extension is not None and isinstance(value, Mapping):
            out[key] = _fix_booleans(extension.attributes, value)
    return _fix_booleans(resource_type.schema.attributes, out)


def normalise_patch_request(body: Any) -> Any:
    """Every PatchOp normaliser, in order."""
    return member_removal_by_value_list(lowercase_patch_ops(body))


def normalise_resource(resource_type: ResourceType, resource: Any) -> Any:
    """Every resource-body normaliser (POST, PUT, and a PATCH result)."""
    return string_booleans(resource_type, resource)


def _operations(body: Any) -> list[Mapping[str, Any]] | None:
    if not isinstance(body, Mapping):
        return None
    operations = body.get("Operations")
    if not isinstance(operations, list) or not all(isinstance(o, Mapping) for o in operations):
        return None
    return operations


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        return _BOOLEAN_STRINGS.get(value.strip().lower(), value)
    return value


def _fix_booleans(attributes: tuple[Attribute, ...], data: Mapping[str, Any]) -> dict[str, Any]:
    by_name = {a.name.lower(): a for a in attributes}
    out = dict(data)
    for key, value in data.items():
        attr = by_name.get(key.lower()) if isinstance(key, str) else None
        if attr is None:
            continue
        if attr.type is Type.BOOLEAN and not attr.multi_valued:
            out[key] = _boolean(value)
        elif attr.type is Type.COMPLEX and attr.sub_attributes:
            if isinstance(value, Mapping):
                out[key] = _fix_booleans(attr.sub_attributes, value)
            elif isinstance(value, list):
                out[key] = [
                    _fix_booleans(attr.sub_attributes, v) if isinstance(v, Mapping) else v
                    for v in value
                ]
    return out

"""Client normalisers: what real IdPs send that the RFC-clean core would refuse or misread.

Each normaliser is one function, named for what it fixes, with the client that needs it and
where the client documents the form. They run at the edge, before the core parses a request;
the core (scim.patch, scim.resources, scim.filter) stays strict. Three entry points chain them:
`normalise_patch_request` (a PatchOp body), `normalise_resource` (a POST or PUT body, and the
result of a PATCH) and `normalise_filter` (a `filter` the grammar refused).
docs/idp-compatibility.md lists every variant with the test vector that proves it.

Variants the core accepts by itself get a vector and no normaliser: path-less values whose keys
are paths (``name.givenName``, ``emails[type eq "work"].value``), attribute names in any case,
a lone object for a multi-valued attribute, `null` meaning unassigned, readOnly input such as
`id`, `meta` and `groups`, and extension URNs missing from `schemas`.

Pure functions over plain data: imports only the stdlib and `scim.*`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from scim.errors import InvalidFilterError, InvalidPathError
from scim.filter import Compare, parse_filter, parse_path
from scim.schema import ENTERPRISE_USER_SCHEMA_ID, USER_SCHEMA_ID, Attribute, ResourceType, Type

_BOOLEAN_STRINGS = {"true": True, "false": False}
# In lower case, as `_names` compares.
_ENTERPRISE = ENTERPRISE_USER_SCHEMA_ID.lower()
_MANAGER = f"{_ENTERPRISE}:manager"
_ROLES = f"{USER_SCHEMA_ID}:roles".lower()
# Characters that a bare filter value must not hold for `unquoted_filter_value` to quote it:
# with any of them the text could be something other than one comparison with one word.
_NOT_IN_BARE_VALUE = frozenset('"()[]')

_Operation = Mapping[str, Any]


# --- PatchOp bodies -----------------------------------------------------------------------------


def lowercase_patch_ops(body: Any) -> Any:
    """Microsoft Entra ID sends `"op": "Replace"` / `"Add"` / `"Remove"` (capitalised) in its
    default flavour; RFC 7644 §3.5.2 spells them in lower case. ("Known issues and resolutions
    with SCIM 2.0 protocol compliance", requests without the aadOptscim062020 flag.)"""
    return _map_operations(
        body, lambda op: {**op, "op": op["op"].lower()} if isinstance(op.get("op"), str) else op
    )


def member_removal_by_value_list(body: Any) -> Any:
    """Microsoft Entra ID removes group members with `{"op": "Remove", "path": "members",
    "value": [{"value": "<id>"}]}` ("Tutorial: Develop and plan provisioning for a SCIM
    endpoint", Update Group [Remove Members]). Read literally (RFC 7644 §3.5.2.2) that path
    removes every member; the client means only the listed ones, so the list becomes a value
    filter: `members[value eq "<id>" or ...]`."""

    def fix(op: _Operation) -> _Operation:
        value = op.get("value")
        if (
            _op_is(op, "remove")
            and _path_is(op, "members")
            and isinstance(value, list)
            and value
            and all(isinstance(v, Mapping) and isinstance(v.get("value"), str) for v in value)
        ):
            ids = " or ".join(f"value eq {json.dumps(v['value'])}" for v in value)
            return {k: v for k, v in op.items() if k != "value"} | {"path": f"members[{ids}]"}
        return op

    return _map_operations(body, fix)


def manager_path_without_urn(body: Any) -> Any:
    """Microsoft Entra ID's tutorial shows a manager update as `{"op": "Add", "path": "manager",
    "value": [{"$ref": "...", "value": "<id>"}]}` ("Tutorial: Develop and plan provisioning for
    a SCIM endpoint", Example 5). `manager` is an attribute of the enterprise extension, so
    RFC 7644 §3.10 wants its URN in the path, and it is single-valued, so the value is one
    object. The path gets the URN and a one-element list becomes its element. The core schema
    has no `manager`, so the bare name cannot mean anything else."""

    def fix(op: _Operation) -> _Operation:
        if not _path_is(op, "manager"):
            return op
        fixed = dict(op) | {"path": f"{ENTERPRISE_USER_SCHEMA_ID}:manager"}
        value = op.get("value")
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
            fixed["value"] = value[0]
        return fixed

    return _map_operations(body, fix)


def manager_as_string_in_patch(body: Any) -> Any:
    """Microsoft Entra ID sets the enterprise `manager` to a bare id: `{"op": "Add", "path":
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "<id>"}`, or
    that key in a path-less value. RFC 7643 §4.3 makes `manager` complex, so the id becomes
    `{"value": "<id>"}`. (Microsoft's tutorial shows `"manager": "123456"` in its example
    user; `manager_as_string` fixes POST and PUT bodies.)"""

    def fix(op: _Operation) -> _Operation:
        value = op.get("value")
        if _path_is(op, _MANAGER) and isinstance(value, str):
            return {**op, "value": {"value": value}}
        if op.get("path") is None and isinstance(value, Mapping):
            return {**op, "value": _manager_in_value(value)}
        return op

    return _map_operations(body, fix)


def app_role_json_values(body: Any) -> Any:
    """Microsoft Entra ID sends app role assignments in PATCH as JSON text inside `value`:
    `{"op": "Add", "path": "roles", "value": [{"value": "{\\"id\\":\\"<app role id>\\",
    \\"value\\":\\"Admin\\",\\"displayName\\":\\"Admin\\"}"}]}` ("Customize user provisioning
    attribute-mappings", Provisioning a role to a SCIM app: "The request formats in the PATCH
    and POST differ"). Its POST sends `{"value": "Admin", ...}`. So that both store the same
    role, the JSON text is read: its `value` becomes the role's `value`, its `displayName` the
    role's `display`; the app role `id` has no place in RFC 7643 §4.1.2 `roles` and is dropped.
    A `value` that is not JSON text holding a string `value` is left as sent."""

    def fix(op: _Operation) -> _Operation:
        value = op.get("value")
        if _path_is(op, "roles", _ROLES) and "value" in op:
            return {**op, "value": _decoded_roles(value)}
        if op.get("path") is None and isinstance(value, Mapping):
            fixed = {
                k: _decoded_roles(v) if _names(k, "roles", _ROLES) else v for k, v in value.items()
            }
            return {**op, "value": fixed}
        return op

    return _map_operations(body, fix)


# --- Resource bodies ----------------------------------------------------------------------------


def string_booleans(resource_type: ResourceType, resource: Any) -> Any:
    """Microsoft Entra ID sends booleans as strings (`"active": "False"`, `"primary": "True"`)
    in its default flavour ("Known issues and resolutions with SCIM 2.0 protocol compliance",
    requests made to disable users). For attributes the schema types boolean, the strings
    "true"/"false" (any case) become booleans; any other string is left for validation to
    refuse."""
    if not isinstance(resource, Mapping):
        return resource
    out = dict(resource)
    for key, value in resource.items():
        extension = resource_type.extension(key)
        if extension is not None and isinstance(value, Mapping):
            out[key] = _fix_booleans(extension.attributes, value)
    return _fix_booleans(resource_type.schema.attributes, out)


def manager_as_string(resource_type: ResourceType, resource: Any) -> Any:
    """Microsoft Entra ID gives the enterprise `manager` as a bare id in a resource body:
    `"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "123456"}`
    ("Tutorial: Develop and plan provisioning for a SCIM endpoint", Design your user and group
    schema). RFC 7643 §4.3 makes it complex; the id becomes `{"value": "123456"}`."""
    return _fix_enterprise(resource_type, resource, _manager_object)


def manager_id_as_value(resource_type: ResourceType, resource: Any) -> Any:
    """OneLogin's SCIM JSON template writes the manager as `"manager": {"managerId": "<id>",
    "displayName": "..."}` (OneLogin developer docs, "Define Your SCIM User Schema", OneLogin
    Enterprise User Schema), the SCIM 1.1 name. RFC 7643 §4.3 calls it `value`; `managerId`
    becomes `value` unless a `value` is given too."""

    def fix(manager: Any) -> Any:
        if not isinstance(manager, Mapping):
            return manager
        keys = {k.lower(): k for k in manager if isinstance(k, str)}
        if "managerid" not in keys or "value" in keys:
            return manager
        renamed = keys["managerid"]
        return {("value" if k == renamed else k): v for k, v in manager.items()}

    return _fix_enterprise(resource_type, resource, fix)


def role_display_name(resource_type: ResourceType, resource: Any) -> Any:
    """Microsoft Entra ID's AppRoleAssignmentsComplex mapping POSTs roles as `{"primary": false,
    "type": "WindowsAzureActiveDirectoryRole", "displayName": "Admin", "value": "Admin"}`
    ("Customize user provisioning attribute-mappings", Provisioning a role to a SCIM app).
    RFC 7643 §2.4 names that sub-attribute `display`; `displayName` becomes `display` unless
    a `display` is given too."""
    if resource_type.schema.attribute("roles") is None or not isinstance(resource, Mapping):
        return resource

    def fix(role: Any) -> Any:
        if not isinstance(role, Mapping):
            return role
        keys = {k.lower(): k for k in role if isinstance(k, str)}
        if "displayname" not in keys or "display" in keys:
            return role
        renamed = keys["displayname"]
        return {("display" if k == renamed else k): v for k, v in role.items()}

    out = dict(resource)
    for key, value in resource.items():
        if isinstance(key, str) and key.lower() == "roles" and isinstance(value, list):
            out[key] = [fix(role) for role in value]
    return out


# --- Filters ------------------------------------------------------------------------------------


def unquoted_filter_value(text: str) -> str:
    """Microsoft's SCIM tutorial shows Entra ID querying `filter=externalId eq jyoung`, the
    string without the quotes RFC 7644 §3.4.2.2 requires ("Tutorial: Develop and plan
    provisioning for a SCIM endpoint", Example 1). Only the plainly unambiguous case is
    rewritten: a filter the grammar refuses that is exactly an attribute path, `eq`, and one
    bare word holding no quote, parenthesis or bracket. The word becomes a JSON string, and
    the result must parse as that one comparison. Anything else is returned as it is, so
    its error stands."""
    try:
        parse_filter(text)
    except InvalidFilterError:
        pass
    else:
        return text
    # Three words, checked against the grammar on both sides: the first must be an attribute
    # path and the rewritten filter must parse as the single comparison intended.
    words = text.split()
    if len(words) != 3 or words[1].lower() != "eq" or _NOT_IN_BARE_VALUE & set(words[2]):
        return text
    try:
        path = parse_path(words[0])
    except InvalidPathError:
        return text
    if path.filter is not None or path.sub is not None:
        return text
    quoted = f"{words[0]} eq {json.dumps(words[2])}"
    try:
        node = parse_filter(quoted)
    except InvalidFilterError:
        return text
    if not (isinstance(node, Compare) and node.path == path.attr and node.value == words[2]):
        return text
    return quoted


# --- Entry points -------------------------------------------------------------------------------


def normalise_patch_request(body: Any) -> Any:
    """Every PatchOp normaliser, in order (ops are lower-cased first; the others read them in
    any case)."""
    body = lowercase_patch_ops(body)
    body = member_removal_by_value_list(body)
    body = manager_path_without_urn(body)
    body = manager_as_string_in_patch(body)
    return app_role_json_values(body)


def normalise_resource(resource_type: ResourceType, resource: Any) -> Any:
    """Every resource-body normaliser (POST, PUT, and a PATCH result)."""
    resource = string_booleans(resource_type, resource)
    resource = manager_as_string(resource_type, resource)
    resource = manager_id_as_value(resource_type, resource)
    return role_display_name(resource_type, resource)


def normalise_filter(text: str) -> str:
    """Every filter normaliser; meant for a filter the grammar refused."""
    return unquoted_filter_value(text)


# --- Helpers ------------------------------------------------------------------------------------


def _operations(body: Any) -> list[_Operation] | None:
    if not isinstance(body, Mapping):
        return None
    operations = body.get("Operations")
    if not isinstance(operations, list) or not all(isinstance(o, Mapping) for o in operations):
        return None
    return operations


def _map_operations(body: Any, fix: Callable[[_Operation], _Operation]) -> Any:
    operations = _operations(body)
    if operations is None:
        return body
    return {**body, "Operations": [fix(op) for op in operations]}


def _op_is(op: _Operation, name: str) -> bool:
    value = op.get("op")
    return isinstance(value, str) and value.lower() == name


def _names(key: Any, *names: str) -> bool:
    """Whether `key` is one of `names` (given in lower case), ignoring case and spaces."""
    return isinstance(key, str) and key.strip().lower() in names


def _path_is(op: _Operation, *names: str) -> bool:
    return _names(op.get("path"), *names)


def _manager_object(value: Any) -> Any:
    return {"value": value} if isinstance(value, str) else value


def _manager_in_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """A path-less value with the manager as a bare id, as a URN-qualified key or inside the
    enterprise block, given the object form."""
    out = dict(value)
    for key, item in value.items():
        if _names(key, _MANAGER):
            out[key] = _manager_object(item)
        elif _names(key, _ENTERPRISE) and isinstance(item, Mapping):
            out[key] = {
                k: _manager_object(v) if _names(k, "manager") else v for k, v in item.items()
            }
    return out


def _fix_enterprise(resource_type: ResourceType, resource: Any, fix: Callable[[Any], Any]) -> Any:
    """`resource` with `fix` applied to the manager in its enterprise extension block."""
    if resource_type.extension(ENTERPRISE_USER_SCHEMA_ID) is None:
        return resource
    if not isinstance(resource, Mapping):
        return resource
    out = dict(resource)
    for key, block in resource.items():
        if _names(key, _ENTERPRISE) and isinstance(block, Mapping):
            out[key] = {k: fix(v) if _names(k, "manager") else v for k, v in block.items()}
    return out


def _decoded_roles(value: Any) -> Any:
    if isinstance(value, list):
        return [_decoded_role(item) for item in value]
    return _decoded_role(value)


def _decoded_role(item: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    text = item.get("value")
    if not isinstance(text, str) or not text.lstrip().startswith("{"):
        return item
    try:
        assignment = json.loads(text)
    except ValueError:
        return item
    if not isinstance(assignment, Mapping) or not isinstance(assignment.get("value"), str):
        return item
    role = {k: v for k, v in item.items() if not _names(k, "value")}
    role["value"] = assignment["value"]
    display = assignment.get("displayName")
    if isinstance(display, str) and not any(_names(k, "display") for k in item):
        role["display"] = display
    return role


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        return _BOOLEAN_STRINGS.get(value.strip().lower(), value)
    return value


# Keyed by the identity of a schema's attribute tuple (kept alive by the entry).
_BY_NAME: dict[int, tuple[tuple[Attribute, ...], dict[str, Attribute]]] = {}


def _by_folded_name(attributes: tuple[Attribute, ...]) -> dict[str, Attribute]:
    entry = _BY_NAME.get(id(attributes))
    if entry is None or entry[0] is not attributes:
        entry = _BY_NAME[id(attributes)] = (attributes, {a.name.lower(): a for a in attributes})
    return entry[1]


def _fix_booleans(attributes: tuple[Attribute, ...], data: Mapping[str, Any]) -> dict[str, Any]:
    by_name = _by_folded_name(attributes)
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

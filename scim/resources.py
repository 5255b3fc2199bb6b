"""Resource bodies in and out: validate client input, shape stored resources for responses.

`parse_resource` turns a POST or PUT body into the canonical stored form (RFC 7643 §2, §3, §4;
RFC 7644 §3.3, §3.5.1): canonical attribute names, type-checked values, readOnly input ignored,
immutable values kept. `project` shapes a stored resource for a response from each attribute's
`returned` characteristic (RFC 7643 §2.2, §7) and the `attributes` / `excludedAttributes`
parameters (RFC 7644 §3.4.2.5, §3.9, §3.10).

Pure functions over plain dicts: imports only the stdlib, `scim.errors` and `scim.schema`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scim.errors import InvalidSyntaxError, InvalidValueError, MutabilityError
from scim.schema import (
    COMMON_ATTRIBUTES,
    EXTERNAL_ID,
    GROUP_SCHEMA,
    ID,
    META,
    Attribute,
    Mutability,
    ResourceType,
    Returned,
    Schema,
    Type,
    resolve,
)

# Folded attribute name -> (name as the client wrote it, value).
_Fields = dict[str, tuple[str, Any]]

_MEMBERS = GROUP_SCHEMA.attribute("members")
_MEMBER_TYPES = {"user": "User", "group": "Group"}
_XSD_DATETIME = re.compile(
    r"(?P<main>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?P<fraction>\.[0-9]+)?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?"
)
_EXPECTED = {
    Type.STRING: "a string",
    Type.BOOLEAN: "a boolean (true or false)",
    Type.DECIMAL: "a number",
    Type.INTEGER: "an integer",
    Type.DATETIME: "an xsd:dateTime string such as 2015-01-23T04:56:22Z",
    Type.BINARY: "a base64 string",
    Type.REFERENCE: "a string (a URI)",
    Type.COMPLEX: "an object",
}


# --- Input --------------------------------------------------------------------------------------


def parse_resource(
    resource_type: ResourceType, body: object, *, existing: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a POST body (`existing` is None) or a PUT body (`existing` is the stored resource).

    Returns the resource in canonical form: `schemas` (the core URN, then each extension
    present), `externalId`, core attributes in schema order, then extension blocks under their
    URN. Never holds id, meta or readOnly attributes; keeps writeOnly `password` for storage.
    Null values and empty arrays are unassigned and left out. Raises `InvalidSyntaxError`,
    `InvalidValueError` or `MutabilityError` whose detail names the attribute.
    """
    if not isinstance(body, Mapping):
        raise InvalidSyntaxError(f"The request body must be a JSON object, got {json_type(body)}")
    fields = fold_keys(body, "The request body")
    declared = _declared_schemas(resource_type, fields)
    core_attributes = (*COMMON_ATTRIBUTES, *resource_type.schema.attributes)

    core = _parse_attributes(core_attributes, fields, "")
    blocks: dict[str, dict[str, Any]] = {}
    for ext, _required in resource_type.extensions:
        entry = fields.get(ext.id.lower())
        if entry is None or entry[1] is None:
            continue
        # Accepted even when the client left the URN out of `schemas`; it is added back below.
        if not isinstance(entry[1], Mapping):
            raise InvalidValueError(
                f"{ext.id} must be an object holding the extension's attributes, "
                f"got {json_type(entry[1])}"
            )
        blocks[ext.id] = _parse_attributes(ext.attributes, fold_keys(entry[1], ext.id), ext.id)

    # RFC 7644 §3.5.1: "If an attribute is 'required', clients MUST specify the attribute in
    # the PUT request"; so checked on what the client sent, before immutable values are kept.
    _check_required(resource_type.schema, core, "")
    for ext, required in resource_type.extensions:
        if blocks.get(ext.id):
            _check_required(ext, blocks[ext.id], ext.id)
        elif required:
            # RFC 7643 §6: "If true, a resource of this type MUST include this schema extension."
            raise InvalidValueError(f"{ext.id} is required for {resource_type.name} resources")

    if existing is not None:
        _keep_immutable(core_attributes, core, existing, "")
        for ext, _required in resource_type.extensions:
            before = _get(existing, ext.id)
            if isinstance(before, Mapping):
                block = blocks.setdefault(ext.id, {})
                _keep_immutable(ext.attributes, block, before, ext.id)

    out: dict[str, Any] = {"schemas": [resource_type.schema.id]}
    out.update(_in_order(core_attributes, core))
    for ext, _required in resource_type.extensions:
        if blocks.get(ext.id):
            out["schemas"].append(ext.id)
            out[ext.id] = _in_order(ext.attributes, blocks[ext.id])
    for key, value in _unknown_extensions(resource_type, fields, declared).items():
        out["schemas"].append(key)
        out[key] = value
    return out


def _declared_schemas(resource_type: ResourceType, fields: _Fields) -> set[str]:
    core = resource_type.schema.id
    entry = fields.get("schemas")
    if entry is None or entry[1] is None:
        raise InvalidValueError(f"schemas is required and must include {core}")
    value = entry[1]
    if not isinstance(value, list) or not all(isinstance(urn, str) for urn in value):
        raise InvalidValueError(
            f"schemas must be an array of schema URN strings, got {json_type(value)}"
        )
    declared = {urn.lower() for urn in value}
    # RFC 7643 §3: "schemas" is REQUIRED and names the schemas of the attributes present.
    if core.lower() not in declared:
        raise InvalidValueError(f"schemas must include {core}")
    return declared


def _unknown_extensions(
    resource_type: ResourceType, fields: _Fields, declared: set[str]
) -> dict[str, Any]:
    """Blocks under URNs this resource type does not define, kept only when declared in schemas."""
    known = {urn.lower() for urn in resource_type.schema_ids}
    kept: dict[str, Any] = {}
    for folded, (key, value) in fields.items():
        if not folded.startswith("urn:") or folded in known or folded not in declared:
            continue
        if value is None or value == [] or value == {}:
            continue
        kept[key] = copy.deepcopy(value)
    return kept


def _parse_attributes(
    attributes: Sequence[Attribute], fields: _Fields, prefix: str
) -> dict[str, Any]:
    # RFC 7644 §3.3: "the server is free to alter and/or ignore POSTed content"; names that
    # match no attribute here are dropped, never stored.
    values: dict[str, Any] = {}
    for attr in attributes:
        entry = fields.get(attr.name.lower())
        if entry is None:
            continue
        value = _parse_value(attr, entry[1], f"{prefix}:{attr.name}" if prefix else attr.name)
        if value is not None:
            values[attr.name] = value
    return values


def _parse_value(attr: Attribute, value: Any, path: str) -> Any:
    """The canonical value, or None when the attribute is to be left unassigned."""
    # RFC 7644 §3.5.1: "readOnly: Any values provided SHALL be ignored." (and §3.3 for POST)
    if attr.mutability is Mutability.READ_ONLY:
        return None
    # RFC 7643 §2.5: "Unassigned attributes, the null value, or empty array (in the case of
    # a multi-valued attribute) SHALL be considered to be equivalent in 'state'."
    if value is None:
        return None
    if attr.multi_valued:
        return _parse_multi_valued(attr, value, path)
    parsed = _parse_single(attr, value, path)
    return None if parsed == {} else parsed


def _parse_multi_valued(attr: Attribute, value: Any, path: str) -> list[Any] | None:
    if not isinstance(value, list):
        # OneLogin sends a multi-valued attribute such as `emails` as a lone object instead of
        # an array; read it as a one-element array.
        value = [value]
    items: list[Any] = []
    for index, item in enumerate(value):
        if item is None:
            continue
        item_path = f"{path}[{index}]"
        parsed = _parse_single(attr, item, item_path)
        if attr is _MEMBERS:
            _check_member(parsed, item_path)
        if parsed != {}:
            items.append(parsed)
    if attr is _MEMBERS:
        items = distinct_members(items)
    if attr.type is Type.COMPLEX and attr.sub("primary") is not None:
        _one_primary(items)
    return items or None


def _parse_single(attr: Attribute, value: Any, path: str) -> Any:
    if attr.type is not Type.COMPLEX:
        return _parse_simple(attr, value, path)
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"{path} must be an object, got {json_type(value)}")
    fields = fold_keys(value, path)
    values: dict[str, Any] = {}
    for sub in attr.sub_attributes:
        entry = fields.get(sub.name.lower())
        if entry is None:
            continue
        parsed = _parse_value(sub, entry[1], f"{path}.{sub.name}")
        if parsed is not None:
            values[sub.name] = parsed
    return values


def _parse_simple(attr: Attribute, value: Any, path: str) -> Any:
    kind = attr.type
    if kind in (Type.STRING, Type.REFERENCE):
        if isinstance(value, str):
            return value
    elif kind is Type.BOOLEAN:
        # RFC 7643 §2.3.2: "The literal 'true' or 'false'." Strings such as "True" are
        # rewritten, where a client is known to send them, before this point.
        if isinstance(value, bool):
            return value
    elif kind is Type.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is Type.DECIMAL:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
    elif kind is Type.DATETIME:
        if isinstance(value, str):
            # RFC 7643 §2.3.5: "MUST be encoded as a valid xsd:dateTime ... and MUST include
            # both a date and a time."
            if _is_xsd_datetime(value):
                return value
            raise InvalidValueError(
                f"{path} must be an xsd:dateTime with a date and a time, such as "
                f"2015-01-23T04:56:22Z; got {value!r}"
            )
    elif kind is Type.BINARY and isinstance(value, str):
        return _parse_base64(value, path)
    raise InvalidValueError(f"{path} must be {_EXPECTED[kind]}, got {json_type(value)}")


def _is_xsd_datetime(text: str) -> bool:
    match = _XSD_DATETIME.fullmatch(text)
    if match is None:
        return False
    # Python reads at most six fractional digits; xsd:dateTime allows any number.
    fraction = (match.group("fraction") or "")[:7]
    try:
        datetime.fromisoformat(match.group("main") + fraction + (match.group("zone") or ""))
    except ValueError:
        return False
    return True


def _parse_base64(text: str, path: str) -> str:
    # RFC 7643 §2.3.6: "The attribute value MUST be base64 encoded as specified in Section 4
    # of [RFC4648]." Line breaks (PEM bodies, the wrapped §8.2 example) carry no data and are
    # removed.
    compact = "".join(text.split())
    try:
        base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise InvalidValueError(
            f"{path} must be base64-encoded binary data (RFC 4648 §4)"
        ) from None
    return compact


def _check_member(member: dict[str, Any], path: str) -> None:
    value = member.get("value")
    if value is None or not value.strip():
        raise InvalidValueError(f"{path}.value is required: the id of the member User or Group")
    kind = member.get("type")
    if kind is not None:
        canonical = _MEMBER_TYPES.get(kind.lower())
        if canonical is None:
            raise InvalidValueError(f'{path}.type must be "User" or "Group", got {kind!r}')
        member["type"] = canonical


def distinct_members(members: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Members with repeated `value`s dropped, the first kept."""
    seen: set[str] = set()
    distinct = []
    for member in members:
        if member["value"] not in seen:
            seen.add(member["value"])
            distinct.append(member)
    return distinct


def _one_primary(items: list[Any]) -> None:
    # RFC 7643 §2.4: 'The primary attribute value "true" MUST appear no more than once.'
    # The first primary wins and later ones become false, as Entra ID and Okta expect, rather
    # than refusing the request.
    seen = False
    for item in items:
        if item.get("primary") is True:
            if seen:
                item["primary"] = False
            seen = True


def _keep_immutable(
    attributes: Sequence[Attribute],
    values: dict[str, Any],
    existing: Mapping[str, Any],
    prefix: str,
) -> None:
    """RFC 7644 §3.5.1 immutable: "If one or more values are already set for the attribute, the
    input value(s) MUST match ... If the service provider has no existing values, the new
    value(s) SHALL be applied." An omitted immutable value is kept (RFC 7643 §7: "SHALL NOT be
    updated"). Checked for top-level attributes and sub-attributes of single-valued complex ones;
    elements of a multi-valued attribute are replaced as a whole.
    """
    for attr in _with_immutables(attributes):
        path = f"{prefix}:{attr.name}" if prefix else attr.name
        before = _get(existing, attr.name)
        if attr.mutability is Mutability.IMMUTABLE:
            _keep_immutable_value(attr, values, before, path)
        elif (
            attr.type is Type.COMPLEX
            and not attr.multi_valued
            and isinstance(before, Mapping)
            and any(sub.mutability is Mutability.IMMUTABLE for sub in attr.sub_attributes)
        ):
            block = dict(values.get(attr.name) or {})
            for sub in attr.sub_attributes:
                if sub.mutability is Mutability.IMMUTABLE:
                    _keep_immutable_value(sub, block, _get(before, sub.name), f"{path}.{sub.name}")
            if block:
                values[attr.name] = _in_order(attr.sub_attributes, block)


# Keyed by the identity of a schema's attribute tuple (kept alive by the entry): hashing the
# frozen tree on every request would cost more than the check.
_IMMUTABLES: dict[int, tuple[Sequence[Attribute], tuple[Attribute, ...]]] = {}


def _with_immutables(attributes: Sequence[Attribute]) -> tuple[Attribute, ...]:
    """The attributes `_keep_immutable` has to look at: immutable ones, and single-valued
    complex ones with an immutable sub-attribute. None at all for User and Group."""
    entry = _IMMUTABLES.get(id(attributes))
    if entry is None or entry[0] is not attributes:
        relevant = tuple(
            attr
            for attr in attributes
            if attr.mutability is Mutability.IMMUTABLE
            or (
                attr.type is Type.COMPLEX
                and not attr.multi_valued
                and any(sub.mutability is Mutability.IMMUTABLE for sub in attr.sub_attributes)
            )
        )
        entry = _IMMUTABLES[id(attributes)] = (attributes, relevant)
    return entry[1]


def _keep_immutable_value(attr: Attribute, values: dict[str, Any], before: Any, path: str) -> None:
    if before is None or before == [] or before == {}:
        return
    after = values.get(attr.name)
    if after is None:
        values[attr.name] = copy.deepcopy(before)
    elif not same_value(attr, before, after):
        raise MutabilityError(
            f"{path} is immutable: it already has a value and the request gives a different one"
        )


def same_value(attr: Attribute, before: Any, after: Any) -> bool:
    """Whether two values of `attr` are equal, folding case unless the attribute is caseExact."""
    if (
        attr.type is Type.STRING
        and not attr.case_exact
        and isinstance(before, str)
        and isinstance(after, str)
    ):
        return before.lower() == after.lower()
    return bool(before == after)


def _check_required(schema: Schema, values: Mapping[str, Any], prefix: str) -> None:
    for attr in schema.attributes:
        if not attr.required or attr.mutability is Mutability.READ_ONLY:
            continue
        path = f"{prefix}:{attr.name}" if prefix else attr.name
        value = values.get(attr.name)
        if value is None:
            raise InvalidValueError(f"{path} is required")
        # RFC 7643 §4.1.1: "Each User MUST include a non-empty userName value."
        if isinstance(value, str) and not value.strip():
            raise InvalidValueError(f"{path} is required and must not be blank")


# --- Output -------------------------------------------------------------------------------------


def parse_attribute_list(text: str | None) -> tuple[str, ...]:
    """Split the comma-separated `attributes` / `excludedAttributes` query parameter."""
    if text is None:
        return ()
    return tuple(item.strip() for item in text.split(",") if item.strip())


def project_stored(
    resource_type: ResourceType,
    resource: Mapping[str, Any],
    *,
    attributes: Sequence[str] = (),
    excluded_attributes: Sequence[str] = (),
) -> dict[str, Any]:
    """`project` for a resource as the store returns it: canonical names and order, built from
    `parse_resource` output plus `id`, `meta` and read-only relations.

    Without `attributes` and `excluded_attributes` such a resource already is its default
    representation except for `returned: never` and `returned: request` values, so only those
    are dropped; this is the hot path of every list page.
    """
    hidden = _hidden_by_default(resource_type)
    if attributes or excluded_attributes or hidden is None:
        return project(
            resource_type,
            resource,
            attributes=attributes,
            excluded_attributes=excluded_attributes,
        )
    top, subs = hidden
    out = {k: v for k, v in resource.items() if k not in top}
    for attr_name, sub_names in subs:
        values = out.get(attr_name)
        if isinstance(values, list):
            out[attr_name] = [
                {k: v for k, v in item.items() if k not in sub_names}
                if isinstance(item, Mapping)
                else item
                for item in values
            ]
    return out


_Hidden = tuple[frozenset[str], tuple[tuple[str, frozenset[str]], ...]]
# Keyed by the resource type's name: hashing the frozen schema tree on every call would cost
# more than the projection itself.
_HIDDEN: dict[str, _Hidden | None] = {}


def _hidden_by_default(resource_type: ResourceType) -> _Hidden | None:
    """Core attributes, and sub-attributes per attribute, not returned by default; None when an
    extension hides any (the fast path does not look into extension blocks)."""
    key = resource_type.name
    if key not in _HIDDEN:
        _HIDDEN[key] = _compute_hidden(resource_type)
    return _HIDDEN[key]


def _compute_hidden(resource_type: ResourceType) -> _Hidden | None:
    hidden = (Returned.NEVER, Returned.REQUEST)
    if any(
        a.returned in hidden or any(s.returned in hidden for s in a.sub_attributes)
        for ext, _required in resource_type.extensions
        for a in ext.attributes
    ):
        return None
    top = frozenset(a.name for a in resource_type.schema.attributes if a.returned in hidden)
    subs = tuple(
        (a.name, frozenset(s.name for s in a.sub_attributes if s.returned in hidden))
        for a in resource_type.schema.attributes
        if any(s.returned in hidden for s in a.sub_attributes)
    )
    return top, subs


def project(
    resource_type: ResourceType,
    resource: Mapping[str, Any],
    *,
    attributes: Sequence[str] = (),
    excluded_attributes: Sequence[str] = (),
) -> dict[str, Any]:
    """Shape a stored resource for a response (RFC 7644 §3.4.2.5, RFC 7643 §7 `returned`).

    `returned: never` attributes are never output, `always` ones always; `default` ones unless
    `attributes` is given without naming them or `excluded_attributes` names them; `request`
    ones only when `attributes` names them. `schemas` and `id` are always output. Names are
    attribute paths in any case (`name.givenName`, a URN-qualified attribute, or a whole
    extension URN); names that match nothing are ignored. Naming a sub-attribute returns its
    parent with only that sub-attribute (plus `always` ones). Extension blocks left empty are
    dropped with their URN. Keys come out as schemas, id, externalId, core attributes in schema
    order, extensions, meta.
    """
    include = _Names.parse(resource_type, resource, attributes)
    exclude = _Names.parse(resource_type, resource, excluded_attributes)
    chosen = _Choice(include if include.any else None, exclude)
    core_id = resource_type.schema.id
    fields = _lower_keys(resource)

    out: dict[str, Any] = {"schemas": [core_id]}
    for attr in (ID, EXTERNAL_ID, *resource_type.schema.attributes):
        _project_into(out, attr, fields.get(attr.name.lower()), core_id, chosen)
    for ext, _required in resource_type.extensions:
        stored = fields.get(ext.id.lower())
        if not isinstance(stored, Mapping):
            continue
        ext_fields = _lower_keys(stored)
        block: dict[str, Any] = {}
        for attr in ext.attributes:
            _project_into(block, attr, ext_fields.get(attr.name.lower()), ext.id, chosen)
        if block:
            out["schemas"].append(ext.id)
            out[ext.id] = block
    known = {urn.lower() for urn in resource_type.schema_ids}
    for key, value in resource.items():
        folded = key.lower()
        if not folded.startswith("urn:") or folded in known:
            continue
        if value is None or value == [] or value == {} or not chosen.wants_block(folded):
            continue
        out["schemas"].append(key)
        out[key] = copy.deepcopy(value)
    _project_into(out, META, fields.get("meta"), core_id, chosen)
    return out


@dataclass
class _Names:
    """A parsed `attributes` or `excludedAttributes` list."""

    # Folded URNs named as a whole (a schema of the resource type or an unknown extension).
    schemas: set[str] = field(default_factory=set)
    # (schema URN, attribute name) -> sub-attribute names, or None for the whole attribute.
    attributes: dict[tuple[str, str], set[str] | None] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.schemas or self.attributes)

    def names(self, urn: str, attr: str) -> bool:
        """The attribute or one of its sub-attributes is named."""
        return urn.lower() in self.schemas or (urn, attr) in self.attributes

    def whole(self, urn: str, attr: str) -> bool:
        if urn.lower() in self.schemas:
            return True
        return (urn, attr) in self.attributes and self.attributes[(urn, attr)] is None

    def sub(self, urn: str, attr: str, sub: str) -> bool:
        """The sub-attribute itself is named (not through its parent)."""
        subs = self.attributes.get((urn, attr))
        return subs is not None and sub in subs

    @classmethod
    def parse(
        cls, resource_type: ResourceType, resource: Mapping[str, Any], items: Sequence[str]
    ) -> _Names:
        names = cls()
        urns = {urn.lower() for urn in resource_type.schema_ids}
        urns.update(key.lower() for key in resource if key.lower().startswith("urn:"))
        by_length = sorted(resource_type.schema_ids, key=len, reverse=True)
        for item in items:
            text = item.strip()
            if text.lower() in urns:
                names.schemas.add(text.lower())
                continue
            # RFC 7644 §3.10: a fully qualified name is the schema URN, ":", then the attribute.
            uri = next((u for u in by_length if text.lower().startswith(u.lower() + ":")), None)
            if uri is not None:
                text = text[len(uri) + 1 :]
            elif text.lower().startswith("urn:"):
                continue
            attr, dot, sub = text.partition(".")
            if (dot and not sub) or "." in sub:
                continue
            resolved = resolve(resource_type, uri, attr, sub or None)
            if resolved is None:
                continue
            key = (resolved.schema, resolved.attribute.name)
            if resolved.sub is None:
                names.attributes[key] = None
                continue
            subs = names.attributes.get(key, set())
            if subs is not None:
                subs.add(resolved.sub.name)
                names.attributes[key] = subs
        return names


@dataclass(frozen=True)
class _Choice:
    """What a response carries, from `attributes` (None when not given) and `excluded`."""

    include: _Names | None
    exclude: _Names

    def wants(self, attr: Attribute, urn: str) -> bool:
        # RFC 7643 §7: never: "The attribute is never returned."; always: "The attribute is
        # always returned, regardless of the contents of the 'attributes' parameter."
        # RFC 7644 §3.4.2.5: excludedAttributes "SHALL have no effect on attributes whose
        # schema 'returned' setting is 'always'".
        if attr.returned is Returned.NEVER:
            return False
        if attr.returned is Returned.ALWAYS:
            return True
        if self.exclude.whole(urn, attr.name):
            return False
        if self.include is None:
            # RFC 7643 §7: request: "returned in a SCIM query operation only if specified in
            # the 'attributes' parameter."
            return attr.returned is Returned.DEFAULT
        return self.include.names(urn, attr.name)

    def wants_sub(self, parent: Attribute, sub: Attribute, urn: str) -> bool:
        if sub.returned is Returned.NEVER:
            return False
        if sub.returned is Returned.ALWAYS:
            return True
        if self.exclude.sub(urn, parent.name, sub.name):
            return False
        include = self.include
        named = include is not None and (
            include.whole(urn, parent.name) or include.sub(urn, parent.name, sub.name)
        )
        if sub.returned is Returned.REQUEST:
            return named
        partial = (
            include is not None
            and include.names(urn, parent.name)
            and not include.whole(urn, parent.name)
        )
        return named or not partial

    def wants_block(self, folded_urn: str) -> bool:
        """An extension block this resource type does not define; treated as returned default."""
        if folded_urn in self.exclude.schemas:
            return False
        return self.include is None or folded_urn in self.include.schemas


def _project_into(
    out: dict[str, Any], attr: Attribute, value: Any, urn: str, chosen: _Choice
) -> None:
    if value is None or not chosen.wants(attr, urn):
        return
    if attr.type is not Type.COMPLEX:
        out[attr.name] = copy.deepcopy(value)
        return
    subs = [sub for sub in attr.sub_attributes if chosen.wants_sub(attr, sub, urn)]
    if attr.multi_valued:
        items = value if isinstance(value, list) else [value]
        shaped = [_project_complex(subs, item) for item in items]
        kept = [item for item in shaped if item]
        if kept:
            out[attr.name] = kept
    else:
        single = _project_complex(subs, value)
        if single:
            out[attr.name] = single


def _project_complex(subs: Sequence[Attribute], value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    fields = _lower_keys(value)
    shaped: dict[str, Any] = {}
    for sub in subs:
        sub_value = fields.get(sub.name.lower())
        if sub_value is not None:
            shaped[sub.name] = copy.deepcopy(sub_value)
    return shaped


# --- Shared -------------------------------------------------------------------------------------


def fold_keys(obj: Mapping[Any, Any], where: str) -> _Fields:
    """Key by folded name (RFC 7643 §2.1: attribute names are case-insensitive), keeping the
    client's spelling: folded name -> (name as written, value)."""
    fields: _Fields = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        folded = key.lower()
        if folded in fields:
            raise InvalidSyntaxError(
                f"{where} gives both {fields[folded][0]!r} and {key!r}; attribute names are "
                "case-insensitive, so these are the same attribute"
            )
        fields[folded] = (key, value)
    return fields


def _lower_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in obj.items()}


def _get(obj: Mapping[str, Any], name: str) -> Any:
    if name in obj:
        return obj[name]
    folded = name.lower()
    return next((value for key, value in obj.items() if key.lower() == folded), None)


def _in_order(attributes: Sequence[Attribute], values: Mapping[str, Any]) -> dict[str, Any]:
    return {attr.name: values[attr.name] for attr in attributes if attr.name in values}


def json_type(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__

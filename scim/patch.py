"""RFC 7644 §3.5.2 PATCH: read a PatchOp request and apply its operations to a resource.

`parse_patch_request` checks the PatchOp message and parses each "path" with the one grammar
of `scim.filter` (``PATH = attrPath / valuePath [subAttr]``). `apply_patch` applies the
operations in order to a copy of a stored resource (RFC 7644 §3.5.2.1 add, §3.5.2.2 remove,
§3.5.2.3 replace) and returns the new resource, plus the Group membership changes when those
are kept apart for set-wise storage. The caller validates the result with
`scim.resources.parse_resource(resource_type, result, existing=original)`, which checks value
types, drops readOnly values and keeps immutable ones; this module checks the structure it
needs to apply an operation and the rules that depend on the operation itself (mutability of
the target, noTarget, required attributes, "primary").

Pure functions over plain dicts: imports only the stdlib and `scim.*`.

Decisions where the RFC leaves room
-----------------------------------
- ``op`` must be exactly "add", "remove" or "replace". Rewriting "Replace" (Entra ID) belongs to
  a client normaliser at the edge. An empty ``Operations`` array is accepted
  and changes nothing.
- add and replace need a "value" member. ``"value": null`` means unassigned (RFC 7643 §2.5):
  replace with null removes the target; add with null adds nothing to a multi-valued attribute
  and removes any other target. Inside a value object a null attribute is likewise removed.
- A remove whose path is a multi-valued attribute without a filter and which carries a
  non-empty "value" is refused (invalidValue). §3.5.2.2 defines remove by its path alone and
  that path removes every value; a client meaning "remove these values" (Entra ID's member
  removal) needs a normaliser at the edge that turns the values into a filter.
- An operation without a path (or whose path is the core schema URN) takes an object whose
  keys are attribute paths: ``nickName``, ``name.givenName``, URN-qualified names such as
  ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department``, or an extension
  URN holding an object of that extension's attributes. Each key is applied as if it were the
  path. Keys that are readOnly attributes (``id``, ``meta``, ``groups``), ``schemas``, or that
  name no attribute of the resource type are ignored, as RFC 7644 §3.3 lets a server ignore
  content; Okta and JumpCloud send ``id`` in such values.
- A path that is the URN of a schema extension names the whole extension block: add adds each
  attribute of the value, replace replaces each attribute the value names (the others are
  kept; remove the block to clear it), remove deletes the block. ``schemas`` lists an extension
  URN exactly when its block holds a value.
- replace on a single-valued complex attribute merges the given sub-attributes (§3.5.2.3:
  "Sub-attributes that are not specified in the "value" parameter are left unchanged"); add
  does the same. replace on values selected by a filter replaces each matching value as a
  whole; immutable sub-attributes it omits are kept and those it gives must match.
- add with a value filter updates every matching value as replace would, except that a value
  object is merged into each match. When nothing matches and the filter is an ``and`` of
  ``eq`` comparisons (``emails[type eq "work"].value``, as Entra ID sends for a new work
  e-mail), a new value is built from those comparisons; otherwise it is noTarget.
- replace with a filter that matches nothing is noTarget (§3.5.2.3). remove with a filter that
  matches nothing, or of an attribute that has no value, changes nothing.
- ``attr.sub`` without a filter on a multi-valued attribute targets that sub-attribute of every
  value; add or replace when there is no value is noTarget.
- add to a multi-valued attribute does not repeat a value equal to one already present
  (§3.5.2.1: "If the target location already contains the value specified, no changes SHOULD
  be made").
- A path naming no attribute of the resource type is invalidPath; a value filter on an
  attribute that is not multi-valued and complex is invalidPath.
- Mutability: a path to a readOnly attribute or sub-attribute is mutability; readOnly
  sub-attributes inside values (``display`` of a member, ``manager.displayName``) are dropped.
  An immutable attribute with a value may only be given that same value. Removing or
  unassigning a required attribute, the core schema or a required extension is mutability
  (§3.5.2.2).
- "primary": after each operation at most one value of a multi-valued attribute has primary
  true. A value the operation set wins (the first of them, as `parse_resource` does for one
  list); otherwise the first one.
- Errors raised while applying name the operation: ``Operations[2]: ...``.

Group members with ``split_members=True``
-----------------------------------------
Membership lists can be huge and are not loaded, so operations on ``members`` are not applied
to the dict but folded, in order, into a `MemberChanges`:

- add ``members`` (or a path-less value holding ``members``) adds member objects; replace
  ``members`` replaces the list; remove ``members`` removes every member.
- remove ``members[value eq "a" or value eq "b"]`` removes those ids. Any other members filter
  is invalidFilter, since it could only be evaluated on the loaded list.
- add or replace with a members filter, and any path to a member's sub-attribute, is
  mutability: a member's value, type and $ref are immutable and its display readOnly, so a
  member can be added or removed but never changed in place.
- Member objects keep ``value`` (a non-blank string, required), ``type`` (folded to "User" or
  "Group") and ``$ref``; ``display`` is readOnly and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from scim.errors import (
    InvalidFilterError,
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
    ScimError,
)
from scim.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Or,
    PatchPath,
    ValuePath,
    evaluate,
    format_filter,
    format_path,
    parse_path,
)
from scim.resources import distinct_members, fold_keys, json_type, same_value
from scim.schema import GROUP_SCHEMA, Attribute, Mutability, ResourceType, Schema, Type, resolve

__all__ = [
    "OPS",
    "PATCH_OP",
    "MemberChanges",
    "Operation",
    "apply_patch",
    "parse_patch_request",
]

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OPS = ("add", "remove", "replace")

_MEMBERS = GROUP_SCHEMA.attribute("members")
_MEMBER_TYPES = {"user": "User", "group": "Group"}


@dataclass(frozen=True)
class Operation:
    """One PATCH operation.

    `value` is None when the member is absent or null. `parse_patch_request` refuses add and
    replace without a "value" member, so on those None means null (unassigned).
    """

    op: str
    path: PatchPath | None
    value: Any


@dataclass
class MemberChanges:
    """Group membership changes as sets, so that storage can apply them set-wise without
    loading members.

    Storage applies them in this order: when `replace` is not None the members become exactly
    `replace`; otherwise, when `remove_all` is set, every member is removed; then the ids in
    `remove` are removed and the members in `add` added (an existing member is left as is).
    The methods below keep one form: with `replace` or `remove_all` set, `add` and `remove` are
    empty, `replace` is never an empty list (that is `remove_all`), and no id is in both `add`
    and `remove`.
    """

    replace: list[dict[str, Any]] | None = None
    add: list[dict[str, Any]] = field(default_factory=list)
    remove: set[str] = field(default_factory=set)
    remove_all: bool = False

    @property
    def changed(self) -> bool:
        return self.replace is not None or self.remove_all or bool(self.add or self.remove)

    def add_members(self, members: Iterable[dict[str, Any]]) -> None:
        if self.replace is not None:
            self.replace = distinct_members([*self.replace, *members])
        elif self.remove_all:
            self.replace_members(members)
        else:
            self.add = distinct_members([*self.add, *members])
            self.remove -= {member["value"] for member in self.add}

    def remove_members(self, ids: Iterable[str]) -> None:
        gone = set(ids)
        if self.replace is not None:
            kept = [member for member in self.replace if member["value"] not in gone]
            if kept:
                self.replace = kept
            else:
                self.remove_every_member()
        elif not self.remove_all:
            self.add = [member for member in self.add if member["value"] not in gone]
            self.remove |= gone

    def remove_every_member(self) -> None:
        self.replace, self.add, self.remove, self.remove_all = None, [], set(), True

    def replace_members(self, members: Iterable[dict[str, Any]]) -> None:
        distinct = distinct_members(members)
        if not distinct:
            self.remove_every_member()
            return
        self.replace, self.add, self.remove, self.remove_all = distinct, [], set(), False


# --- The request --------------------------------------------------------------------------------


def parse_patch_request(body: object) -> list[Operation]:
    """Check a PatchOp body (RFC 7644 §3.5.2) and return its operations in order."""
    if not isinstance(body, Mapping):
        raise InvalidSyntaxError(f"The PATCH body must be a JSON object, got {json_type(body)}")
    fields = _fold_keys(body, "The PATCH body")
    # RFC 7644 §3.5.2: 'The body of each request MUST contain the "schemas" attribute with the
    # URI value of "urn:ietf:params:scim:api:messages:2.0:PatchOp".'
    schemas = fields.get("schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(urn, str) and urn.lower() == PATCH_OP.lower() for urn in schemas
    ):
        raise InvalidValueError(f"schemas must be an array holding {PATCH_OP}")
    # RFC 7644 §3.5.2: 'The body of an HTTP PATCH request MUST contain the attribute
    # "Operations", whose value is an array of one or more PATCH operations.' An empty array is
    # accepted as a request that changes nothing.
    operations = fields.get("operations")
    if not isinstance(operations, list):
        raise InvalidSyntaxError(
            f"Operations must be an array of PATCH operations, got {json_type(operations)}"
        )
    return [_parse_operation(index, item) for index, item in enumerate(operations)]


def _parse_operation(index: int, item: object) -> Operation:
    where = f"Operations[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidSyntaxError(
            f"{where} must be an object with op, path and value, got {json_type(item)}"
        )
    fields = _fold_keys(item, where)
    # RFC 7644 §3.5.2: 'Each PATCH operation object MUST have exactly one "op" member, whose
    # value indicates the operation to perform and MAY be one of "add", "remove", or "replace".'
    op = fields.get("op")
    if not isinstance(op, str) or op not in OPS:
        shown = "nothing" if op is None else repr(op)
        raise InvalidSyntaxError(f'{where}.op must be "add", "remove" or "replace", got {shown}')
    raw_path = fields.get("path")
    path: PatchPath | None = None
    if raw_path is not None:
        if not isinstance(raw_path, str):
            raise InvalidPathError(
                f"{where}.path must be a string (an attribute path), got {json_type(raw_path)}"
            )
        try:
            path = parse_path(raw_path)
        except InvalidPathError as exc:
            raise InvalidPathError(f"{where}.path {raw_path!r}: {exc.detail}") from None
    if op == "remove" and path is None:
        # RFC 7644 §3.5.2.2: 'If "path" is unspecified, the operation fails with HTTP status
        # code 400 and a "scimType" error code of "noTarget".'
        raise NoTargetError(f"{where}: remove needs a path naming what to remove")
    if op != "remove" and "value" not in fields:
        # RFC 7644 §3.5.2.1: 'The operation MUST contain a "value" member whose content
        # specifies the value to be added.' §3.5.2.3 asks the same of replace.
        raise InvalidValueError(f"{where}: {op} needs a value")
    return Operation(op, path, fields.get("value"))


# --- Applying -----------------------------------------------------------------------------------


def changes_members_only(resource_type: ResourceType, operations: Sequence[Operation]) -> bool:
    """Whether every operation has a path to a Group's `members` (with or without a value
    filter): applied with ``split_members``, such a PATCH leaves the rest of the resource as it
    is, so it can be applied without reading the resource."""
    core = resource_type.schema.id.lower()
    return (
        resource_type.schema is GROUP_SCHEMA
        and bool(operations)
        and all(
            op.path is not None
            and op.path.attr.attr.lower() == "members"
            and op.path.attr.sub is None
            and op.path.sub is None
            and (op.path.attr.uri is None or op.path.attr.uri.lower() == core)
            for op in operations
        )
    )


def apply_patch(
    resource_type: ResourceType,
    resource: Mapping[str, Any],
    operations: Sequence[Operation],
    *,
    split_members: bool = False,
) -> tuple[dict[str, Any], MemberChanges]:
    """Apply `operations` in order to a copy of `resource`; return it and the member changes.

    `resource` is a stored resource in the form `parse_resource` gives (id, meta and groups
    may be present); it is never modified. With `split_members`, operations on the Group
    `members` attribute go to the returned `MemberChanges` instead of the dict. The semantics
    and the choices made are in the module docstring.
    """
    # RFC 7644 §3.5.2: "A PATCH request, regardless of the number of operations, SHALL be
    # treated as atomic. If a single operation encounters an error condition, the original
    # SCIM resource MUST be restored": every change is made on a copy, and an error leaves
    # the caller with the original.
    patcher = _Patcher(resource_type, _plain(resource), split_members)
    for index, operation in enumerate(operations):
        try:
            patcher.apply(operation)
        except ScimError as exc:
            raise type(exc)(f"Operations[{index}]: {exc.detail}") from None
    patcher.sync_schemas()
    return patcher.resource, patcher.members


@dataclass(frozen=True)
class _Block:
    """A whole schema's attributes: the resource itself (core) or an extension block."""

    schema: Schema
    core: bool
    required: bool


@dataclass(frozen=True)
class _Target:
    """An attribute, or its sub-attribute, possibly narrowed to the values a filter selects."""

    schema: str
    attribute: Attribute
    sub: Attribute | None
    filter: Filter | None
    text: str


_Record = dict[str, Any]
_Found: TypeAlias = _Block | _Target


class _Patcher:
    def __init__(
        self, resource_type: ResourceType, resource: dict[str, Any], split_members: bool
    ) -> None:
        self.resource_type = resource_type
        self.resource = resource
        self.split_members = split_members
        self.members = MemberChanges()

    # -- dispatch --

    def apply(self, operation: Operation) -> None:
        op, path, value = operation.op, operation.path, operation.value
        if op not in OPS:
            raise InvalidSyntaxError(f'op must be "add", "remove" or "replace", got {op!r}')
        if path is None:
            if op == "remove":
                raise NoTargetError("remove needs a path naming what to remove")
            # RFC 7644 §3.5.2.1: "If omitted, the target location is assumed to be the
            # resource itself. The "value" parameter contains a set of attributes to be added
            # to the resource." §3.5.2.3 says the same of replace.
            self.apply_attributes(op, value, self.resource_type.schema, "a value without a path")
            return
        found = self.lookup(path, None)
        if found is None:
            raise InvalidPathError(
                f"{_path_text(path)} names no attribute of {self.resource_type.name} resources"
            )
        self.apply_found(op, found, value, explicit=True)

    def lookup(self, path: PatchPath, default_uri: str | None) -> _Found | None:
        """What `path` names, or None when it names no attribute of the resource type."""
        attr_path = path.attr
        if (
            attr_path.uri is not None
            and attr_path.sub is None
            and path.filter is None
            and path.sub is None
        ):
            # parse_path reads a bare schema URN as uri + attribute: the URN's last segment.
            block = self.block(f"{attr_path.uri}:{attr_path.attr}")
            if block is not None:
                return block
        uri = attr_path.uri if attr_path.uri is not None else default_uri
        resolved = resolve(self.resource_type, uri, attr_path.attr, attr_path.sub)
        if resolved is None:
            return None
        text = _path_text(path)
        sub = resolved.sub
        if path.sub is not None:
            sub = resolved.attribute.sub(path.sub)
            if sub is None:
                return None
        top = resolved.attribute
        if path.filter is not None and not (top.multi_valued and top.type is Type.COMPLEX):
            raise InvalidPathError(
                f"{text}: a value filter selects values of a multi-valued complex attribute, "
                f"and {top.name} is not one"
            )
        return _Target(resolved.schema, top, sub, path.filter, text)

    def block(self, urn: str) -> _Block | None:
        resource_type = self.resource_type
        if urn.lower() == resource_type.schema.id.lower():
            return _Block(resource_type.schema, core=True, required=True)
        for ext, required in resource_type.extensions:
            if ext.id.lower() == urn.lower():
                return _Block(ext, core=False, required=required)
        return None

    def apply_attributes(self, op: str, value: Any, schema: Schema, where: str) -> None:
        """Apply `op` to each attribute a value object names (a path-less value or a block)."""
        if not isinstance(value, Mapping):
            raise InvalidValueError(
                f"{where} must be an object of attributes, got {json_type(value)}"
            )
        default_uri = None if schema is self.resource_type.schema else schema.id
        for key, item in value.items():
            if not isinstance(key, str) or key.lower() == "schemas":
                continue
            try:
                path = parse_path(key)
            except InvalidPathError:
                continue  # Not an attribute name, so it names no attribute: ignored.
            found = self.lookup(path, default_uri)
            if found is not None:
                self.apply_found(op, found, item, explicit=False)

    def apply_found(self, op: str, found: _Found, value: Any, *, explicit: bool) -> None:
        """`explicit` is true for an operation's path, false for a key of a value object."""
        if isinstance(found, _Block):
            self.apply_block(op, found, value)
            return
        attr, sub = found.attribute, found.sub
        if attr.mutability is Mutability.READ_ONLY or (
            sub is not None and sub.mutability is Mutability.READ_ONLY
        ):
            if not explicit:
                return
            # RFC 7644 §3.5.2: "a client MUST NOT modify an attribute that has mutability
            # "readOnly" or "immutable"."
            raise MutabilityError(f"{found.text} is readOnly: a client cannot change it")
        whole = found.filter is None and sub is None
        if op == "remove" and whole and attr.multi_valued and not _is_empty(value):
            raise InvalidValueError(
                f"remove takes no value (RFC 7644 §3.5.2.2): removing {found.text} removes "
                f"every value; to remove chosen values use a filter such as "
                f'{attr.name}[value eq "..."]'
            )
        if value is None and op != "remove":
            if op == "add" and whole and attr.multi_valued:
                return  # RFC 7643 §2.5: null is the empty array; adding it adds nothing.
            op = "remove"  # RFC 7643 §2.5: null is unassigned.
        if op == "remove" and whole and attr.required:
            # RFC 7644 §3.5.2.2: "If an attribute is removed or becomes unassigned and is
            # defined as a required attribute or a read-only attribute, the server SHALL
            # return ... a "scimType" error code of "mutability"."
            raise MutabilityError(f"{found.text} is required and cannot be removed")
        if self.split_members and attr is _MEMBERS:
            self.apply_members(op, found, value)
            return
        container = self.container(found.schema, create=op != "remove")
        if container is None:
            return  # Removing from an extension block that holds nothing.
        if found.filter is not None:
            self.apply_filtered(op, found, found.filter, container, value)
        elif sub is not None:
            self.apply_sub(op, found, sub, container, value)
        else:
            self.apply_whole(op, found, container, value)

    def container(self, schema: str, *, create: bool) -> dict[str, Any] | None:
        """The dict holding the attributes of `schema`: the resource or its extension block."""
        if schema == self.resource_type.schema.id:
            return self.resource
        key = _key(self.resource, schema)
        block = self.resource.get(key) if key is not None else None
        if isinstance(block, dict):
            return block
        if not create:
            return None
        fresh: dict[str, Any] = {}
        _put(self.resource, schema, fresh, keep_empty=True)
        return fresh

    # -- blocks --

    def apply_block(self, op: str, block: _Block, value: Any) -> None:
        urn = block.schema.id
        if op == "remove" or value is None:
            if block.required:
                # RFC 7643 §6 required extension: "a resource of this type MUST include this
                # schema extension"; RFC 7644 §3.5.2.2 answers its removal with mutability.
                raise MutabilityError(
                    f"{urn} is required for {self.resource_type.name} resources and cannot "
                    "be removed"
                )
            _put(self.resource, urn, None)
            return
        self.apply_attributes(op, value, block.schema, urn)

    # -- a whole attribute --

    def apply_whole(self, op: str, target: _Target, container: dict[str, Any], value: Any) -> None:
        attr, text = target.attribute, target.text
        before = _snapshot(attr, _get(container, attr.name))
        if op == "remove":
            _check_unassign(attr, before, text)
            _put(container, attr.name, None)
            return
        if attr.multi_valued:
            items = self.elements(attr, value, text)
            if op == "add":
                # RFC 7644 §3.5.2.1: "If the target location specifies a multi-valued
                # attribute, a new value is added to the attribute." ... "If the target
                # location already contains the value specified, no changes SHOULD be made".
                values = list(_each(before))
                written = []
                for item in items:
                    same = next((v for v in values if _comparable(attr, v) == item), None)
                    if same is None:
                        values.append(item)
                    written.append(item if same is None else same)
            else:
                # RFC 7644 §3.5.2.3: "If the target location is a multi-valued attribute and
                # no filter is specified, the attribute and all values are replaced."
                values, written = items, items
            _check_immutable(attr, before, values, text)
            _settle_primary(attr, values, written)
            _put(container, attr.name, values)
        elif attr.type is Type.COMPLEX:
            # RFC 7644 §3.5.2.3: "If the target location specifies a complex attribute, a set
            # of sub-attributes SHALL be specified in the "value" parameter, which replaces any
            # existing values or adds where an attribute did not previously exist.
            # Sub-attributes that are not specified in the "value" parameter are left
            # unchanged." (§3.5.2.1 asks add for the same set of sub-attributes.)
            if not isinstance(value, Mapping):
                raise InvalidValueError(
                    f"{text} is a complex attribute: the value must be an object of its "
                    f"sub-attributes, got {json_type(value)}"
                )
            merged = dict(before) if isinstance(before, Mapping) else {}
            self.merge(attr, merged, value, text)
            _check_immutable(attr, before, merged, text)
            _put(container, attr.name, merged)
        else:
            # RFC 7644 §3.5.2.1: "If the target location specifies a single-valued attribute,
            # the existing value is replaced." §3.5.2.3: "If the target location path
            # specifies an attribute that does not exist, the service provider SHALL treat
            # the operation as an "add"."
            _check_immutable(attr, before, value, text)
            _put(container, attr.name, _plain(value))

    # -- a sub-attribute, no filter --

    def apply_sub(
        self, op: str, target: _Target, sub: Attribute, container: dict[str, Any], value: Any
    ) -> None:
        attr, text = target.attribute, target.text
        current = _get(container, attr.name)
        before = _snapshot(attr, current)
        if not attr.multi_valued:
            parent = dict(current) if isinstance(current, Mapping) else {}
            _set_sub(op, sub, parent, value, text)
            _check_immutable(attr, before, parent, text)
            _put(container, attr.name, parent)
            return
        values = list(_each(current))
        records = [v for v in values if isinstance(v, dict)]
        if op != "remove" and not records:
            raise NoTargetError(f"{text}: {attr.name} has no value whose {sub.name} could be set")
        for record in records:
            _set_sub(op, sub, record, value, text)
        values = [v for v in values if v != {}]
        _check_immutable(attr, before, values, text)
        _settle_primary(attr, values, records)
        _put(container, attr.name, values)

    # -- values selected by a filter --

    def apply_filtered(
        self,
        op: str,
        target: _Target,
        value_filter: Filter,
        container: dict[str, Any],
        value: Any,
    ) -> None:
        attr, sub, text = target.attribute, target.sub, target.text
        matches = self.matcher(target, value_filter)
        current = _get(container, attr.name)
        before = _snapshot(attr, current)
        values = list(_each(current))
        matched = [v for v in values if isinstance(v, dict) and matches(v)]
        written: list[_Record] = matched
        if op == "remove":
            # RFC 7644 §3.5.2.2: "If the target location is a complex multi-valued attribute
            # and a complex filter is specified based on the attribute's sub-attributes, the
            # matching records are removed."
            if not matched:
                return
            if sub is None:
                values = [v for v in values if not any(v is m for m in matched)]
                if not values and attr.required:
                    raise MutabilityError(f"{text} would leave required {attr.name} unassigned")
            else:
                for record in matched:
                    _set_sub(op, sub, record, None, text)
        elif not matched:
            created = self.created(target, value_filter, value, matches) if op == "add" else None
            if created is None:
                # RFC 7644 §3.5.2.3: "If the target location is a multi-valued attribute for
                # which a value selection filter ("valuePath") has been supplied and no record
                # match was made, the service provider SHALL indicate failure by returning
                # HTTP status code 400 and a "scimType" error code of "noTarget"."
                raise NoTargetError(f"{text} matches no value of {attr.name}")
            values.append(created)
            written = [created]
        elif sub is not None:
            # RFC 7644 §3.5.2.3: "the matching sub-attribute of all matching records SHALL be
            # replaced."
            for record in matched:
                _set_sub(op, sub, record, value, text)
        elif not isinstance(value, Mapping):
            raise InvalidValueError(
                f"{text} selects values of {attr.name}: the value must be an object, "
                f"got {json_type(value)}"
            )
        elif op == "replace":
            # RFC 7644 §3.5.2.3: "all matching record values SHALL be replaced."
            replacements = [self.replacement(attr, record, value, text) for record in matched]
            by_id = {id(record): new for record, new in zip(matched, replacements, strict=True)}
            values = [by_id.get(id(v), v) for v in values]
            written = replacements
        else:
            for record in matched:
                self.merge(attr, record, value, text)
        values = [v for v in values if v != {}]
        _settle_primary(attr, values, written)
        _check_immutable(attr, before, values, text)
        _put(container, attr.name, values)

    def matcher(self, target: _Target, value_filter: Filter) -> Callable[[Mapping[str, Any]], bool]:
        """A test of one value against the target's filter, through `scim.filter.evaluate`."""
        name = target.attribute.name
        uri = None if target.schema == self.resource_type.schema.id else target.schema
        node = ValuePath(AttrPath(uri, name, None), value_filter)
        resource_type = self.resource_type
        # Checked on no data first, so that a filter that cannot apply fails whatever the
        # resource holds.
        evaluate(node, {}, resource_type)

        def matches(record: Mapping[str, Any]) -> bool:
            holder = {name: [record]}
            return evaluate(node, holder if uri is None else {uri: holder}, resource_type)

        return matches

    def created(
        self,
        target: _Target,
        value_filter: Filter,
        value: Any,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> _Record | None:
        """The value an add builds when its filter matches nothing, or None when it cannot."""
        attr = target.attribute
        record = _equalities(value_filter, attr)
        if record is None:
            return None
        if target.sub is not None:
            _set_sub("add", target.sub, record, value, target.text)
        elif isinstance(value, Mapping):
            self.merge(attr, record, value, target.text)
        else:
            raise InvalidValueError(
                f"{target.text} selects values of {attr.name}: the value must be an object, "
                f"got {json_type(value)}"
            )
        return record if matches(record) else None

    def replacement(
        self, attr: Attribute, record: Mapping[str, Any], value: Mapping[str, Any], text: str
    ) -> _Record:
        new = self.element(attr, value, text)
        for sub in attr.sub_attributes:
            if sub.mutability is not Mutability.IMMUTABLE:
                continue
            old = _get(record, sub.name)
            if _is_empty(old):
                continue
            if sub.name not in new:
                new[sub.name] = old  # RFC 7643 §7 immutable: "SHALL NOT be updated".
            else:
                _check_immutable(sub, old, new[sub.name], f"{text}.{sub.name}")
        return new

    # -- values --

    def elements(self, attr: Attribute, value: Any, text: str) -> list[Any]:
        """The values an add or replace gives a multi-valued attribute, in canonical form."""
        # A lone value stands for an array of one, as `parse_resource` reads it.
        items = value if isinstance(value, list) else [value]
        out: list[Any] = []
        for item in items:
            if item is None:
                continue
            if attr.type is not Type.COMPLEX:
                out.append(_plain(item))
                continue
            if not isinstance(item, Mapping):
                raise InvalidValueError(
                    f"{text}: each value of {attr.name} must be an object, got {json_type(item)}"
                )
            element = self.element(attr, item, text)
            if element:
                out.append(element)
        return out

    def element(self, attr: Attribute, item: Mapping[str, Any], text: str) -> _Record:
        """One complex value: canonical sub-attribute names; readOnly, unknown and null dropped."""
        out: _Record = {}
        for name, sub_value in _fold_keys(item, text).items():
            sub = attr.sub(name)
            if sub is None or sub.mutability is Mutability.READ_ONLY or sub_value is None:
                continue
            out[sub.name] = _plain(sub_value)
        return out

    def merge(self, attr: Attribute, record: _Record, value: Mapping[str, Any], text: str) -> None:
        """Set each sub-attribute `value` names in `record`; null ones are removed."""
        for name, sub_value in _fold_keys(value, text).items():
            sub = attr.sub(name)
            if sub is None or sub.mutability is Mutability.READ_ONLY:
                continue
            _set_sub("remove" if sub_value is None else "add", sub, record, sub_value, text)

    # -- Group members kept apart --

    def apply_members(self, op: str, target: _Target, value: Any) -> None:
        text = target.text
        if target.sub is not None:
            raise MutabilityError(
                f"{text}: a member's value, type and $ref are immutable and its display "
                "readOnly; members are added and removed whole"
            )
        if target.filter is not None:
            ids = _member_ids(target.filter)
            if op != "remove":
                raise MutabilityError(
                    f"{text}: a member cannot be changed in place (its value, type and $ref "
                    'are immutable); add members with path "members" and remove them with '
                    'members[value eq "..."]'
                )
            # RFC 7644 §3.5.2.2: "the values matched by the filter are removed."
            self.members.remove_members(ids)
            return
        if op == "remove":
            # RFC 7644 §3.5.2.2: "If the target location is a multi-valued attribute and no
            # filter is specified, the attribute and all values are removed".
            self.members.remove_every_member()
            return
        members = [
            _member(item, f"{text}[{index}]")
            for index, item in enumerate(value if isinstance(value, list) else [value])
            if item is not None
        ]
        if op == "add":
            self.members.add_members(members)
        else:
            self.members.replace_members(members)

    # -- the result --

    def sync_schemas(self) -> None:
        """List an extension URN in `schemas` exactly when its block holds a value (RFC 7643 §3)."""
        resource = self.resource
        listed = [urn for urn in _each(resource.get("schemas")) if isinstance(urn, str)]
        core = self.resource_type.schema.id
        if not any(urn.lower() == core.lower() for urn in listed):
            listed.insert(0, core)
        for ext, _required in self.resource_type.extensions:
            folded = ext.id.lower()
            block = _get(resource, ext.id)
            present = isinstance(block, Mapping) and bool(block)
            if not present:
                _put(resource, ext.id, None)
                listed = [urn for urn in listed if urn.lower() != folded]
            elif not any(urn.lower() == folded for urn in listed):
                listed.append(ext.id)
        if "schemas" in resource:
            resource["schemas"] = listed
        else:
            rest = dict(resource)
            resource.clear()
            resource["schemas"] = listed
            resource.update(rest)


# --- Rules shared by the operations -------------------------------------------------------------


def _set_sub(op: str, sub: Attribute, record: _Record, value: Any, text: str) -> None:
    """Set (add, replace) or remove one sub-attribute of one complex value."""
    before = _get(record, sub.name)
    where = text if text.endswith(f".{sub.name}") else f"{text}.{sub.name}"
    if op == "remove" or value is None:
        _check_unassign(sub, before, where)
        _put(record, sub.name, None)
    else:
        _check_immutable(sub, before, value, where)
        _put(record, sub.name, _plain(value))


def _snapshot(attr: Attribute, value: Any) -> Any:
    """The value as it was, for the immutability check of values changed in place."""
    return _plain(value) if attr.mutability is Mutability.IMMUTABLE else value


def _check_unassign(attr: Attribute, before: Any, text: str) -> None:
    if attr.mutability is Mutability.IMMUTABLE and not _is_empty(before):
        raise MutabilityError(f"{text} is immutable: its value cannot be removed")


def _check_immutable(attr: Attribute, before: Any, after: Any, text: str) -> None:
    # RFC 7644 §3.5.2: "a client MAY "add" a value to an "immutable" attribute if the
    # attribute had no previous value."
    if attr.mutability is not Mutability.IMMUTABLE or _is_empty(before):
        return
    if not same_value(attr, before, after):
        raise MutabilityError(
            f"{text} is immutable: it already has a value and the request gives a different one"
        )


def _settle_primary(attr: Attribute, values: list[Any], written: Sequence[_Record]) -> None:
    # RFC 7644 §3.5.2: "For multi-valued attributes, a PATCH operation that sets a value's
    # "primary" sub-attribute to "true" SHALL cause the server to automatically set "primary"
    # to "false" for any other values in the array."
    if attr.type is not Type.COMPLEX or attr.sub("primary") is None:
        return
    primaries = [v for v in values if isinstance(v, dict) and v.get("primary") is True]
    if len(primaries) < 2:
        return
    winner = next(
        (w for w in written if w.get("primary") is True and any(w is p for p in primaries)),
        primaries[0],
    )
    for value in primaries:
        if value is not winner:
            value["primary"] = False


def _comparable(attr: Attribute, value: Any) -> Any:
    """A stored value as an added one would look: canonical names, no readOnly or null parts."""
    if attr.type is not Type.COMPLEX or not isinstance(value, Mapping):
        return value
    out = {}
    for key, sub_value in value.items():
        sub = attr.sub(key) if isinstance(key, str) else None
        if sub is not None and sub.mutability is not Mutability.READ_ONLY and sub_value is not None:
            out[sub.name] = sub_value
    return out


def _equalities(node: Filter, attr: Attribute) -> _Record | None:
    """The record an ``and`` of ``sub eq literal`` comparisons describes, or None."""
    if isinstance(node, And):
        left, right = _equalities(node.left, attr), _equalities(node.right, attr)
        if left is None or right is None:
            return None
        return {**left, **right}
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and node.value is not None
        and node.path.uri is None
        and node.path.sub is None
    ):
        sub = attr.sub(node.path.attr)
        if sub is None or sub.mutability is Mutability.READ_ONLY:
            return None
        return {sub.name: node.value}
    return None


def _member_ids(node: Filter) -> list[str]:
    """The ids of ``value eq "a" or value eq "b" ...``; any other members filter is refused."""
    if isinstance(node, Or):
        return [*_member_ids(node.left), *_member_ids(node.right)]
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and isinstance(node.value, str)
        and node.path.uri is None
        and node.path.sub is None
        and node.path.attr.lower() == "value"
    ):
        return [node.value]
    raise InvalidFilterError(
        'members can be filtered only by value: members[value eq "id"], or several such '
        "comparisons joined with or"
    )


def _member(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidValueError(
            f'{where} must be an object such as {{"value": "<id>"}}, got {json_type(item)}'
        )
    fields = _fold_keys(item, where)
    value = fields.get("value")
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{where}.value is required: the id of the member User or Group")
    member: dict[str, Any] = {"value": value}
    kind = fields.get("type")
    if kind is not None:
        canonical = _MEMBER_TYPES.get(kind.lower()) if isinstance(kind, str) else None
        if canonical is None:
            raise InvalidValueError(f'{where}.type must be "User" or "Group", got {kind!r}')
        member["type"] = canonical
    ref = fields.get("$ref")
    if ref is not None:
        if not isinstance(ref, str):
            raise InvalidValueError(f"{where}.$ref must be a string (a URI), got {json_type(ref)}")
        member["$ref"] = ref
    return member


# --- Plain data ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists, so that nothing the caller holds is shared."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _is_empty(value: Any) -> bool:
    # RFC 7643 §2.5: "Unassigned attributes, the null value, or empty array (in the case of a
    # multi-valued attribute) SHALL be considered to be equivalent in "state"."
    return value is None or (isinstance(value, list | Mapping) and len(value) == 0)


def _each(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _key(obj: Mapping[str, Any], name: str) -> str | None:
    """The key under which `obj` holds attribute `name` (RFC 7643 §2.1: case-insensitive)."""
    if name in obj:
        return name
    folded = name.lower()
    return next((key for key in obj if isinstance(key, str) and key.lower() == folded), None)


def _get(obj: Mapping[str, Any], name: str) -> Any:
    key = _key(obj, name)
    return obj[key] if key is not None else None


def _put(obj: dict[str, Any], name: str, value: Any, *, keep_empty: bool = False) -> None:
    """Store `value` under the canonical `name`; an empty value leaves the attribute unassigned."""
    folded = name.lower()
    for key in [k for k in obj if isinstance(k, str) and k != name and k.lower() == folded]:
        del obj[key]
    if _is_empty(value) and not keep_empty:
        obj.pop(name, None)
    else:
        obj[name] = value


def _fold_keys(obj: Mapping[Any, Any], where: str) -> dict[str, Any]:
    """Values by folded attribute name (RFC 7643 §2.1); the same rules as resource bodies."""
    return {name: value for name, (_spelled, value) in fold_keys(obj, where).items()}


def _path_text(path: PatchPath) -> str:
    text = format_path(path.attr)
    if path.filter is not None:
        text += f"[{format_filter(path.filter)}]"
    if path.sub is not None:
        text += f".{path.sub}"
    return text

"""Compile SCIM filters (scim.filter AST) and sortBy to SQL over the users/groups tables.

The semantics are those of `scim.filter.evaluate` (the in-memory back end), so that a filter
answers the same on the database as in memory; tests run both on the same vectors.
A comparison with an absent attribute is NULL in SQL. `WHERE` and `EXISTS` already read NULL
as false, and AND/OR are monotone, so only a negation needs `NOT coalesce(x, false)` for `not`
and `ne` to be exact complements. Leaves stay bare so that indexes on their expressions
(`lower(user_name)`, the e-mail GIN index) remain usable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Numeric,
    Table,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.sql.elements import KeyedColumnElement

from scim import filter as f
from scim.errors import InvalidFilterError, InvalidValueError
from scim.schema import (
    GROUP,
    USER,
    Attribute,
    ResolvedAttribute,
    ResourceType,
    Type,
    resolve,
)
from storage.tables import group_members, groups, users

_EMPTY_JSON = ("null", '""', "[]", "{}")
_TEXT_ARRAY = ARRAY(Text)


def _jsonb(value: str) -> ColumnElement[Any]:
    return cast(literal(value), JSONB)


def _parse_datetime(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidFilterError(f"{name} is a dateTime; compare it with a string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidFilterError(f"{value!r} is not a dateTime (xsd:dateTime)") from None


@dataclass(frozen=True)
class _Scalar:
    """A single-valued attribute as SQL: a text expression plus its JSONB form (or None)."""

    text: ColumnElement[Any]
    json: ColumnElement[Any] | None
    native: ColumnElement[Any] | None = None  # a typed column (uuid, bool, timestamptz)


def _compare(attr: Attribute, op: str, value: object, x: _Scalar, name: str) -> ColumnElement[Any]:
    """`x op value` for one single value; NULL when x is absent."""
    if value is None:
        raise InvalidFilterError(f"only 'eq null' and 'ne null' are allowed on {name}")
    kind = attr.type
    if kind in (Type.BOOLEAN, Type.BINARY) and op not in ("eq", "ne"):
        # RFC 7644 §3.4.2.2: "Boolean and Binary attributes SHALL cause a failed response
        # (HTTP 400 Bad Request) with a "scimType" of "invalidFilter"" for gt/ge/lt/le.
        raise InvalidFilterError(f"operator '{op}' is not allowed on {kind.value} attribute {name}")
    if kind is Type.COMPLEX:
        raise InvalidFilterError(f"{name} is complex; filter on one of its sub-attributes")
    if kind is Type.BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidFilterError(f"{name} is a boolean; compare it with true or false")
        if x.native is not None:
            return x.native == value
        assert x.json is not None
        return x.json == _jsonb("true" if value else "false")
    if kind in (Type.INTEGER, Type.DECIMAL):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilterError(f"{name} is a number; compare it with a number")
        if op in ("co", "sw", "ew"):
            raise InvalidFilterError(f"operator '{op}' is not allowed on number attribute {name}")
        assert x.json is not None
        number = case((func.jsonb_typeof(x.json) == "number", cast(x.text, Numeric)))
        return _ordered(op, number, literal(value, Numeric))
    if kind is Type.DATETIME:
        when = _parse_datetime(value, name)
        if op in ("co", "sw", "ew"):
            return _string_op(op, x.text, str(value), case_exact=True)
        column = x.native if x.native is not None else cast(x.text, DateTime(timezone=True))
        return _ordered(op, column, literal(when, DateTime(timezone=True)))
    if not isinstance(value, str):
        raise InvalidFilterError(f"{name} is a string; compare it with a string")
    return _string_op(op, x.text, value, case_exact=attr.case_exact)


def _ordered(op: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    match op:
        case "eq":
            return left == right
        case "ne":
            return left != right
        case "gt":
            return left > right
        case "ge":
            return left >= right
        case "lt":
            return left < right
        case "le":
            return left <= right
    raise InvalidFilterError(f"operator '{op}' is not allowed here")


def _string_op(
    op: str, text: ColumnElement[Any], value: str, *, case_exact: bool
) -> ColumnElement[Any]:
    left = text if case_exact else func.lower(text)
    right: ColumnElement[Any] = literal(value, Text)
    if not case_exact:
        right = func.lower(right)
    match op:
        case "co":
            return func.strpos(left, right) > 0
        case "sw":
            return func.starts_with(left, right)
        case "ew":
            return func.right(left, func.length(right)) == right
        case "eq" | "ne":
            return _ordered(op, left, right)
    # Ordering compares code points, as the in-memory evaluator does.
    return _ordered(op, left.collate("C"), right.collate("C"))


def _json_path(json: ColumnElement[Any], keys: list[str]) -> _Scalar:
    path = literal(keys, _TEXT_ARRAY)
    return _Scalar(
        text=json.op("#>>", return_type=Text)(path), json=json.op("#>", return_type=JSONB)(path)
    )


def _negate(condition: ColumnElement[Any]) -> ColumnElement[bool]:
    """Two-valued NOT: an unknown (absent) operand counts as false, so its negation is true."""
    return not_(func.coalesce(condition, false()))


def _as_json(x: _Scalar) -> ColumnElement[Any]:
    return x.json if x.json is not None else func.to_jsonb(x.native)


def emails_contain(value: str) -> ColumnElement[bool]:
    # The expression must read exactly like the index's, `idgate_ci_values(data -> 'emails')`,
    # for the planner to use the index: the key is a literal, not a parameter.
    emails = users.c.data.op("->", return_type=JSONB)(literal_column("'emails'"))
    wanted = pg_array([func.lower(literal(value, Text))])
    return func.idgate_ci_values(emails).op("@>")(wanted)


def _present_json(json: ColumnElement[Any]) -> ColumnElement[Any]:
    return and_(json.is_not(None), json.not_in([_jsonb(v) for v in _EMPTY_JSON]))


@dataclass(frozen=True)
class _Target:
    """How one resource type's attributes map to SQL."""

    resource_type: ResourceType
    table: Table
    columns: dict[str, Callable[[], _Scalar]]  # dotted canonical name -> column-backed scalar


def _col(column: KeyedColumnElement[Any], json: bool = False) -> Callable[[], _Scalar]:
    def build() -> _Scalar:
        text = cast(column, Text)
        return _Scalar(text=text, json=func.to_jsonb(column) if json else None, native=column)

    return build


_USER = _Target(
    USER,
    users,
    {
        "id": _col(users.c.id),
        "externalId": lambda: _Scalar(users.c.external_id, func.to_jsonb(users.c.external_id)),
        "userName": lambda: _Scalar(users.c.user_name, func.to_jsonb(users.c.user_name)),
        "displayName": lambda: _Scalar(users.c.display_name, func.to_jsonb(users.c.display_name)),
        "meta.created": _col(users.c.created_at, json=True),
        "meta.lastModified": _col(users.c.updated_at, json=True),
        "meta.resourceType": lambda: _Scalar(literal("User", Text), _jsonb('"User"')),
    },
)
_GROUP = _Target(
    GROUP,
    groups,
    {
        "id": _col(groups.c.id),
        "externalId": lambda: _Scalar(groups.c.external_id, func.to_jsonb(groups.c.external_id)),
        "displayName": lambda: _Scalar(groups.c.display_name, func.to_jsonb(groups.c.display_name)),
        "meta.created": _col(groups.c.created_at, json=True),
        "meta.lastModified": _col(groups.c.updated_at, json=True),
        "meta.resourceType": lambda: _Scalar(literal("Group", Text), _jsonb('"Group"')),
    },
)
TARGETS = {"User": _USER, "Group": _GROUP}


class _Compiler:
    def __init__(self, target: _Target) -> None:
        self.target = target
        self.table = target.table

    # --- attribute resolution ----------------------------------------------------------

    def _resolve(self, path: f.AttrPath) -> ResolvedAttribute:
        resolved = resolve(self.target.resource_type, path.uri, path.attr, path.sub)
        if resolved is None:
            raise InvalidFilterError(f"unknown attribute '{_written(path)}'")
        return resolved

    def _data_path(self, resolved: ResolvedAttribute) -> list[str]:
        keys = [resolved.schema] if resolved.is_extension else []
        return [*keys, resolved.attribute.name]

    def _scalar(self, resolved: ResolvedAttribute) -> _Scalar:
        """A single-valued attribute (or sub-attribute of a single-valued complex one)."""
        column = self.target.columns.get(resolved.dotted)
        if column is not None and not resolved.is_extension:
            return column()
        keys = self._data_path(resolved)
        if resolved.sub is not None:
            keys.append(resolved.sub.name)
        return _json_path(self.table.c.data, keys)

    # --- filters ------------------------------------------------------------------------

    def compile(self, node: f.Filter) -> ColumnElement[bool]:
        match node:
            case f.And(left, right):
                return and_(self.compile(left), self.compile(right))
            case f.Or(left, right):
                return or_(self.compile(left), self.compile(right))
            case f.Not(inner):
                return _negate(self.compile(inner))
            case f.Present(path):
                return self._present(path)
            case f.Compare(path, op, value):
                return self._leaf(path, op, value)
            case f.ValuePath(path, inner):
                return self._value_path(path, inner)
        raise InvalidFilterError("unsupported filter expression")

    def _leaf(self, path: f.AttrPath, op: str, value: object) -> ColumnElement[bool]:
        if op == "ne":
            # `ne` is the negation of `eq`, also for absent and multi-valued attributes.
            return _negate(self._leaf(path, "eq", value))
        if value is None:
            if op != "eq":
                raise InvalidFilterError(
                    f"only 'eq null' and 'ne null' are allowed on {_written(path)}"
                )
            # `x eq null` holds exactly when `x pr` does not, for multi-valued x too.
            return _negate(self._present(path))
        resolved = self._resolve(path)
        name = _written(path)
        special = self._relation(resolved, lambda attr, x: _compare(attr, op, value, x, name))
        if special is not None:
            return special
        if resolved.attribute.multi_valued:
            exists = self._any_element(resolved, lambda attr, x: _compare(attr, op, value, x, name))
            on_value = resolved.sub is None or resolved.sub.name == "value"
            if op == "eq" and on_value and isinstance(value, str):
                return self._with_emails_index(resolved, value, exists)
            return exists
        x = self._scalar(resolved)
        return _compare(resolved.target, op, value, x, name)

    def _present(self, path: f.AttrPath) -> ColumnElement[bool]:
        resolved = self._resolve(path)

        def present(_attr: Attribute, x: _Scalar) -> ColumnElement[Any]:
            return _present_json(_as_json(x))

        special = self._relation(resolved, present)
        if special is not None:
            return special
        if resolved.attribute.multi_valued and resolved.sub is not None:
            return self._any_element(resolved, present)
        x = self._scalar(resolved) if not resolved.attribute.multi_valued else None
        if x is None:
            keys = self._data_path(resolved)
            return _present_json(_as_json(_json_path(self.table.c.data, keys)))
        return present(resolved.target, x)

    def _element_scalar(self, element: ColumnElement[Any], sub: str) -> _Scalar:
        return _json_path(element, [sub])

    def _any_element(
        self,
        resolved: ResolvedAttribute,
        test: Callable[[Attribute, _Scalar], ColumnElement[Any]],
    ) -> ColumnElement[bool]:
        """EXISTS over the elements of a multi-valued complex attribute stored in `data`."""
        attr = resolved.attribute
        sub = resolved.sub or attr.sub("value")
        if sub is None:
            raise InvalidFilterError(f"{attr.name} has no 'value'; name a sub-attribute")
        elements = self._elements(resolved)
        e = elements.column
        cond = test(sub, self._element_scalar(e, sub.name))
        return select(literal(1)).select_from(elements).where(cond).exists()

    def _elements(self, resolved: ResolvedAttribute) -> Any:
        array = _as_json(_json_path(self.table.c.data, self._data_path(resolved)))
        safe = case((func.jsonb_typeof(array) == "array", array), else_=_jsonb("[]"))
        return func.jsonb_array_elements(safe).table_valued("value").render_derived()

    def _value_path(self, path: f.AttrPath, inner: f.Filter) -> ColumnElement[bool]:
        resolved = self._resolve(path)
        if resolved.sub is not None or resolved.attribute.type is not Type.COMPLEX:
            raise InvalidFilterError(f"'{_written(path)}[...]' needs a complex attribute")
        if not resolved.attribute.multi_valued:
            # A value filter on a single-valued complex attribute tests its one value.
            def scalar(name: str) -> _Scalar:
                sub = resolved.attribute.sub(name)
                assert sub is not None
                return self._scalar(ResolvedAttribute(resolved.schema, resolved.attribute, sub))

            return _ElementCompiler(resolved.attribute, scalar).compile(inner)
        relation = self._relation_value_path(resolved, inner)
        if relation is not None:
            return relation
        elements = self._elements(resolved)
        e = elements.column
        cond = _ElementCompiler(resolved.attribute, lambda s: self._element_scalar(e, s)).compile(
            inner
        )
        exists = select(literal(1)).select_from(elements).where(cond).exists()
        value = _required_value_eq(inner)
        return exists if value is None else self._with_emails_index(resolved, value, exists)

    def _with_emails_index(
        self, resolved: ResolvedAttribute, value: str, exact: ColumnElement[bool]
    ) -> ColumnElement[bool]:
        """`exact`, which can only hold when some e-mail value equals `value` (case folded),
        preceded by that containment test, which the GIN index on users' e-mails answers.
        The test is implied by `exact`, so the conjunction means the same, negated or not."""
        if self.table is not users or resolved.attribute.name != "emails":
            return exact
        return and_(emails_contain(value), exact)

    # --- relations kept in group_members -------------------------------------------------

    def _relation(
        self, resolved: ResolvedAttribute, test: Callable[[Attribute, _Scalar], ColumnElement[Any]]
    ) -> ColumnElement[bool] | None:
        member_attr = self._relation_attr(resolved)
        if member_attr is None:
            return None
        sub = resolved.sub or resolved.attribute.sub("value")
        assert sub is not None
        scalar = self._relation_scalar(sub.name)
        if scalar is None:
            raise InvalidFilterError(f"filtering on '{resolved.dotted}' is not supported")
        cond = test(sub, scalar)
        return self._relation_exists(cond)

    def _relation_value_path(
        self, resolved: ResolvedAttribute, inner: f.Filter
    ) -> ColumnElement[bool] | None:
        if self._relation_attr(resolved) is None:
            return None

        def scalar(sub: str) -> _Scalar:
            found = self._relation_scalar(sub)
            if found is None:
                raise InvalidFilterError(
                    f"filtering on '{resolved.attribute.name}.{sub}' is not supported"
                )
            return found

        cond = _ElementCompiler(resolved.attribute, scalar).compile(inner)
        return self._relation_exists(cond)

    def _relation_attr(self, resolved: ResolvedAttribute) -> str | None:
        name = resolved.attribute.name
        if self.table is groups and name == "members":
            return name
        if self.table is users and name == "groups":
            return name
        return None

    def _relation_scalar(self, sub: str) -> _Scalar | None:
        m = group_members
        if self.table is groups:
            match sub:
                case "value":
                    return _Scalar(
                        cast(m.c.member_id, Text), func.to_jsonb(cast(m.c.member_id, Text))
                    )
                case "type":
                    return _Scalar(m.c.member_type, func.to_jsonb(m.c.member_type))
                case "display":
                    # The display the store returns: the member's displayName, else userName.
                    u, g = users.alias("mu"), groups.alias("mg")
                    display = func.coalesce(
                        select(func.coalesce(u.c.display_name, u.c.user_name))
                        .where(u.c.id == m.c.member_id)
                        .scalar_subquery(),
                        select(g.c.display_name).where(g.c.id == m.c.member_id).scalar_subquery(),
                    )
                    return _Scalar(display, func.to_jsonb(display))
            return None
        match sub:
            case "value":
                return _Scalar(cast(m.c.group_id, Text), func.to_jsonb(cast(m.c.group_id, Text)))
            case "type":
                return _Scalar(literal("direct", Text), _jsonb('"direct"'))
            case "display":
                g = groups.alias("ug")
                name = select(g.c.display_name).where(g.c.id == m.c.group_id).scalar_subquery()
                return _Scalar(name, func.to_jsonb(name))
        # `$ref` is built from the public URL at response time; it is not stored to filter on.
        return None

    def _relation_exists(self, cond: ColumnElement[Any]) -> ColumnElement[bool]:
        m = group_members
        owner = m.c.group_id if self.table is groups else m.c.member_id
        return select(literal(1)).select_from(m).where(owner == self.table.c.id, cond).exists()


class _ElementCompiler:
    """Compiles the filter inside `attr[...]` against one element of a multi-valued attribute."""

    def __init__(self, attribute: Attribute, scalar: Callable[[str], _Scalar]) -> None:
        self.attribute = attribute
        self.scalar = scalar

    def _sub(self, path: f.AttrPath) -> Attribute:
        if path.uri is not None or path.sub is not None:
            raise InvalidFilterError(
                f"'{_written(path)}' is not a sub-attribute of {self.attribute.name}"
            )
        sub = self.attribute.sub(path.attr)
        if sub is None:
            raise InvalidFilterError(f"unknown attribute '{self.attribute.name}.{path.attr}'")
        return sub

    def compile(self, node: f.Filter) -> ColumnElement[bool]:
        match node:
            case f.And(left, right):
                return and_(self.compile(left), self.compile(right))
            case f.Or(left, right):
                return or_(self.compile(left), self.compile(right))
            case f.Not(inner):
                return _negate(self.compile(inner))
            case f.Present(path):
                sub = self._sub(path)
                x = self.scalar(sub.name)
                assert x.json is not None
                return _present_json(x.json)
            case f.Compare(path, "ne", value):
                return _negate(self.compile(f.Compare(path, "eq", value)))
            case f.Compare(path, op, value):
                sub = self._sub(path)
                name = f"{self.attribute.name}.{sub.name}"
                x = self.scalar(sub.name)
                if value is None:
                    if op != "eq":
                        raise InvalidFilterError(
                            f"only 'eq null' and 'ne null' are allowed on {name}"
                        )
                    assert x.json is not None
                    return _negate(_present_json(x.json))
                return _compare(sub, op, value, x, name)
            case f.ValuePath():
                raise InvalidFilterError("a value filter cannot nest another value filter")
        raise InvalidFilterError("unsupported filter expression")


def _required_value_eq(node: f.Filter) -> str | None:
    """The string v if `node` can only match when `value eq v` holds, else None."""
    match node:
        case f.Compare(f.AttrPath(None, attr, None), "eq", str(value)) if attr.lower() == "value":
            return value
        case f.And(left, right):
            return _required_value_eq(left) or _required_value_eq(right)
    return None


def _written(path: f.AttrPath) -> str:
    name = f"{path.uri}:{path.attr}" if path.uri else path.attr
    return f"{name}.{path.sub}" if path.sub else name


def compile_filter(resource_type: str, node: f.Filter) -> ColumnElement[bool]:
    """SQL for `node` over the table of `resource_type` ("User" or "Group")."""
    return _Compiler(TARGETS[resource_type]).compile(node)


def user_name_lookup(node: f.Filter | None) -> str | None:
    """The value v when `node` is exactly `userName eq "v"` on Users, else None."""
    match node:
        case f.Compare(path, "eq", str(value)) if path.sub is None:
            resolved = resolve(USER, path.uri, path.attr)
            if resolved is not None and resolved.dotted == "userName":
                return value
    return None


def sort_key(resource_type: str, sort_by: str) -> ColumnElement[Any]:
    """The ORDER BY expression for `sortBy` (RFC 7644 §3.4.2.3)."""
    target = TARGETS[resource_type]
    try:
        path = f.parse_path(sort_by)
    except Exception:
        raise InvalidValueError(f"sortBy {sort_by!r} is not an attribute path") from None
    if path.filter is not None or path.sub is not None:
        raise InvalidValueError("sortBy takes an attribute path without a value filter")
    resolved = resolve(target.resource_type, path.attr.uri, path.attr.attr, path.attr.sub)
    if resolved is None:
        raise InvalidValueError(f"sortBy names an unknown attribute '{sort_by}'")
    compiler = _Compiler(target)
    target_attr = resolved.target
    if resolved.attribute.multi_valued:
        # "If the attribute is multi-valued, ... the 'primary' value, if any, or the first."
        sub = resolved.sub or resolved.attribute.sub("value")
        if sub is None or compiler._relation_attr(resolved) is not None:
            raise InvalidValueError(f"cannot sort by '{sort_by}'")
        elements = compiler._elements(resolved)
        e = elements.column
        text: ColumnElement[Any] = (
            select(_json_path(e, [sub.name]).text)
            .select_from(elements)
            .order_by(
                case(
                    (
                        _as_json(_json_path(e, ["primary"])).op("=", return_type=Boolean)(
                            _jsonb("true")
                        ),
                        0,
                    ),
                    else_=1,
                )
            )
            .limit(1)
            .scalar_subquery()
        )
        target_attr = sub
    else:
        x = compiler._scalar(resolved)
        if x.native is not None and target_attr.type in (Type.DATETIME, Type.BOOLEAN):
            return x.native
        if target_attr.type in (Type.INTEGER, Type.DECIMAL):
            assert x.json is not None
            return case((func.jsonb_typeof(x.json) == "number", cast(x.text, Numeric)))
        if target_attr.type is Type.BOOLEAN and x.json is not None:
            return cast(x.text, Boolean)
        text = x.text
    if target_attr.type is Type.STRING and not target_attr.case_exact:
        text = func.lower(text)
    return text.collate("C")


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


__all__ = ["compile_filter", "parse_uuid", "sort_key", "user_name_lookup"]

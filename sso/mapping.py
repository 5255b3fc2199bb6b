"""Who gets which permissions, from what the IdP says about a user: the mapping engine.

IT drives the product's permissions from its IdP: "members of `Support Team` get the
`chat-operator` role", "`department` = Finance gets readonly on project Billing". The same
rules apply to a user pushed by SCIM and to one signing in by SSO: `subject_attributes` builds
the attributes the rules see from a SCIM User resource and from SAML attributes or OIDC claims,
and `assign(mapping, subject)` evaluates the rules into an `Assignment` whose every grant names
the rules that produced it. Pure and deterministic: no I/O, no clock, the standard library
only; regular expressions are compiled once, by `parse_mapping`.

Nothing is granted that no rule names, and doubt fails closed:
- an unknown key anywhere in the document is an error (a typo must not silently grant or drop
  anything), and so is a name missing from the tenant's catalogue;
- regular expressions must match a whole value (`re.fullmatch`): `Admins` does not match
  `NotAdmins`;
- a group name that several SCIM groups of the tenant share never matches by name (only
  `group_id` reaches such a group);
- `owner` is granted only by a rule that names it: never from attribute values (`roles_from`),
  never as the default role.

The document, as loaded from JSON, TOML or YAML::

    {
      "default_role": "readonly",
      "scim_roles": ["member", "readonly"],
      "fields": {"okta": {"preset": "okta", "email": "mail"}},
      "rules": [
        {"name": "support-operators", "when": [{"group": "Support Team"}],
         "grant": {"roles": ["chat-operator"]}},
        {"name": "finance-billing", "when": [{"attribute": "department", "equals": "Finance"}],
         "grant": {"projects": {"Billing": ["readonly"]}}},
        {"name": "ad-admins", "when": [{"attribute": "memberOf", "regex": "CN=Admins,.*"}],
         "grant": {"roles": ["admin"]}},
        {"name": "app-roles", "connection": "entra",
         "when": [{"attribute": "roles", "present": true}], "grant": {"roles_from": "roles"}},
        {"name": "eng", "match": "any",
         "when": [{"group_id": "7d3c..."}, {"group_regex": "eng-.*"}],
         "grant": {"groups": ["Engineering"]}}
      ]
    }

Top level (every key optional):
- `default_role`: the organisation role of a user no rule gives one (default `readonly`); a
  catalogue role, never `owner`.
- `scim_roles`: catalogue roles a SCIM client may set through the User `roles` attribute
  (default none); see `accepted_scim_roles`.
- `fields`: connection name -> `{"preset": NAME, FIELD: NAMES...}`: which attributes hold the
  e-mail, names and groups at login (`sso.profile.PRESETS`; default `generic`). FIELD is one of
  `email`, `given_name`, `family_name`, `display_name`, `groups`; NAMES a string (then the only
  name used) or a list of names tried in order.
- `rules`: a list of rules, evaluated in order; every rule that holds adds its grants.

A rule: `name` (required, unique), `when` (required, non-empty list of conditions), `match`
(`all`, the default, or `any`), `connection` (the rule applies only to users linked to that SSO
connection, and reads only that connection's claims: `Subject.scoped`), `grant` (required, at
least one of):
- `roles`: organisation roles (catalogue names, compared case-insensitively);
- `roles_from`: an attribute whose values that name a catalogue role are granted, except
  `owner`; other values are ignored;
- `groups`: product groups the user becomes a member of;
- `projects`: project name -> project roles.

A condition is exactly one of:
- `{"attribute": NAME, OP}`, OP exactly one of `equals: STR`, `one_of: [STR, ...]` (both
  compared casefolded), `regex: PATTERN` (Python `re`, whole value, case-sensitive unless the
  pattern says `(?i)`), `present: true` (a non-empty value). The attribute name is compared
  case-insensitively; a multi-valued attribute holds when any value does.
- `{"group": NAME}`: member of a group of that name (lower-cased, as the database compares
  names), unless the name is ambiguous.
- `{"group_regex": PATTERN}`: member of a group whose whole name matches, unless ambiguous.
- `{"group_id": ID}`: member of the group with that SCIM id or externalId, or that claim value
  (exact).
"""

from __future__ import annotations

import re
from collections import abc
from dataclasses import dataclass, field
from typing import Any

from sso.profile import DEFAULT_FIELDS, FIELDS, PRESETS, FieldMap, field_map

BUILTIN_ROLES: tuple[str, ...] = ("owner", "admin", "member", "readonly")  # most -> least
OWNER = "owner"
DEFAULT_ROLE = "readonly"

ROLE = "role"  # a grant of an organisation role
GROUP = "group"  # a grant of product group membership
PROJECT = "project"  # a grant of a role on a project

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class MappingError(ValueError):
    """A mapping document that cannot be used; `path` says where (e.g. "rules[2].when[0].regex")."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Catalogue:
    """What exists in the tenant, names as stored (canonical case)."""

    roles: frozenset[str]
    groups: frozenset[str]
    projects: frozenset[str]


@dataclass(frozen=True)
class GroupRef:
    """A group the subject is a member of."""

    name: str  # SCIM displayName, or the raw claim value
    ids: frozenset[str]  # SCIM id and externalId; for a claim group, the claim value itself
    ambiguous: bool = False  # several SCIM groups share the name: name conditions never match


@dataclass(frozen=True)
class Subject:
    attributes: abc.Mapping[str, tuple[str, ...]]  # keys lower-cased
    groups: tuple[GroupRef, ...] = ()
    connections: frozenset[str] = frozenset()  # SSO connections the user is linked to
    # The user as seen through one connection: the SCIM attributes and groups, and that
    # connection's claims only. A rule scoped to a connection reads this, so another IdP's
    # claims never satisfy it (nor feed its `roles_from`).
    scoped: abc.Mapping[str, Subject] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    kind: str  # ROLE | GROUP | PROJECT
    target: str  # role, group or project name, canonical case
    role: str | None  # the project role when kind == PROJECT, else None
    rules: tuple[str, ...]  # the rules that granted it, in rule order


@dataclass(frozen=True)
class Assignment:
    grants: tuple[Grant, ...]  # sorted by (kind, target, role or ""), one per distinct triple
    default_role: str | None  # the mapping's default role when no rule granted a role

    def roles(self) -> tuple[str, ...]:
        """The organisation roles rules granted, sorted (the default role is not among them)."""
        return tuple(sorted(grant.target for grant in self.grants if grant.kind == ROLE))

    def explain(self) -> list[str]:
        """One line per grant and its rules, then the default role if it applies."""
        lines: list[str] = []
        for grant in self.grants:
            what = f"{grant.kind} {grant.target}"
            if grant.role is not None:
                what += f" ({grant.role})"
            word = "rule" if len(grant.rules) == 1 else "rules"
            lines.append(f"{what}  ← {word} {', '.join(grant.rules)}")
        if self.default_role is not None:
            lines.append(
                f"{ROLE} {self.default_role}  ← default (no rule granted an organisation role)"
            )
        return lines


Attributes = abc.Mapping[str, tuple[str, ...]]


# ---- conditions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeCondition:
    """`{"attribute": NAME, OP: ...}`; `values` holds the `equals` value or the `one_of` list."""

    attribute: str
    op: str  # "equals" | "one_of" | "regex" | "present"
    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    _folded: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", frozenset(value.casefold() for value in self.values))

    def holds(self, attributes: Attributes, groups: tuple[GroupRef, ...]) -> bool:
        values = attributes.get(self.attribute.lower(), ())
        if self.op == "present":
            return any(value.strip() for value in values)
        if self.op == "regex":
            pattern = self.pattern
            return pattern is not None and any(pattern.fullmatch(value) for value in values)
        return any(value.casefold() in self._folded for value in values)


@dataclass(frozen=True)
class GroupName:
    """`{"group": NAME}`: never matches a name several SCIM groups share."""

    name: str

    def holds(self, attributes: Attributes, groups: tuple[GroupRef, ...]) -> bool:
        # lower(), not casefold(): the same folding as the database's lower(), which decides
        # which names are ambiguous ("Acceß" and "Access" are two names to both).
        wanted = self.name.lower()
        return any(not group.ambiguous and group.name.lower() == wanted for group in groups)


@dataclass(frozen=True)
class GroupPattern:
    """`{"group_regex": PATTERN}`: the whole name of a group that is not ambiguous."""

    pattern: re.Pattern[str]

    def holds(self, attributes: Attributes, groups: tuple[GroupRef, ...]) -> bool:
        return any(
            not group.ambiguous and self.pattern.fullmatch(group.name) is not None
            for group in groups
        )


@dataclass(frozen=True)
class GroupId:
    """`{"group_id": ID}`: a SCIM group's id, an externalId no other SCIM group of the tenant
    has (the caller leaves shared ones out of `GroupRef.ids`), or a groups claim value;
    ambiguity of the name does not matter."""

    id: str

    def holds(self, attributes: Attributes, groups: tuple[GroupRef, ...]) -> bool:
        return any(self.id in group.ids for group in groups)


Condition = AttributeCondition | GroupName | GroupPattern | GroupId


# ---- rules --------------------------------------------------------------------------------


class _Names:
    """Catalogue names looked up as written, else case-insensitively when that is unique
    (lower(), as the database's unique indexes on lower(name))."""

    def __init__(self, names: abc.Iterable[str]) -> None:
        self.names = frozenset(names)
        self.folded: dict[str, list[str]] = {}
        for name in sorted(self.names):
            self.folded.setdefault(name.lower(), []).append(name)

    def find(self, name: str) -> str | None:
        if name in self.names:
            return name
        found = self.folded.get(name.lower(), [])
        return found[0] if len(found) == 1 else None

    def resolve(self, name: str, path: str, what: str) -> str:
        found = self.find(name)
        if found is not None:
            return found
        candidates = self.folded.get(name.lower(), [])
        if len(candidates) > 1:
            raise MappingError(path, f"ambiguous {what} {name!r} (matches {', '.join(candidates)})")
        raise MappingError(path, f"unknown {what} {name!r}")


@dataclass(frozen=True)
class RuleGrant:
    """What a rule grants; names are canonical, sorted and distinct."""

    roles: tuple[str, ...] = ()
    roles_from: str | None = None
    groups: tuple[str, ...] = ()
    projects: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The roles `roles_from` values may name: the catalogue's, owner excepted.
    value_roles: frozenset[str] = frozenset()
    _value_names: _Names = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        eligible = (role for role in self.value_roles if role.casefold() != OWNER)
        object.__setattr__(self, "_value_names", _Names(eligible))

    def items(self, attributes: Attributes) -> abc.Iterator[tuple[str, str, str | None]]:
        for role in self.roles:
            yield ROLE, role, None
        if self.roles_from is not None:
            for value in attributes.get(self.roles_from.lower(), ()):
                named = self._value_names.find(value.strip())
                if named is not None:
                    yield ROLE, named, None
        for group in self.groups:
            yield GROUP, group, None
        for project, roles in self.projects:
            for role in roles:
                yield PROJECT, project, role


@dataclass(frozen=True)
class Rule:
    name: str
    when: tuple[Condition, ...]
    grant: RuleGrant
    match: str = "all"  # "all" | "any"
    connection: str | None = None

    def holds(self, attributes: Attributes, subject: Subject) -> bool:
        if self.connection is not None and self.connection not in subject.connections:
            return False
        if not self.when:  # fail closed: an empty `all` would hold for everyone
            return False
        results = (condition.holds(attributes, subject.groups) for condition in self.when)
        return all(results) if self.match == "all" else any(results)


@dataclass(frozen=True)
class Mapping:
    default_role: str
    scim_roles: frozenset[str] = frozenset()
    rules: tuple[Rule, ...] = ()
    fields: abc.Mapping[str, FieldMap] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", dict(sorted(self.fields.items())))

    def references_groups(self) -> bool:
        """Whether any rule has a group condition (so membership changes can change grants)."""
        return any(
            isinstance(condition, GroupName | GroupPattern | GroupId)
            for rule in self.rules
            for condition in rule.when
        )

    def fields_for(self, connection: str) -> FieldMap:
        return self.fields.get(connection, DEFAULT_FIELDS)


def empty_mapping(default_role: str = DEFAULT_ROLE) -> Mapping:
    """No rules, no SCIM roles accepted, generic fields: every user gets `default_role`."""
    if default_role.casefold() == OWNER:
        raise MappingError("default_role", "owner is never a default role")
    return Mapping(default_role=default_role)


# ---- evaluation ---------------------------------------------------------------------------


def _lowered(attributes: abc.Mapping[str, abc.Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Keys lower-cased (merging keys that differ in case only), string values only."""
    out: dict[str, list[str]] = {}
    for key, values in attributes.items():
        listed = (values,) if isinstance(values, str) else values
        out.setdefault(key.lower(), []).extend(v for v in listed if isinstance(v, str))
    return {key: tuple(values) for key, values in out.items()}


def assign(mapping: Mapping, subject: Subject) -> Assignment:
    """What the mapping grants the subject: every rule that holds adds its grants."""
    attributes = _lowered(subject.attributes)
    scoped: dict[str, tuple[Attributes, Subject]] = {}
    found: dict[tuple[str, str, str | None], list[str]] = {}
    for rule in mapping.rules:
        seen: Subject = subject
        seen_attributes: Attributes = attributes
        if rule.connection is not None and rule.connection in subject.scoped:
            if rule.connection not in scoped:
                view = subject.scoped[rule.connection]
                scoped[rule.connection] = (_lowered(view.attributes), view)
            seen_attributes, seen = scoped[rule.connection]
        if not rule.holds(seen_attributes, seen):
            continue
        for key in rule.grant.items(seen_attributes):
            names = found.setdefault(key, [])
            if rule.name not in names:
                names.append(rule.name)
    grants = tuple(
        Grant(kind, target, role, tuple(names))
        for (kind, target, role), names in sorted(
            found.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        )
    )
    granted_role = any(grant.kind == ROLE for grant in grants)
    return Assignment(grants, None if granted_role else mapping.default_role)


def accepted_scim_roles(mapping: Mapping, pushed: abc.Iterable[str]) -> tuple[str, ...]:
    """The pushed `roles` values a SCIM client may set, as canonical names, sorted and
    distinct; values naming no role in `mapping.scim_roles` are dropped."""
    names = _Names(mapping.scim_roles)
    found = {names.find(value.strip()) for value in pushed if isinstance(value, str)}
    return tuple(sorted(name for name in found if name is not None))


# ---- the attributes rules see -------------------------------------------------------------

# SCIM attributes that are no user attributes: identifiers and metadata set by the server,
# the write-only password, and `groups` (membership reaches rules as `Subject.groups`).
_NOT_ATTRIBUTES = frozenset({"id", "meta", "schemas", "password", "groups"})
_MAX_DEPTH = 8


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _collect(found: dict[str, dict[str, None]], key: str, value: Any, depth: int) -> None:
    """Adds `value` under `key`: lists value by value, objects flattened with dots; an
    object's `value` (SCIM `emails[].value`, `manager.value`) also stands for the object."""
    if value is None or depth > _MAX_DEPTH:
        return
    if isinstance(value, abc.Mapping):
        for sub, item in value.items():
            if not isinstance(sub, str):
                continue
            if sub.lower() == "value":
                _collect(found, key, item, depth + 1)
            _collect(found, f"{key}.{sub}", item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(found, key, item, depth + 1)
    else:
        text = _text(value)
        if text is not None:
            found.setdefault(key.lower(), {})[text] = None


def subject_attributes(
    scim_user: abc.Mapping[str, Any] | None, claims: abc.Iterable[abc.Mapping[str, Any]]
) -> dict[str, tuple[str, ...]]:
    """The attributes rules see: keys lower-cased, values non-empty strings in first-seen
    order without repeats; later sources add to earlier ones under the same key.

    From a SCIM User: its attributes, complex ones flattened with dots (`name.givenname`),
    multi-valued ones by their values (`emails`, also `emails.value`); a schema extension's
    under its full URN path (`urn:...:enterprise:2.0:User:department`), the enterprise
    extension's also under their short names (`department`, `manager` = manager.value).
    From SAML attributes and OIDC claims: each key, nested claims flattened with dots
    (Keycloak's `realm_access.roles`, `resource_access.<client>.roles`)."""
    found: dict[str, dict[str, None]] = {}
    if scim_user is not None:
        for key, value in scim_user.items():
            if not isinstance(key, str) or key.lower() in _NOT_ATTRIBUTES:
                continue
            if key.lower().startswith("urn:") and isinstance(value, abc.Mapping):
                enterprise = key.lower() == ENTERPRISE_USER.lower()
                for sub, item in value.items():
                    if isinstance(sub, str):
                        _collect(found, f"{key}:{sub}", item, 1)
                        if enterprise:
                            _collect(found, sub, item, 1)
            else:
                _collect(found, key, value, 0)
    for source in claims:
        for key, value in source.items():
            if isinstance(key, str):
                _collect(found, key, value, 0)
    return {key: tuple(values) for key, values in found.items()}


# ---- the document -------------------------------------------------------------------------

_TOP = ("default_role", "scim_roles", "fields", "rules")
_RULE = ("name", "match", "connection", "when", "grant")
_KINDS = ("attribute", "group", "group_regex", "group_id")
_OPS = ("equals", "one_of", "regex", "present")
_GRANT = ("roles", "roles_from", "groups", "projects")
_FIELD_KEYS = ("preset", *FIELDS)
_MATCHES = ("all", "any")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, abc.Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _key_path(parent: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{key!r}]"


def _object(value: Any, path: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    """A JSON object with string keys, all of them in `allowed` (any when None)."""
    if not isinstance(value, abc.Mapping):
        raise MappingError(path or "$", f"expected an object, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise MappingError(path or "$", f"keys must be strings, got {_kind(key)}")
    if allowed is not None:
        for key in sorted(value):
            if key not in allowed:
                expected = ", ".join(allowed)
                raise MappingError(_key_path(path, key), f"unknown key (expected {expected})")
    return dict(value)


def _list(value: Any, path: str, *, empty: bool = False) -> list[Any]:
    """A JSON list (never a string taken apart); non-empty unless `empty`."""
    if not isinstance(value, list | tuple):
        raise MappingError(path, f"expected a list, got {_kind(value)}")
    if not value and not empty:
        raise MappingError(path, "must not be empty")
    return list(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise MappingError(path, f"expected a string, got {_kind(value)}")
    if not value.strip():
        raise MappingError(path, "must not be empty")
    return value


def _regex(value: Any, path: str) -> re.Pattern[str]:
    text = _string(value, path)
    try:
        return re.compile(text)
    except re.error as exc:
        raise MappingError(path, f"invalid regular expression: {exc}") from None


def _required(doc: dict[str, Any], key: str, path: str) -> Any:
    if key not in doc:
        raise MappingError(path, f"missing required key {key!r}")
    return doc[key]


def _names(value: Any, path: str, names: _Names, what: str) -> tuple[str, ...]:
    """A non-empty list of catalogue names, canonical, sorted and distinct."""
    found = {
        names.resolve(_string(item, f"{path}[{i}]"), f"{path}[{i}]", what)
        for i, item in enumerate(_list(value, path))
    }
    return tuple(sorted(found))


def _condition(value: Any, path: str) -> Condition:
    doc = _object(value, path, _KINDS + _OPS)
    kinds = [kind for kind in _KINDS if kind in doc]
    if len(kinds) != 1:
        raise MappingError(path, f"give exactly one of {', '.join(_KINDS)}")
    kind = kinds[0]
    ops = [op for op in _OPS if op in doc]
    if kind != "attribute":
        if ops:
            raise MappingError(f"{path}.{ops[0]}", f"{ops[0]} applies to attribute conditions")
        if kind == "group":
            return GroupName(_string(doc[kind], f"{path}.{kind}"))
        if kind == "group_id":
            return GroupId(_string(doc[kind], f"{path}.{kind}"))
        return GroupPattern(_regex(doc[kind], f"{path}.{kind}"))
    attribute = _string(doc["attribute"], f"{path}.attribute")
    if len(ops) != 1:
        raise MappingError(path, f"give exactly one of {', '.join(_OPS)}")
    op = ops[0]
    operand = doc[op]
    where = f"{path}.{op}"
    if op == "equals":
        return AttributeCondition(attribute, op, (_string(operand, where),))
    if op == "one_of":
        items = _list(operand, where)
        values = tuple(_string(item, f"{where}[{i}]") for i, item in enumerate(items))
        return AttributeCondition(attribute, op, values)
    if op == "regex":
        return AttributeCondition(attribute, op, pattern=_regex(operand, where))
    # `present: false` would be an absence test: a condition that holds for users the IdP
    # says nothing about, which is not a way to hand out privilege.
    if operand is not True:
        raise MappingError(where, "must be true")
    return AttributeCondition(attribute, op)


def _grant(value: Any, path: str, catalogue: Catalogue) -> RuleGrant:
    doc = _object(value, path, _GRANT)
    if not doc:
        raise MappingError(path, f"give at least one of {', '.join(_GRANT)}")
    roles = _Names(catalogue.roles)
    granted_roles = _names(doc["roles"], f"{path}.roles", roles, "role") if "roles" in doc else ()
    roles_from = None
    if "roles_from" in doc:
        roles_from = _string(doc["roles_from"], f"{path}.roles_from")
    groups: tuple[str, ...] = ()
    if "groups" in doc:
        groups = _names(doc["groups"], f"{path}.groups", _Names(catalogue.groups), "group")
    projects: dict[str, set[str]] = {}
    if "projects" in doc:
        where = f"{path}.projects"
        listed = _object(doc["projects"], where, None)
        if not listed:
            raise MappingError(where, "must not be empty")
        known = _Names(catalogue.projects)
        for name in sorted(listed):
            at = _key_path(where, name)
            project = known.resolve(name, at, "project")
            projects.setdefault(project, set()).update(_names(listed[name], at, roles, "role"))
    return RuleGrant(
        roles=granted_roles,
        roles_from=roles_from,
        groups=groups,
        projects=tuple((name, tuple(sorted(projects[name]))) for name in sorted(projects)),
        value_roles=frozenset(catalogue.roles) if roles_from is not None else frozenset(),
    )


def _rule(value: Any, path: str, catalogue: Catalogue) -> Rule:
    doc = _object(value, path, _RULE)
    name = _string(_required(doc, "name", path), f"{path}.name")
    match = "all"
    if "match" in doc:
        match = _string(doc["match"], f"{path}.match")
        if match not in _MATCHES:
            raise MappingError(f"{path}.match", f"expected one of {', '.join(_MATCHES)}")
    connection = None
    if "connection" in doc:
        connection = _string(doc["connection"], f"{path}.connection")
    when = _list(_required(doc, "when", path), f"{path}.when")
    conditions = tuple(_condition(item, f"{path}.when[{i}]") for i, item in enumerate(when))
    grant = _grant(_required(doc, "grant", path), f"{path}.grant", catalogue)
    return Rule(name, conditions, grant, match, connection)


def _field_maps(value: Any, path: str) -> dict[str, FieldMap]:
    out: dict[str, FieldMap] = {}
    for connection, entry in sorted(_object(value, path, None).items()):
        at = _key_path(path, connection)
        if not connection.strip():
            raise MappingError(at, "a connection name must not be empty")
        doc = _object(entry, at, _FIELD_KEYS)
        preset = "generic"
        if "preset" in doc:
            preset = _string(doc["preset"], f"{at}.preset")
            if preset not in PRESETS:
                expected = ", ".join(PRESETS)
                raise MappingError(f"{at}.preset", f"unknown preset {preset!r} ({expected})")
        overrides: dict[str, str | tuple[str, ...]] = {}
        for name in FIELDS:
            if name not in doc:
                continue
            where = f"{at}.{name}"
            given = doc[name]
            if isinstance(given, str):
                overrides[name] = _string(given, where)
            elif isinstance(given, list | tuple):
                overrides[name] = tuple(
                    _string(item, f"{where}[{i}]") for i, item in enumerate(given)
                )
            else:
                raise MappingError(where, f"expected a string or a list, got {_kind(given)}")
        out[connection] = field_map(preset, **overrides)
    return out


def parse_mapping(document: Any, catalogue: Catalogue) -> Mapping:
    """The mapping in a JSON-shaped document, checked against the tenant's catalogue. Raises
    MappingError on the first problem, with its path."""
    doc = _object(document, "", _TOP)
    roles = _Names(catalogue.roles)
    default_role = DEFAULT_ROLE
    if "default_role" in doc:
        default_role = _string(doc["default_role"], "default_role")
    default_role = roles.resolve(default_role, "default_role", "role")
    if default_role.casefold() == OWNER:
        raise MappingError("default_role", "owner is never a default role")
    scim_roles: tuple[str, ...] = ()
    if "scim_roles" in doc and _list(doc["scim_roles"], "scim_roles", empty=True):
        scim_roles = _names(doc["scim_roles"], "scim_roles", roles, "role")
    fields = _field_maps(doc["fields"], "fields") if "fields" in doc else {}
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_list(doc.get("rules", []), "rules", empty=True)):
        rule = _rule(item, f"rules[{i}]", catalogue)
        folded = rule.name.casefold()
        if folded in seen:
            raise MappingError(
                f"rules[{i}].name", f"duplicate rule name {rule.name!r} (as rules[{seen[folded]}])"
            )
        seen[folded] = i
        rules.append(rule)
    return Mapping(default_role, frozenset(scim_roles), tuple(rules), fields)


def _condition_document(condition: Condition) -> dict[str, Any]:
    if isinstance(condition, GroupName):
        return {"group": condition.name}
    if isinstance(condition, GroupPattern):
        return {"group_regex": condition.pattern.pattern}
    if isinstance(condition, GroupId):
        return {"group_id": condition.id}
    operand: Any
    if condition.op == "equals":
        operand = condition.values[0]
    elif condition.op == "one_of":
        operand = list(condition.values)
    elif condition.op == "regex" and condition.pattern is not None:
        operand = condition.pattern.pattern
    else:
        operand = True
    return {"attribute": condition.attribute, condition.op: operand}


def _grant_document(grant: RuleGrant) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if grant.roles:
        doc["roles"] = list(grant.roles)
    if grant.roles_from is not None:
        doc["roles_from"] = grant.roles_from
    if grant.groups:
        doc["groups"] = list(grant.groups)
    if grant.projects:
        doc["projects"] = {project: list(roles) for project, roles in grant.projects}
    return doc


def _fields_document(fields: FieldMap) -> dict[str, Any]:
    """The preset the field map differs least from (the first such), and the differences."""

    def differences(preset: FieldMap) -> dict[str, list[str]]:
        return {
            name: list(getattr(fields, name))
            for name in FIELDS
            if getattr(fields, name) != getattr(preset, name)
        }

    name = min(PRESETS, key=lambda preset: len(differences(PRESETS[preset])))
    return {"preset": name, **differences(PRESETS[name])}


def to_document(mapping: Mapping) -> dict[str, Any]:
    """The mapping as a JSON-shaped document that `parse_mapping` reads back to it."""
    rules = []
    for rule in mapping.rules:
        doc: dict[str, Any] = {"name": rule.name}
        if rule.connection is not None:
            doc["connection"] = rule.connection
        if rule.match != "all":
            doc["match"] = rule.match
        doc["when"] = [_condition_document(condition) for condition in rule.when]
        doc["grant"] = _grant_document(rule.grant)
        rules.append(doc)
    return {
        "default_role": mapping.default_role,
        "scim_roles": sorted(mapping.scim_roles),
        "fields": {name: _fields_document(found) for name, found in mapping.fields.items()},
        "rules": rules,
    }

"""sso.mapping: rules from IdP attributes and groups to roles, groups and project roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sso.mapping import (
    BUILTIN_ROLES,
    OWNER,
    Assignment,
    Catalogue,
    Grant,
    GroupRef,
    Mapping,
    MappingError,
    Rule,
    RuleGrant,
    Subject,
    accepted_scim_roles,
    assign,
    empty_mapping,
    parse_mapping,
    subject_attributes,
    to_document,
)
from sso.profile import DEFAULT_FIELDS, PRESETS, field_map

CATALOGUE = Catalogue(
    roles=frozenset({*BUILTIN_ROLES, "chat-operator", "Billing-Viewer"}),
    groups=frozenset({"Engineering", "Support"}),
    projects=frozenset({"Billing", "Roadmap", "Pay roll"}),
)
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
VECTORS = Path(__file__).parent / "vectors" / "rfc7643"


def subject(
    attributes: dict[str, tuple[str, ...]] | None = None,
    groups: tuple[GroupRef, ...] = (),
    connections: tuple[str, ...] = (),
) -> Subject:
    return Subject(attributes or {}, groups, frozenset(connections))


def group(name: str, *ids: str, ambiguous: bool = False) -> GroupRef:
    return GroupRef(name, frozenset(ids), ambiguous)


def rule(name: str, when: Any, grant: Any, **extra: Any) -> Any:
    return {"name": name, "when": when, "grant": grant, **extra}


def mapping(*rules: Any, **top: Any) -> Mapping:
    return parse_mapping({"rules": list(rules), **top}, CATALOGUE)


def triples(found: Assignment) -> list[tuple[str, str, str | None]]:
    return [(grant.kind, grant.target, grant.role) for grant in found.grants]


# ---- conditions ---------------------------------------------------------------------------

SUPPORT = group("Support Team", "g-support", "ext-17")
SHARED_NAME = group("Support Team", "g-other", ambiguous=True)

# id -> (condition, subject, whether it holds)
CONDITIONS: dict[str, tuple[dict[str, Any], Subject, bool]] = {
    "equals": (
        {"attribute": "department", "equals": "Finance"},
        subject({"department": ("Finance",)}),
        True,
    ),
    "equals-casefolded-value": (
        {"attribute": "department", "equals": "Finance"},
        subject({"department": ("FINANCE",)}),
        True,
    ),
    "equals-casefold-not-lower": (
        {"attribute": "city", "equals": "STRASSE"},
        subject({"city": ("straße",)}),
        True,
    ),
    "equals-attribute-name-any-case": (
        {"attribute": "Department", "equals": "finance"},
        subject({"department": ("Finance",)}),
        True,
    ),
    "equals-subject-key-any-case": (
        {"attribute": "department", "equals": "finance"},
        subject({"DEPARTMENT": ("Finance",)}),
        True,
    ),
    "equals-other-value": (
        {"attribute": "department", "equals": "Finance"},
        subject({"department": ("Finances",)}),
        False,
    ),
    "equals-missing-attribute": (
        {"attribute": "department", "equals": "Finance"},
        subject({"division": ("Finance",)}),
        False,
    ),
    "equals-any-of-many-values": (
        {"attribute": "department", "equals": "Finance"},
        subject({"department": ("Sales", "Finance")}),
        True,
    ),
    "one-of": (
        {"attribute": "department", "one_of": ["Finance", "Legal"]},
        subject({"department": ("legal",)}),
        True,
    ),
    "one-of-none": (
        {"attribute": "department", "one_of": ["Finance", "Legal"]},
        subject({"department": ("Sales", "Marketing")}),
        False,
    ),
    "regex": (
        {"attribute": "memberOf", "regex": "CN=Admins,.*"},
        subject({"memberof": ("CN=Admins,OU=Groups,DC=corp,DC=example",)}),
        True,
    ),
    "regex-whole-value-not-suffix": (
        {"attribute": "memberOf", "regex": "Admins"},
        subject({"memberof": ("NotAdmins",)}),
        False,
    ),
    "regex-whole-value-not-prefix": (
        {"attribute": "memberOf", "regex": "Admins"},
        subject({"memberof": ("Admins-retired",)}),
        False,
    ),
    "regex-case-sensitive": (
        {"attribute": "memberOf", "regex": "CN=Admins,.*"},
        subject({"memberof": ("cn=admins,dc=corp",)}),
        False,
    ),
    "regex-inline-ignorecase": (
        {"attribute": "memberOf", "regex": "(?i)CN=Admins,.*"},
        subject({"memberof": ("cn=admins,dc=corp",)}),
        True,
    ),
    "regex-any-of-many-values": (
        {"attribute": "memberOf", "regex": "CN=Admins,.*"},
        subject({"memberof": ("CN=Users,DC=corp", "CN=Admins,DC=corp")}),
        True,
    ),
    "present": ({"attribute": "roles", "present": True}, subject({"roles": ("x",)}), True),
    "present-no-values": ({"attribute": "roles", "present": True}, subject({"roles": ()}), False),
    "present-blank": ({"attribute": "roles", "present": True}, subject({"roles": (" ",)}), False),
    "present-missing": ({"attribute": "roles", "present": True}, subject(), False),
    "group": ({"group": "support team"}, subject(groups=(SUPPORT,)), True),
    "group-other-name": ({"group": "Support"}, subject(groups=(SUPPORT,)), False),
    "group-ambiguous-name": ({"group": "Support Team"}, subject(groups=(SHARED_NAME,)), False),
    "group-name-is-not-an-id": ({"group": "g-support"}, subject(groups=(SUPPORT,)), False),
    "group-is-not-an-attribute": (
        {"group": "Support Team"},
        subject({"groups": ("Support Team",)}),
        False,
    ),
    "group-regex": ({"group_regex": "Support.*"}, subject(groups=(SUPPORT,)), True),
    "group-regex-whole-name": (
        {"group_regex": "Team"},
        subject(groups=(SUPPORT,)),
        False,
    ),
    "group-regex-ambiguous-name": (
        {"group_regex": "Support.*"},
        subject(groups=(SHARED_NAME,)),
        False,
    ),
    "group-id": ({"group_id": "g-support"}, subject(groups=(SUPPORT,)), True),
    "group-id-external-id": ({"group_id": "ext-17"}, subject(groups=(SUPPORT,)), True),
    "group-id-ambiguous-name": ({"group_id": "g-other"}, subject(groups=(SHARED_NAME,)), True),
    "group-id-case-sensitive": ({"group_id": "G-SUPPORT"}, subject(groups=(SUPPORT,)), False),
    "group-id-is-not-a-name": ({"group_id": "Support Team"}, subject(groups=(SUPPORT,)), False),
}


@pytest.mark.parametrize("condition,who,holds", CONDITIONS.values(), ids=CONDITIONS.keys())
def test_conditions(condition: dict[str, Any], who: Subject, holds: bool) -> None:
    found = assign(mapping(rule("r", [condition], {"roles": ["member"]})), who)
    assert found.roles() == (("member",) if holds else ())


FINANCE = {"attribute": "department", "equals": "Finance"}
ADMINS = {"group": "Admins"}

# id -> (rule extras, when, subject, whether the rule holds)
MATCHES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], Subject, bool]] = {
    "all-both": (
        {},
        [FINANCE, ADMINS],
        subject({"department": ("Finance",)}, (group("Admins"),)),
        True,
    ),
    "all-one": ({}, [FINANCE, ADMINS], subject({"department": ("Finance",)}), False),
    "all-explicit": (
        {"match": "all"},
        [FINANCE, ADMINS],
        subject(groups=(group("Admins"),)),
        False,
    ),
    "any-one": ({"match": "any"}, [FINANCE, ADMINS], subject(groups=(group("Admins"),)), True),
    "any-none": ({"match": "any"}, [FINANCE, ADMINS], subject({"department": ("Sales",)}), False),
    "connection-linked": (
        {"connection": "entra"},
        [FINANCE],
        subject({"department": ("Finance",)}, connections=("okta", "entra")),
        True,
    ),
    "connection-not-linked": (
        {"connection": "entra"},
        [FINANCE],
        subject({"department": ("Finance",)}, connections=("okta",)),
        False,
    ),
    "connection-none-linked": (
        {"connection": "entra"},
        [FINANCE],
        subject({"department": ("Finance",)}),
        False,
    ),
}


@pytest.mark.parametrize("extra,when,who,holds", MATCHES.values(), ids=MATCHES.keys())
def test_match_and_connection(
    extra: dict[str, Any], when: list[dict[str, Any]], who: Subject, holds: bool
) -> None:
    found = assign(mapping(rule("r", when, {"roles": ["member"]}, **extra)), who)
    assert found.roles() == (("member",) if holds else ())


# ---- grants -------------------------------------------------------------------------------

ANYONE = [{"attribute": "department", "present": True}]
IN_FINANCE = subject({"department": ("Finance",)})

# id -> (grant, subject attributes, expected (kind, target, role) triples)
GRANTS: dict[str, tuple[dict[str, Any], dict[str, tuple[str, ...]], list[Any]]] = {
    "roles-canonical-case": (
        {"roles": ["ADMIN", "Chat-Operator"]},
        {},
        [("role", "admin", None), ("role", "chat-operator", None)],
    ),
    "roles-owner-named": ({"roles": ["Owner"]}, {}, [("role", "owner", None)]),
    "roles-from": (
        {"roles_from": "Roles"},
        {"roles": ("Admin", "chat-OPERATOR", "superuser", "")},
        [("role", "admin", None), ("role", "chat-operator", None)],
    ),
    "roles-from-never-owner": (
        {"roles_from": "roles"},
        {"roles": ("owner", "OWNER", "Owner")},
        [],
    ),
    "roles-from-missing-attribute": ({"roles_from": "roles"}, {}, []),
    "groups-canonical-case": (
        {"groups": ["engineering", "SUPPORT"]},
        {},
        [("group", "Engineering", None), ("group", "Support", None)],
    ),
    "projects": (
        {"projects": {"billing": ["readonly", "billing-viewer"]}},
        {},
        [("project", "Billing", "Billing-Viewer"), ("project", "Billing", "readonly")],
    ),
    "project-owner-named": (
        {"projects": {"Roadmap": ["owner"]}},
        {},
        [("project", "Roadmap", "owner")],
    ),
    "project-keys-one-project": (
        {"projects": {"Billing": ["readonly"], "BILLING": ["member", "readonly"]}},
        {},
        [("project", "Billing", "member"), ("project", "Billing", "readonly")],
    ),
    "everything-sorted": (
        {
            "projects": {"Roadmap": ["member"], "Billing": ["readonly"]},
            "groups": ["Support", "Engineering"],
            "roles_from": "roles",
            "roles": ["member"],
        },
        {"roles": ("admin", "member")},
        [
            ("group", "Engineering", None),
            ("group", "Support", None),
            ("project", "Billing", "readonly"),
            ("project", "Roadmap", "member"),
            ("role", "admin", None),
            ("role", "member", None),
        ],
    ),
}


@pytest.mark.parametrize("grant,attributes,expected", GRANTS.values(), ids=GRANTS.keys())
def test_grants(grant: dict[str, Any], attributes: dict[str, Any], expected: list[Any]) -> None:
    who = subject({"department": ("Finance",), **attributes})
    found = assign(mapping(rule("r", ANYONE, grant)), who)
    assert triples(found) == expected
    assert all(grant.rules == ("r",) for grant in found.grants)


def test_one_grant_per_target_naming_every_rule_in_rule_order() -> None:
    second = rule("second", [FINANCE], {"roles": ["admin"], "groups": ["Support"]})
    first = rule("first", ANYONE, {"roles": ["Admin"], "roles_from": "roles"})
    who = subject({"department": ("Finance",), "roles": ("admin",)})
    found = assign(mapping(first, second), who)
    assert found.grants == (
        Grant("group", "Support", None, ("second",)),
        Grant("role", "admin", None, ("first", "second")),
    )
    reversed_order = assign(mapping(second, first), who)
    assert reversed_order.grants[1].rules == ("second", "first")


DEFAULT_CASES: dict[str, tuple[dict[str, Any], str | None, tuple[str, ...]]] = {
    "no-rule-holds": ({"attribute": "department", "equals": "Sales"}, "readonly", ()),
    "group-only-grant": ({"attribute": "department", "equals": "Finance"}, "readonly", ()),
    "role-granted": ({"attribute": "department", "equals": "Finance"}, None, ("member",)),
}


@pytest.mark.parametrize(
    "condition,default,roles", DEFAULT_CASES.values(), ids=DEFAULT_CASES.keys()
)
def test_default_role_only_when_no_rule_granted_one(
    condition: dict[str, Any], default: str | None, roles: tuple[str, ...]
) -> None:
    grant = {"groups": ["Support"]} if not roles else {"roles": list(roles)}
    found = assign(mapping(rule("r", [condition], grant)), IN_FINANCE)
    assert found.default_role == default
    assert found.roles() == roles


def test_default_role_is_the_mappings() -> None:
    found = assign(mapping(default_role="Member"), IN_FINANCE)
    assert found == Assignment((), "member")


def test_owner_only_when_a_rule_names_it() -> None:
    rules = (
        rule("from-values", ANYONE, {"roles_from": "roles"}),
        rule("finance", [FINANCE], {"projects": {"Billing": ["readonly"]}}),
    )
    who = subject({"department": ("Finance",), "roles": ("owner",), "role": ("owner",)})
    assert assign(mapping(*rules, scim_roles=["member"]), who).roles() == ()
    named = rule("founders", [{"attribute": "role", "equals": "owner"}], {"roles": ["owner"]})
    assert assign(mapping(*rules, named), who).roles() == (OWNER,)


def test_a_rule_without_conditions_never_holds() -> None:
    built = Mapping("readonly", rules=(Rule("all-of-nothing", (), RuleGrant(roles=("admin",))),))
    assert assign(built, EVERYTHING) == Assignment((), "readonly")


def _reordered(value: Any) -> Any:
    """The same document with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


DOCUMENT: dict[str, Any] = {
    "default_role": "readonly",
    "scim_roles": ["member", "readonly"],
    "fields": {"okta": {"preset": "okta", "email": "mail"}, "entra": {"preset": "entra"}},
    "rules": [
        rule("support-operators", [{"group": "Support Team"}], {"roles": ["chat-operator"]}),
        rule(
            "finance-billing",
            [{"attribute": "department", "equals": "Finance"}],
            {"projects": {"Billing": ["readonly", "Billing-Viewer"], "Roadmap": ["member"]}},
        ),
        rule(
            "ad-admins", [{"attribute": "memberOf", "regex": "CN=Admins,.*"}], {"roles": ["admin"]}
        ),
        rule(
            "app-roles",
            [{"attribute": "roles", "present": True}],
            {"roles_from": "roles"},
            connection="entra",
        ),
        rule(
            "eng",
            [
                {"group_id": "7d3c-11"},
                {"group_regex": "eng-.*"},
                {"attribute": "title", "one_of": ["Engineer", "SRE"]},
            ],
            {"groups": ["Engineering", "Support"]},
            match="any",
        ),
        rule("eng-admins", [{"group_id": "7d3c-11"}], {"roles": ["admin"]}),
    ],
}

EVERYTHING = Subject(
    attributes={
        "department": ("Finance",),
        "memberof": ("CN=Admins,DC=corp",),
        "roles": ("Admin", "owner", "chat-operator"),
    },
    groups=(
        group("Support Team", "g1"),
        group("eng-backend", "7d3c-11", ambiguous=True),
        group("Finance", "g3"),
    ),
    connections=frozenset({"entra"}),
)


def test_same_input_same_assignment_whatever_the_order() -> None:
    found = assign(parse_mapping(DOCUMENT, CATALOGUE), EVERYTHING)
    reordered_doc = parse_mapping(_reordered(DOCUMENT), CATALOGUE)
    assert reordered_doc == parse_mapping(DOCUMENT, CATALOGUE)
    shuffled = Subject(
        attributes=dict(reversed(list(EVERYTHING.attributes.items()))),
        groups=tuple(reversed(EVERYTHING.groups)),
        connections=EVERYTHING.connections,
    )
    assert assign(reordered_doc, shuffled) == found
    keys = [(g.kind, g.target, g.role or "") for g in found.grants]
    assert keys == sorted(keys)
    assert triples(found) == [
        ("group", "Engineering", None),
        ("group", "Support", None),
        ("project", "Billing", "Billing-Viewer"),
        ("project", "Billing", "readonly"),
        ("project", "Roadmap", "member"),
        ("role", "admin", None),
        ("role", "chat-operator", None),
    ]


def test_explain() -> None:
    found = assign(parse_mapping(DOCUMENT, CATALOGUE), EVERYTHING)
    assert found.explain() == [
        "group Engineering  ← rule eng",
        "group Support  ← rule eng",
        "project Billing (Billing-Viewer)  ← rule finance-billing",
        "project Billing (readonly)  ← rule finance-billing",
        "project Roadmap (member)  ← rule finance-billing",
        "role admin  ← rules ad-admins, app-roles, eng-admins",
        "role chat-operator  ← rules support-operators, app-roles",
    ]
    alone = assign(parse_mapping(DOCUMENT, CATALOGUE), subject({"department": ("Finance",)}))
    assert alone.explain() == [
        "project Billing (Billing-Viewer)  ← rule finance-billing",
        "project Billing (readonly)  ← rule finance-billing",
        "project Roadmap (member)  ← rule finance-billing",
        "role readonly  ← default (no rule granted an organisation role)",
    ]


# Subjects whose attributes and groups look like, but are not, what a rule names.
NO_ESCALATION: dict[str, Subject] = {
    "nothing": subject(),
    "lookalike-values": subject(
        {
            "department": ("Finance Ops", "Fin"),
            "memberof": ("CN=NotAdmins,DC=corp", "OU=x,CN=Admins,DC=corp", "CN=Admins"),
            "title": ("Engineering Manager",),
        }
    ),
    "blank-values": subject({"department": ("",), "roles": ("", "  ")}),
    "owner-in-role-values": subject({"roles": ("owner",)}, connections=("entra",)),
    "roles-without-the-connection": subject({"roles": ("admin",)}, connections=("okta",)),
    "group-names-as-attributes": subject({"groups": ("Support Team", "eng-backend", "7d3c-11")}),
    "ambiguous-group-names": subject(
        groups=(group("Support Team", "x1", ambiguous=True), group("eng-1", "x2", ambiguous=True))
    ),
    "group-named-like-an-id": subject(groups=(group("7d3c-11", "other"),)),
    "group-regex-partial-name": subject(groups=(group("team-eng-backend", "x3"),)),
    "attribute-named-like-a-group": subject({"support team": ("true",), "admin": ("true",)}),
}


@pytest.mark.parametrize("who", NO_ESCALATION.values(), ids=NO_ESCALATION.keys())
def test_no_escalation(who: Subject) -> None:
    found = assign(parse_mapping(DOCUMENT, CATALOGUE), who)
    assert found.grants == ()
    assert found.default_role == "readonly"


# ---- validation ---------------------------------------------------------------------------

OK_WHEN = [{"group": "x"}]
OK_GRANT = {"roles": ["member"]}


def _rules(*rules: Any) -> dict[str, Any]:
    return {"rules": list(rules)}


def _when(*conditions: Any) -> dict[str, Any]:
    return _rules(rule("r", list(conditions), OK_GRANT))


def _grant(grant: Any) -> dict[str, Any]:
    return _rules(rule("r", OK_WHEN, grant))


CONDITION_KEYS = "attribute, group, group_regex, group_id, equals, one_of, regex, present"
PRESET_NAMES = "generic, okta, entra, google, onelogin, keycloak, jumpcloud"

# id -> (document, the error's path, the error's message)
INVALID: dict[str, tuple[Any, str, str]] = {
    "not-an-object": ([], "$", "expected an object, got a list"),
    "non-string-key": ({1: "x"}, "$", "keys must be strings, got a number"),
    "unknown-top-key": (
        {"rule": []},
        "rule",
        "unknown key (expected default_role, scim_roles, fields, rules)",
    ),
    "default-role-owner": (
        {"default_role": "Owner"},
        "default_role",
        "owner is never a default role",
    ),
    "default-role-unknown": (
        {"default_role": "superadmin"},
        "default_role",
        "unknown role 'superadmin'",
    ),
    "default-role-type": ({"default_role": 3}, "default_role", "expected a string, got a number"),
    "scim-roles-string": ({"scim_roles": "member"}, "scim_roles", "expected a list, got a string"),
    "scim-roles-unknown": (
        {"scim_roles": ["member", "boss"]},
        "scim_roles[1]",
        "unknown role 'boss'",
    ),
    "rules-object": ({"rules": {}}, "rules", "expected a list, got an object"),
    "rule-string": (_rules("r"), "rules[0]", "expected an object, got a string"),
    "rule-unknown-key": (
        _rules({**rule("r", OK_WHEN, OK_GRANT), "grants": {}}),
        "rules[0].grants",
        "unknown key (expected name, match, connection, when, grant)",
    ),
    "rule-without-name": (
        _rules({"when": OK_WHEN, "grant": OK_GRANT}),
        "rules[0]",
        "missing required key 'name'",
    ),
    "rule-empty-name": (_rules(rule(" ", OK_WHEN, OK_GRANT)), "rules[0].name", "must not be empty"),
    "rule-without-when": (
        _rules({"name": "r", "grant": OK_GRANT}),
        "rules[0]",
        "missing required key 'when'",
    ),
    "rule-empty-when": (_rules(rule("r", [], OK_GRANT)), "rules[0].when", "must not be empty"),
    "rule-when-object": (
        _rules(rule("r", {"group": "x"}, OK_GRANT)),
        "rules[0].when",
        "expected a list, got an object",
    ),
    "rule-without-grant": (
        _rules({"name": "r", "when": OK_WHEN}),
        "rules[0]",
        "missing required key 'grant'",
    ),
    "rule-bad-match": (
        _rules(rule("r", OK_WHEN, OK_GRANT, match="some")),
        "rules[0].match",
        "expected one of all, any",
    ),
    "rule-connection-type": (
        _rules(rule("r", OK_WHEN, OK_GRANT, connection=True)),
        "rules[0].connection",
        "expected a string, got a boolean",
    ),
    "duplicate-rule-names": (
        _rules(
            rule("a", OK_WHEN, OK_GRANT), rule("b", OK_WHEN, OK_GRANT), rule("A", OK_WHEN, OK_GRANT)
        ),
        "rules[2].name",
        "duplicate rule name 'A' (as rules[0])",
    ),
    "condition-no-kind": (
        _when({}),
        "rules[0].when[0]",
        "give exactly one of attribute, group, group_regex, group_id",
    ),
    "condition-two-kinds": (
        _when({"group": "x", "group_id": "y"}),
        "rules[0].when[0]",
        "give exactly one of attribute, group, group_regex, group_id",
    ),
    "condition-not-object": (_when("x"), "rules[0].when[0]", "expected an object, got a string"),
    "condition-unknown-key": (
        _when({"attribute": "department", "equal": "Finance"}),
        "rules[0].when[0].equal",
        f"unknown key (expected {CONDITION_KEYS})",
    ),
    "attribute-no-op": (
        _when({"attribute": "department"}),
        "rules[0].when[0]",
        "give exactly one of equals, one_of, regex, present",
    ),
    "attribute-two-ops": (
        _when({"attribute": "department", "equals": "a", "regex": "a"}),
        "rules[0].when[0]",
        "give exactly one of equals, one_of, regex, present",
    ),
    "attribute-name-type": (
        _when({"attribute": ["department"], "equals": "a"}),
        "rules[0].when[0].attribute",
        "expected a string, got a list",
    ),
    "op-on-group": (
        _when({"group": "x", "equals": "y"}),
        "rules[0].when[0].equals",
        "equals applies to attribute conditions",
    ),
    "equals-number": (
        _when({"attribute": "a", "equals": 5}),
        "rules[0].when[0].equals",
        "expected a string, got a number",
    ),
    "one-of-string": (
        _when({"attribute": "a", "one_of": "Finance"}),
        "rules[0].when[0].one_of",
        "expected a list, got a string",
    ),
    "one-of-empty": (
        _when({"attribute": "a", "one_of": []}),
        "rules[0].when[0].one_of",
        "must not be empty",
    ),
    "one-of-null-item": (
        _when({"attribute": "a", "one_of": ["x", None]}),
        "rules[0].when[0].one_of[1]",
        "expected a string, got null",
    ),
    "bad-regex": (
        _when({"attribute": "a", "regex": "CN=(Admins"}),
        "rules[0].when[0].regex",
        "invalid regular expression: missing ), unterminated subpattern at position 3",
    ),
    "bad-group-regex": (
        _when({"group_regex": "eng-[a"}),
        "rules[0].when[0].group_regex",
        "invalid regular expression: unterminated character set at position 4",
    ),
    "present-false": (
        _when({"attribute": "a", "present": False}),
        "rules[0].when[0].present",
        "must be true",
    ),
    "present-string": (
        _when({"attribute": "a", "present": "true"}),
        "rules[0].when[0].present",
        "must be true",
    ),
    "group-empty": (_when({"group": ""}), "rules[0].when[0].group", "must not be empty"),
    "group-id-number": (
        _when({"group_id": 17}),
        "rules[0].when[0].group_id",
        "expected a string, got a number",
    ),
    "grant-empty": (
        _grant({}),
        "rules[0].grant",
        "give at least one of roles, roles_from, groups, projects",
    ),
    "grant-list": (_grant(["admin"]), "rules[0].grant", "expected an object, got a list"),
    "grant-unknown-key": (
        _grant({"role": ["admin"]}),
        "rules[0].grant.role",
        "unknown key (expected roles, roles_from, groups, projects)",
    ),
    "unknown-role": (
        _rules(rule("ok", OK_WHEN, OK_GRANT), rule("r", OK_WHEN, {"roles": ["superadmin"]})),
        "rules[1].grant.roles[0]",
        "unknown role 'superadmin'",
    ),
    "roles-string": (
        _grant({"roles": "admin"}),
        "rules[0].grant.roles",
        "expected a list, got a string",
    ),
    "roles-empty": (_grant({"roles": []}), "rules[0].grant.roles", "must not be empty"),
    "roles-from-list": (
        _grant({"roles_from": ["roles"]}),
        "rules[0].grant.roles_from",
        "expected a string, got a list",
    ),
    "unknown-group": (
        _grant({"groups": ["Support", "Marketing"]}),
        "rules[0].grant.groups[1]",
        "unknown group 'Marketing'",
    ),
    "projects-list": (
        _grant({"projects": ["Billing"]}),
        "rules[0].grant.projects",
        "expected an object, got a list",
    ),
    "projects-empty": (_grant({"projects": {}}), "rules[0].grant.projects", "must not be empty"),
    "unknown-project": (
        _grant({"projects": {"Payroll": ["readonly"]}}),
        "rules[0].grant.projects.Payroll",
        "unknown project 'Payroll'",
    ),
    "unknown-project-with-space": (
        _grant({"projects": {"Pay-roll x": ["readonly"]}}),
        "rules[0].grant.projects['Pay-roll x']",
        "unknown project 'Pay-roll x'",
    ),
    "unknown-project-role": (
        _grant({"projects": {"Billing": ["readonly", "editor"]}}),
        "rules[0].grant.projects.Billing[1]",
        "unknown role 'editor'",
    ),
    "project-roles-string": (
        _grant({"projects": {"Billing": "readonly"}}),
        "rules[0].grant.projects.Billing",
        "expected a list, got a string",
    ),
    "fields-list": ({"fields": ["okta"]}, "fields", "expected an object, got a list"),
    "fields-unknown-preset": (
        {"fields": {"okta": {"preset": "octa"}}},
        "fields.okta.preset",
        f"unknown preset 'octa' ({PRESET_NAMES})",
    ),
    "fields-unknown-field": (
        {"fields": {"okta": {"mail": "email"}}},
        "fields.okta.mail",
        "unknown key (expected preset, email, given_name, family_name, display_name, groups)",
    ),
    "fields-field-type": (
        {"fields": {"okta": {"email": 3}}},
        "fields.okta.email",
        "expected a string or a list, got a number",
    ),
    "fields-empty-name": (
        {"fields": {"okta": {"email": ["mail", ""]}}},
        "fields.okta.email[1]",
        "must not be empty",
    ),
    "fields-entry-type": (
        {"fields": {"okta": "okta"}},
        "fields.okta",
        "expected an object, got a string",
    ),
}


@pytest.mark.parametrize("document,path,message", INVALID.values(), ids=INVALID.keys())
def test_invalid_documents_name_the_path(document: Any, path: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping(document, CATALOGUE)
    assert (caught.value.path, caught.value.message) == (path, message)
    assert str(caught.value) == f"{path}: {message}"
    assert isinstance(caught.value, ValueError)


def test_names_that_differ_in_case_only_are_matched_exactly_or_refused() -> None:
    catalogue = Catalogue(
        roles=frozenset({"readonly", "Ops", "ops"}), groups=frozenset(), projects=frozenset()
    )
    exact = parse_mapping(_grant({"roles": ["ops"]}), catalogue)
    assert exact.rules[0].grant.roles == ("ops",)
    with pytest.raises(MappingError, match=r"^rules\[0\]\.grant\.roles\[0\]: ambiguous role 'OPS'"):
        parse_mapping(_grant({"roles": ["OPS"]}), catalogue)
    from_values = parse_mapping(_grant({"roles_from": "roles"}), catalogue)
    who = subject({"roles": ("OPS", "ops")}, (group("x"),))
    assert assign(from_values, who).roles() == ("ops",)


def test_defaults_of_a_minimal_document() -> None:
    found = parse_mapping({}, CATALOGUE)
    assert found == empty_mapping()
    assert found == Mapping("readonly", frozenset(), (), {})
    assert found.fields_for("okta") == DEFAULT_FIELDS


# ---- round trip, helpers ------------------------------------------------------------------


def test_to_document_round_trip() -> None:
    parsed = parse_mapping(DOCUMENT, CATALOGUE)
    document = to_document(parsed)
    assert json.loads(json.dumps(document)) == document
    assert parse_mapping(document, CATALOGUE) == parsed
    assert to_document(parse_mapping(document, CATALOGUE)) == document
    assert document["fields"] == {
        "entra": {"preset": "entra"},
        "okta": {"preset": "okta", "email": ["mail"]},
    }
    assert document["rules"][3] == {
        "name": "app-roles",
        "connection": "entra",
        "when": [{"attribute": "roles", "present": True}],
        "grant": {"roles_from": "roles"},
    }
    assert document["rules"][4]["match"] == "any"
    assert "match" not in document["rules"][0]


@pytest.mark.parametrize("preset", PRESETS)
def test_to_document_names_the_preset(preset: str) -> None:
    parsed = parse_mapping({"fields": {"c": {"preset": preset}}}, CATALOGUE)
    assert to_document(parsed)["fields"] == {"c": {"preset": preset}}
    custom = Mapping("readonly", fields={"c": field_map(preset, groups=[])})
    assert parse_mapping(to_document(custom), CATALOGUE) == custom


def test_empty_mapping() -> None:
    blank = empty_mapping()
    assert assign(blank, EVERYTHING) == Assignment((), "readonly")
    assert assign(empty_mapping("member"), EVERYTHING).default_role == "member"
    assert not blank.references_groups()
    assert accepted_scim_roles(blank, ["member", "readonly"]) == ()
    assert parse_mapping(to_document(blank), CATALOGUE) == blank
    with pytest.raises(MappingError, match=r"^default_role: owner is never a default role$"):
        empty_mapping("owner")


REFERENCES_GROUPS: dict[str, tuple[dict[str, Any], bool]] = {
    "attribute-only": ({"attribute": "groups", "equals": "x"}, False),
    "group": ({"group": "x"}, True),
    "group-regex": ({"group_regex": "x.*"}, True),
    "group-id": ({"group_id": "x"}, True),
}


@pytest.mark.parametrize("condition,expected", REFERENCES_GROUPS.values(), ids=REFERENCES_GROUPS)
def test_references_groups(condition: dict[str, Any], expected: bool) -> None:
    rules = [rule("a", [FINANCE], OK_GRANT), rule("b", [FINANCE, condition], OK_GRANT, match="any")]
    assert mapping(*rules).references_groups() is expected


def test_fields_for_a_connection() -> None:
    parsed = parse_mapping(DOCUMENT, CATALOGUE)
    assert parsed.fields_for("entra") == PRESETS["entra"]
    assert parsed.fields_for("okta") == field_map("okta", email="mail")
    assert parsed.fields_for("okta").email == ("mail",)
    assert parsed.fields_for("google") == DEFAULT_FIELDS


SCIM_ROLES: dict[str, tuple[list[str], list[Any], tuple[str, ...]]] = {
    "canonical-sorted-distinct": (
        ["member", "readonly"],
        ["READONLY", "Member", "member", "admin", "owner", "", 7],
        ("member", "readonly"),
    ),
    "none-accepted": ([], ["member", "readonly"], ()),
    "custom-role": (["chat-operator", "Billing-Viewer"], ["billing-viewer"], ("Billing-Viewer",)),
    "owner-only-when-listed": (["owner"], ["Owner", "admin"], ("owner",)),
}


@pytest.mark.parametrize("accepted,pushed,expected", SCIM_ROLES.values(), ids=SCIM_ROLES)
def test_accepted_scim_roles(
    accepted: list[str], pushed: list[Any], expected: tuple[str, ...]
) -> None:
    parsed = mapping(scim_roles=accepted)
    assert accepted_scim_roles(parsed, pushed) == expected


# ---- subject attributes -------------------------------------------------------------------


def test_attributes_of_the_rfc_enterprise_user() -> None:
    user = json.loads((VECTORS / "8.3-enterprise-user.json").read_text())["resource"]
    found = subject_attributes(user, [])
    assert found["username"] == ("bjensen@example.com",)
    assert found["externalid"] == ("701984",)
    assert found["name.givenname"] == ("Barbara",)
    assert found["usertype"] == ("Employee",)
    assert found["title"] == ("Tour Guide",)
    assert found["active"] == ("true",)
    assert found["emails"] == ("bjensen@example.com", "babs@jensen.org")
    assert found["emails.value"] == found["emails"]
    assert found["emails.type"] == ("work", "home")
    assert found["phonenumbers"] == ("555-555-5555", "555-555-4444")
    assert found["addresses.country"] == ("USA",)
    assert found["department"] == ("Tour Operations",)
    assert found[f"{ENTERPRISE.lower()}:department"] == ("Tour Operations",)
    assert found["employeenumber"] == ("701984",)
    assert found["costcenter"] == ("4130",)
    assert found["organization"] == ("Universal Studios",)
    assert found["division"] == ("Theme Park",)
    assert found["manager"] == ("26118915-6090-4610-87e4-49d8ca9f808d",)
    assert found["manager.value"] == found["manager"]
    assert found[f"{ENTERPRISE.lower()}:manager"] == found["manager"]
    assert found[f"{ENTERPRISE.lower()}:manager.value"] == found["manager"]
    assert all(key == key.lower() for key in found)
    for skipped in ("id", "meta", "meta.version", "schemas", "password", "groups", "groups.value"):
        assert skipped not in found
    assert all(values and all(value for value in values) for values in found.values())


CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"

# id -> (SCIM user, claim sources, expected attributes)
ATTRIBUTES: dict[str, tuple[Any, list[dict[str, Any]], dict[str, tuple[str, ...]]]] = {
    "entra-saml": (
        None,
        [
            {
                f"{CLAIMS}emailaddress": ["jane@corp.example"],
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["a1", "b2"],
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": ["Admin"],
            }
        ],
        {
            f"{CLAIMS}emailaddress": ("jane@corp.example",),
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ("a1", "b2"),
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/role": ("Admin",),
        },
    ),
    "oidc-scalars": (
        None,
        [
            {
                "sub": "00u1",
                "email_verified": True,
                "auth_time": 1700000000,
                "acr": None,
                "name": "  ",
                "roles": ["Admin", "Admin", ""],
            }
        ],
        {
            "sub": ("00u1",),
            "email_verified": ("true",),
            "auth_time": ("1700000000",),
            "roles": ("Admin",),
        },
    ),
    "keycloak-nested": (
        None,
        [
            {
                "realm_access": {"roles": ["offline_access", "chat-operator"]},
                "resource_access": {
                    "idgate": {"roles": ["admin"]},
                    "account": {"roles": ["view-profile"]},
                },
                "groups": ["/Engineering", "/Support"],
            }
        ],
        {
            "realm_access.roles": ("offline_access", "chat-operator"),
            "resource_access.idgate.roles": ("admin",),
            "resource_access.account.roles": ("view-profile",),
            "groups": ("/Engineering", "/Support"),
        },
    ),
    "sources-append": (
        {"userName": "jane", "title": "Engineer", "groups": [{"value": "g1"}]},
        [{"Title": ["SRE", "Engineer"]}, {"TITLE": "Lead", "groups": ["Eng"]}],
        {"username": ("jane",), "title": ("Engineer", "SRE", "Lead"), "groups": ("Eng",)},
    ),
    "custom-extension-full-path-only": (
        {"urn:example:acme:2.0:User": {"badge": "7", "site": {"value": "HQ"}}},
        [],
        {
            "urn:example:acme:2.0:user:badge": ("7",),
            "urn:example:acme:2.0:user:site": ("HQ",),
            "urn:example:acme:2.0:user:site.value": ("HQ",),
        },
    ),
    "nothing": (None, [], {}),
}


@pytest.mark.parametrize("scim_user,claims,expected", ATTRIBUTES.values(), ids=ATTRIBUTES)
def test_subject_attributes(
    scim_user: Any, claims: list[dict[str, Any]], expected: dict[str, tuple[str, ...]]
) -> None:
    found = subject_attributes(scim_user, claims)
    assert found == expected
    assert list(found) == list(expected)


def test_rules_see_scim_and_claims_alike() -> None:
    rules = parse_mapping(
        _rules(
            rule(
                "finance", [{"attribute": "department", "equals": "finance"}], {"roles": ["member"]}
            ),
            rule(
                "keycloak",
                [{"attribute": "resource_access.idgate.roles", "present": True}],
                {"roles_from": "resource_access.idgate.roles"},
            ),
        ),
        CATALOGUE,
    )
    scim = subject_attributes({ENTERPRISE: {"department": "Finance"}}, [])
    claims = subject_attributes(None, [{"resource_access": {"idgate": {"roles": ["admin"]}}}])
    assert assign(rules, Subject(scim, (), frozenset())).roles() == ("member",)
    assert assign(rules, Subject(claims, (), frozenset())).roles() == ("admin",)

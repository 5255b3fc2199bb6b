"""scim.quirks: each client normaliser on its own, then the entry points that chain them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from scim.filter import parse_filter
from scim.patch import PATCH_OP, apply_patch, parse_patch_request
from scim.quirks import (
    app_role_json_values,
    lowercase_patch_ops,
    manager_as_string,
    manager_as_string_in_patch,
    manager_id_as_value,
    manager_path_without_urn,
    member_removal_by_value_list,
    normalise_filter,
    normalise_patch_request,
    normalise_resource,
    role_display_name,
    string_booleans,
    unquoted_filter_value,
)
from scim.resources import parse_resource
from scim.schema import ENTERPRISE_USER_SCHEMA_ID, GROUP, USER, USER_SCHEMA_ID

ENT = ENTERPRISE_USER_SCHEMA_ID
MANAGER = f"{ENT}:manager"
ADMIN_ROLE = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"Admin","displayName":"Admin"}'


def patch_op(*operations: Any) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def ops(body: Any) -> list[Any]:
    return list(body["Operations"])


def unchanged(fix: Callable[[Any], Any], body: Any) -> None:
    """`fix` returns `body` equal to itself and leaves it unmodified."""
    before = copy.deepcopy(body)
    assert fix(body) == before
    assert body == before


# --- lowercase_patch_ops --------------------------------------------------------------------------


def test_ops_are_lower_cased_and_the_rest_kept() -> None:
    body = patch_op(
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "ADD", "path": "nickName", "value": "Babs"},
        {"op": "remove", "path": "title"},
    )
    before = copy.deepcopy(body)
    assert ops(lowercase_patch_ops(body)) == [
        {"op": "replace", "path": "active", "value": "False"},
        {"op": "add", "path": "nickName", "value": "Babs"},
        {"op": "remove", "path": "title"},
    ]
    assert body == before


@pytest.mark.parametrize(
    "body",
    [
        patch_op({"op": 1, "path": "title", "value": "x"}),
        patch_op({"path": "title", "value": "x"}),
        {"schemas": [PATCH_OP], "Operations": "add"},
        {"schemas": [PATCH_OP], "Operations": ["add"]},
        ["not", "an", "object"],
        None,
    ],
)
def test_bodies_without_string_ops_are_left_for_the_core_to_refuse(body: Any) -> None:
    unchanged(lowercase_patch_ops, body)


# --- member_removal_by_value_list -----------------------------------------------------------------


def test_member_removal_by_value_list_becomes_a_value_filter() -> None:
    body = patch_op(
        {
            "op": "Remove",
            "path": "Members",
            "value": [{"$ref": None, "value": "u1"}, {"value": "u2"}],
        }
    )
    assert ops(member_removal_by_value_list(body)) == [
        {"op": "Remove", "path": 'members[value eq "u1" or value eq "u2"]'}
    ]


def test_member_ids_are_written_as_json_strings() -> None:
    body = patch_op({"op": "remove", "path": "members", "value": [{"value": 'a"b\\c'}]})
    (op,) = ops(member_removal_by_value_list(body))
    assert op["path"] == r'members[value eq "a\"b\\c"]'
    # The grammar reads the id back exactly.
    parse_patch_request(patch_op(op))


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "members"},
        {"op": "remove", "path": "members", "value": []},
        {"op": "remove", "path": "members", "value": [{"display": "no id"}]},
        {"op": "remove", "path": "members", "value": [{"value": 7}]},
        {"op": "add", "path": "members", "value": [{"value": "u1"}]},
        {"op": "remove", "path": "emails", "value": [{"value": "a@example.com"}]},
    ],
)
def test_other_member_operations_are_left_alone(operation: dict[str, Any]) -> None:
    unchanged(member_removal_by_value_list, patch_op(operation))


# --- manager_path_without_urn ---------------------------------------------------------------------


def test_bare_manager_path_gets_the_enterprise_urn_and_its_list_unwrapped() -> None:
    reference = {"$ref": "http://.../scim/Users/m1", "value": "m1"}
    body = patch_op({"op": "add", "path": "Manager", "value": [reference]})
    assert ops(manager_path_without_urn(body)) == [
        {"op": "add", "path": MANAGER, "value": reference}
    ]


def test_bare_manager_path_keeps_any_other_value_for_the_core_to_judge() -> None:
    two = [{"value": "m1"}, {"value": "m2"}]
    body = patch_op(
        {"op": "add", "path": "manager", "value": two},
        {"op": "remove", "path": "manager"},
    )
    assert ops(manager_path_without_urn(body)) == [
        {"op": "add", "path": MANAGER, "value": two},
        {"op": "remove", "path": MANAGER},
    ]


def test_qualified_or_other_paths_are_not_touched_by_the_bare_manager_fix() -> None:
    unchanged(
        manager_path_without_urn,
        patch_op(
            {"op": "add", "path": MANAGER, "value": [{"value": "m1"}]},
            {"op": "add", "path": "manager.value", "value": "m1"},
            {"op": "add", "value": {"manager": "m1"}},
        ),
    )


# --- manager_as_string_in_patch -------------------------------------------------------------------


def test_manager_id_string_becomes_the_complex_value() -> None:
    body = patch_op(
        {"op": "add", "path": MANAGER.upper(), "value": "m1"},
        {"op": "replace", "path": MANAGER, "value": {"value": "m2"}},
    )
    assert ops(manager_as_string_in_patch(body)) == [
        {"op": "add", "path": MANAGER.upper(), "value": {"value": "m1"}},
        {"op": "replace", "path": MANAGER, "value": {"value": "m2"}},
    ]


def test_manager_id_string_in_a_path_less_value() -> None:
    body = patch_op(
        {"op": "replace", "value": {MANAGER: "m1", "displayName": "Pat"}},
        {"op": "replace", "value": {ENT: {"Manager": "m2", "department": "Sales"}}},
    )
    assert ops(manager_as_string_in_patch(body)) == [
        {"op": "replace", "value": {MANAGER: {"value": "m1"}, "displayName": "Pat"}},
        {"op": "replace", "value": {ENT: {"Manager": {"value": "m2"}, "department": "Sales"}}},
    ]


def test_other_strings_are_not_read_as_managers() -> None:
    unchanged(
        manager_as_string_in_patch,
        patch_op(
            {"op": "replace", "path": f"{ENT}:department", "value": "m1"},
            {"op": "replace", "path": "manager", "value": "m1"},
            {"op": "replace", "value": {"nickName": "m1", ENT: "not a block"}},
        ),
    )


def test_fixed_manager_patch_applies_in_the_core() -> None:
    user = {"schemas": [USER_SCHEMA_ID], "id": "u1", "userName": "pat@example.com"}
    body = normalise_patch_request(
        patch_op(
            {"op": "Add", "path": MANAGER, "value": "m1"},
            {"op": "Replace", "path": "manager", "value": [{"value": "m2", "$ref": "../m2"}]},
        )
    )
    patched, _ = apply_patch(USER, user, parse_patch_request(body))
    assert patched[ENT] == {"manager": {"value": "m2", "$ref": "../m2"}}


# --- app_role_json_values -------------------------------------------------------------------------


def test_app_role_json_text_becomes_the_role() -> None:
    body = patch_op(
        {
            "op": "add",
            "path": "roles",
            "value": [
                {"value": ADMIN_ROLE},
                {"value": '{"id":"x","value":"25","displayName":"Role1234"}', "primary": True},
            ],
        }
    )
    assert ops(app_role_json_values(body))[0]["value"] == [
        {"value": "Admin", "display": "Admin"},
        {"primary": True, "value": "25", "display": "Role1234"},
    ]


def test_app_role_json_text_under_a_qualified_path_or_in_a_path_less_value() -> None:
    body = patch_op(
        {"op": "replace", "path": f"{USER_SCHEMA_ID}:roles", "value": {"value": ADMIN_ROLE}},
        {"op": "add", "value": {"Roles": [{"value": ADMIN_ROLE}], "title": "Boss"}},
    )
    first, second = ops(app_role_json_values(body))
    assert first["value"] == {"value": "Admin", "display": "Admin"}
    assert second["value"] == {"Roles": [{"value": "Admin", "display": "Admin"}], "title": "Boss"}


def test_a_display_sent_with_the_role_is_kept() -> None:
    body = patch_op(
        {"op": "add", "path": "roles", "value": [{"value": ADMIN_ROLE, "display": "A"}]}
    )
    assert ops(app_role_json_values(body))[0]["value"] == [{"display": "A", "value": "Admin"}]


@pytest.mark.parametrize(
    "role",
    [
        {"value": "Admin"},
        {"value": "{not json"},
        {"value": '{"id": "x"}'},
        {"value": '{"value": 25}'},
        {"value": '["Admin"]'},
        {"value": 5},
        "Admin",
    ],
)
def test_role_values_that_are_not_assignment_json_are_left_as_sent(role: Any) -> None:
    unchanged(app_role_json_values, patch_op({"op": "add", "path": "roles", "value": [role]}))


def test_a_roles_remove_gets_no_value() -> None:
    unchanged(app_role_json_values, patch_op({"op": "remove", "path": "roles"}))


def test_json_text_in_other_attributes_is_left_as_sent() -> None:
    unchanged(
        app_role_json_values,
        patch_op({"op": "add", "path": "entitlements", "value": [{"value": ADMIN_ROLE}]}),
    )


def test_repeated_app_role_add_adds_nothing_in_the_core() -> None:
    user = {"schemas": [USER_SCHEMA_ID], "id": "u1", "userName": "pat@example.com"}
    body = normalise_patch_request(
        patch_op({"op": "Add", "path": "roles", "value": [{"value": ADMIN_ROLE}]})
    )
    once, _ = apply_patch(USER, user, parse_patch_request(body))
    twice, _ = apply_patch(USER, once, parse_patch_request(body))
    assert twice["roles"] == [{"value": "Admin", "display": "Admin"}]


# --- string_booleans ------------------------------------------------------------------------------


def test_boolean_strings_become_booleans_where_the_schema_says_boolean() -> None:
    body = {
        "schemas": [USER_SCHEMA_ID],
        "userName": "pat@example.com",
        "Active": "False",
        "emails": [{"value": "a@example.com", "primary": " TRUE "}],
        "nickName": "true",
    }
    fixed = string_booleans(USER, body)
    assert fixed["Active"] is False
    assert fixed["emails"] == [{"value": "a@example.com", "primary": True}]
    assert fixed["nickName"] == "true"
    assert body["Active"] == "False"


def test_other_strings_for_booleans_are_left_for_validation() -> None:
    fixed = string_booleans(USER, {"active": "maybe", "emails": {"primary": "yes"}})
    assert fixed == {"active": "maybe", "emails": {"primary": "yes"}}


# --- manager_as_string ----------------------------------------------------------------------------


def test_manager_id_string_in_a_resource_becomes_the_complex_value() -> None:
    body = {"schemas": [USER_SCHEMA_ID, ENT], "userName": "p", ENT: {"Manager": "123456"}}
    assert manager_as_string(USER, body)[ENT] == {"Manager": {"value": "123456"}}
    assert body[ENT] == {"Manager": "123456"}
    parsed = parse_resource(USER, normalise_resource(USER, body))
    assert parsed[ENT] == {"manager": {"value": "123456"}}


@pytest.mark.parametrize(
    "body",
    [
        {ENT: {"manager": {"value": "123456"}}},
        {ENT: {"manager": None}},
        {ENT: "not a block"},
        {"manager": "123456"},
        "not an object",
    ],
)
def test_resources_without_a_string_manager_are_left_alone(body: Any) -> None:
    unchanged(lambda b: manager_as_string(USER, b), body)


def test_groups_have_no_manager() -> None:
    unchanged(lambda b: manager_as_string(GROUP, b), {ENT: {"manager": "123456"}})


# --- manager_id_as_value --------------------------------------------------------------------------


def test_manager_id_is_renamed_value() -> None:
    body = {ENT: {"manager": {"managerId": "m1", "displayName": "Big Boss"}}}
    assert manager_id_as_value(USER, body) == {
        ENT: {"manager": {"value": "m1", "displayName": "Big Boss"}}
    }


def test_manager_id_does_not_override_a_value() -> None:
    unchanged(
        lambda b: manager_id_as_value(USER, b),
        {ENT: {"manager": {"managerId": "m1", "VALUE": "m2"}}},
    )


# --- role_display_name ----------------------------------------------------------------------------


def test_role_display_name_becomes_display() -> None:
    body = {
        "roles": [
            {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "displayName": "Admin"},
            {"value": "User", "display": "U", "displayName": "User"},
            "not an object",
        ]
    }
    assert role_display_name(USER, body)["roles"] == [
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin"},
        {"value": "User", "display": "U", "displayName": "User"},
        "not an object",
    ]


def test_display_name_outside_roles_is_not_renamed() -> None:
    body = {"displayName": "Pat", "emails": [{"displayName": "x"}], "roles": "Admin"}
    unchanged(lambda b: role_display_name(USER, b), body)
    unchanged(lambda b: role_display_name(GROUP, b), {"roles": [{"displayName": "x"}]})


# --- unquoted_filter_value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        ("externalId eq jyoung", 'externalId eq "jyoung"'),
        ("userName EQ jane@x.example", 'userName eq "jane@x.example"'),
        ("  userName   eq\tjane ", 'userName eq "jane"'),
        (f"{USER_SCHEMA_ID}:userName eq bjensen", f'{USER_SCHEMA_ID}:userName eq "bjensen"'),
        ("name.givenName eq Zoë", 'name.givenName eq "Zo\\u00eb"'),
    ],
)
def test_one_bare_word_compared_with_eq_is_quoted(text: str, fixed: str) -> None:
    assert unquoted_filter_value(text) == fixed
    assert normalise_filter(text) == fixed
    node = parse_filter(fixed)
    assert node == parse_filter(f'{text.split()[0]} eq "{text.split()[2]}"')


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "jane"',  # already valid
        "active eq true",  # a literal, valid as it is
        "userName eq jane or userName eq john",  # more than one comparison
        "userName co jane",  # only eq is rewritten
        "userName eq jane doe",  # the value could be several words
        'userName eq jane"',  # quotes inside
        "userName eq (jane)",
        "userName eq ja]ne",
        'emails[type eq "work"].value eq jane',  # not a plain attribute path
        "emails[type eq work]",
        "12 eq jane",
        "userName eq",
        "",
    ],
)
def test_anything_else_is_returned_as_it_is(text: str) -> None:
    assert unquoted_filter_value(text) == text


# --- entry points ---------------------------------------------------------------------------------


def test_patch_entry_point_chains_every_patch_normaliser() -> None:
    body = patch_op(
        {"op": "Remove", "path": "members", "value": [{"value": "u1"}]},
        {"op": "Add", "path": "manager", "value": [{"value": "m1"}]},
        {"op": "Replace", "path": MANAGER, "value": "m2"},
        {"op": "Add", "path": "roles", "value": [{"value": ADMIN_ROLE}]},
    )
    assert ops(normalise_patch_request(body)) == [
        {"op": "remove", "path": 'members[value eq "u1"]'},
        {"op": "add", "path": MANAGER, "value": {"value": "m1"}},
        {"op": "replace", "path": MANAGER, "value": {"value": "m2"}},
        {"op": "add", "path": "roles", "value": [{"value": "Admin", "display": "Admin"}]},
    ]


def test_resource_entry_point_chains_every_resource_normaliser() -> None:
    body = {
        "schemas": [USER_SCHEMA_ID, ENT],
        "userName": "pat@example.com",
        "active": "True",
        "roles": [{"value": "Admin", "displayName": "Admin"}],
        ENT: {"manager": "m1"},
    }
    assert parse_resource(USER, normalise_resource(USER, body)) == {
        "schemas": [USER_SCHEMA_ID, ENT],
        "userName": "pat@example.com",
        "active": True,
        "roles": [{"value": "Admin", "display": "Admin"}],
        ENT: {"manager": {"value": "m1"}},
    }
    onelogin = {"schemas": [USER_SCHEMA_ID], "userName": "p", ENT: {"manager": {"managerId": "m"}}}
    assert parse_resource(USER, normalise_resource(USER, onelogin))[ENT] == {
        "manager": {"value": "m"}
    }


def test_normalised_patch_bodies_stay_json() -> None:
    body = patch_op({"op": "Remove", "path": "members", "value": [{"value": "u1"}]})
    assert json.loads(json.dumps(normalise_patch_request(body))) == normalise_patch_request(body)

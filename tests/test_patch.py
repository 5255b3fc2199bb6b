"""scim.patch: the RFC 7644 §3.5.2 PatchOp request and the application of its operations."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scim.errors import (
    InvalidFilterError,
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
    ScimError,
)
from scim.filter import parse_path
from scim.patch import (
    PATCH_OP,
    MemberChanges,
    Operation,
    apply_patch,
    changes_members_only,
    parse_patch_request,
)
from scim.resources import parse_resource
from scim.schema import (
    ENTERPRISE_USER_SCHEMA_ID,
    GROUP,
    GROUP_SCHEMA_ID,
    USER,
    USER_SCHEMA_ID,
    Attribute,
    Mutability,
    ResourceType,
    Schema,
    Type,
)

VECTORS = Path(__file__).parent / "vectors"
ENT = ENTERPRISE_USER_SCHEMA_ID
RESOURCE_TYPES = {"User": USER, "Group": GROUP}

FULL_USER: dict[str, Any] = json.loads(
    (VECTORS / "rfc7643" / "8.2-full-user.json").read_text(encoding="utf-8")
)["resource"]
MINIMAL_USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA_ID],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "userName": "bjensen@example.com",
    "meta": {"resourceType": "User", "version": 'W/"1"'},
}
TOUR_GUIDES: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA_ID],
    "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
    "displayName": "Tour Guides",
}

# A resource type with the characteristics User and Group lack: immutable attributes and
# sub-attributes, and a required extension.
WIDGET_SCHEMA = Schema(
    id="urn:example:params:scim:schemas:core:2.0:Widget",
    name="Widget",
    description="Test widget",
    attributes=(
        Attribute("label", mutability=Mutability.IMMUTABLE),
        Attribute("tags", multi_valued=True),
        Attribute(
            "spec",
            type=Type.COMPLEX,
            sub_attributes=(
                Attribute("vendor", mutability=Mutability.IMMUTABLE),
                Attribute("model"),
            ),
        ),
        Attribute(
            "parts",
            type=Type.COMPLEX,
            multi_valued=True,
            sub_attributes=(
                Attribute("serial", mutability=Mutability.IMMUTABLE),
                Attribute("name"),
                Attribute("primary", type=Type.BOOLEAN),
            ),
        ),
    ),
)
AUDIT_SCHEMA = Schema(
    id="urn:example:params:scim:schemas:extension:audit:2.0:Widget",
    name="Audit",
    description="Test extension",
    attributes=(Attribute("owner"),),
)
WIDGET = ResourceType(
    name="Widget",
    endpoint="/Widgets",
    description="Test widget",
    schema=WIDGET_SCHEMA,
    extensions=((AUDIT_SCHEMA, True),),
)
WIDGET_RESOURCE: dict[str, Any] = {
    "schemas": [WIDGET_SCHEMA.id, AUDIT_SCHEMA.id],
    "id": "w1",
    "label": "Alpha",
    "spec": {"vendor": "Acme", "model": "X"},
    "parts": [{"serial": "1", "name": "gear", "primary": True}, {"serial": "2", "name": "cog"}],
    AUDIT_SCHEMA.id: {"owner": "ops"},
}


def _request(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def _patch(
    resource_type: ResourceType,
    resource: dict[str, Any],
    *operations: dict[str, Any],
    split_members: bool = False,
) -> tuple[dict[str, Any], MemberChanges]:
    """Apply operations given as JSON; also check that `resource` is left as it was."""
    original = copy.deepcopy(resource)
    try:
        return apply_patch(
            resource_type,
            resource,
            parse_patch_request(_request(*operations)),
            split_members=split_members,
        )
    finally:
        assert resource == original


def _user(resource: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    return _patch(USER, resource, *operations)[0]


def _members(*operations: dict[str, Any]) -> dict[str, Any]:
    result, changes = _patch(GROUP, TOUR_GUIDES, *operations, split_members=True)
    assert result == TOUR_GUIDES
    return _changes_json(changes)


def _changes_json(changes: MemberChanges) -> dict[str, Any]:
    return {
        "add": changes.add,
        "remove": sorted(changes.remove),
        "remove_all": changes.remove_all,
        "replace": changes.replace,
    }


def _with(resource: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    out.update(attributes)
    return out


# --- RFC 7644 §3.5.2 examples --------------------------------------------------------------------


def _vectors() -> list[Any]:
    files = sorted((VECTORS / "rfc7644" / "patch").glob("*.json"))
    return [pytest.param(json.loads(f.read_text(encoding="utf-8")), id=f.stem) for f in files]


def test_every_rfc_example_has_a_vector() -> None:
    assert len(_vectors()) == 13


@pytest.mark.parametrize("vector", _vectors())
def test_rfc_vector(vector: dict[str, Any]) -> None:
    resource_type = RESOURCE_TYPES[vector["resource_type"]]
    before = vector["before"]
    original = copy.deepcopy(before)
    operations = parse_patch_request(vector["request"])
    if vector.get("split_members"):
        result, changes = apply_patch(resource_type, before, operations, split_members=True)
        assert result == before
        assert _changes_json(changes) == vector["after"]
        expected = vector["after_resource"]
    else:
        expected = vector["after"]
    result, changes = apply_patch(resource_type, before, operations)
    assert result == expected
    assert not changes.changed
    assert before == original
    # The result is in a shape the full validation accepts.
    parse_resource(resource_type, result, existing=before)


# --- The request ---------------------------------------------------------------------------------


def test_request_gives_each_operation_in_order() -> None:
    operations = parse_patch_request(
        _request(
            {"op": "add", "path": "emails", "value": [{"value": "a@example.com"}]},
            {"op": "remove", "path": 'emails[type eq "work"]'},
            {"op": "replace", "value": {"nickName": "Babs"}},
        )
    )
    assert operations == [
        Operation("add", parse_path("emails"), [{"value": "a@example.com"}]),
        Operation("remove", parse_path('emails[type eq "work"]'), None),
        Operation("replace", None, {"nickName": "Babs"}),
    ]


def test_empty_operations_change_nothing() -> None:
    assert parse_patch_request(_request()) == []
    result, changes = apply_patch(USER, FULL_USER, [])
    assert result == FULL_USER
    assert result is not FULL_USER
    assert not changes.changed


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], InvalidSyntaxError),
        ("PatchOp", InvalidSyntaxError),
        ({"Operations": []}, InvalidValueError),
        ({"schemas": [USER_SCHEMA_ID], "Operations": []}, InvalidValueError),
        ({"schemas": PATCH_OP, "Operations": []}, InvalidValueError),
        ({"schemas": [PATCH_OP]}, InvalidSyntaxError),
        ({"schemas": [PATCH_OP], "Operations": {"op": "add"}}, InvalidSyntaxError),
        ({"schemas": [PATCH_OP], "Operations": ["add"]}, InvalidSyntaxError),
        (
            {"schemas": [PATCH_OP], "schemas2": 1, "Schemas": [], "Operations": []},
            InvalidSyntaxError,
        ),
    ],
)
def test_malformed_request_is_refused(body: Any, error: type[ScimError]) -> None:
    with pytest.raises(error):
        parse_patch_request(body)


@pytest.mark.parametrize("op", ["Replace", "ADD", "move", "", None, 1])
def test_op_must_be_add_remove_or_replace_in_lower_case(op: Any) -> None:
    operations = [{"op": "add", "path": "nickName", "value": "x"}, {"op": op, "value": {}}]
    with pytest.raises(InvalidSyntaxError, match=r"Operations\[1\]\.op"):
        parse_patch_request(_request(*operations))


@pytest.mark.parametrize("path", ['emails[type eq "work"', "name..givenName", "", "emails]"])
def test_malformed_path_is_invalid_path_naming_the_operation(path: str) -> None:
    with pytest.raises(InvalidPathError, match=r"Operations\[0\]\.path .*column"):
        parse_patch_request(_request({"op": "remove", "path": path}))


def test_path_must_be_a_string() -> None:
    with pytest.raises(InvalidPathError, match="string"):
        parse_patch_request(_request({"op": "remove", "path": ["emails"]}))


def test_remove_without_path_is_no_target() -> None:
    with pytest.raises(NoTargetError, match=r"Operations\[0\]"):
        parse_patch_request(_request({"op": "remove"}))
    with pytest.raises(NoTargetError):
        parse_patch_request(_request({"op": "remove", "path": None}))
    with pytest.raises(NoTargetError, match=r"Operations\[0\]"):
        apply_patch(USER, FULL_USER, [Operation("remove", None, None)])


@pytest.mark.parametrize("op", ["add", "replace"])
def test_add_and_replace_need_a_value_member(op: str) -> None:
    with pytest.raises(InvalidValueError, match=f"{op} needs a value"):
        parse_patch_request(_request({"op": op, "path": "nickName"}))
    # "value": null is a value: the attribute becomes unassigned (RFC 7643 §2.5).
    assert parse_patch_request(_request({"op": op, "path": "nickName", "value": None})) == [
        Operation(op, parse_path("nickName"), None)
    ]


def test_request_member_names_are_case_insensitive() -> None:
    body = {
        "SCHEMAS": [PATCH_OP.upper()],
        "operations": [{"OP": "replace", "Path": "nickName", "VALUE": "Babs"}],
    }
    assert parse_patch_request(body) == [Operation("replace", parse_path("nickName"), "Babs")]
    twice = _request({"op": "add", "Op": "remove", "path": "nickName", "value": "x"})
    with pytest.raises(InvalidSyntaxError, match="case-insensitive"):
        parse_patch_request(twice)


def test_unknown_op_given_directly_is_refused() -> None:
    with pytest.raises(InvalidSyntaxError, match="copy"):
        apply_patch(USER, FULL_USER, [Operation("copy", parse_path("nickName"), "x")])


# --- Order, atomicity, copies --------------------------------------------------------------------


def test_failing_operation_leaves_the_original_untouched() -> None:
    original = copy.deepcopy(FULL_USER)
    operations = parse_patch_request(
        _request(
            {"op": "replace", "path": "nickName", "value": "Changed"},
            {"op": "add", "path": "emails", "value": [{"value": "new@example.com"}]},
            {"op": "replace", "path": "id", "value": "other"},
        )
    )
    with pytest.raises(MutabilityError, match=r"^Operations\[2\]: id is readOnly"):
        apply_patch(USER, FULL_USER, operations)
    assert original == FULL_USER


def test_result_shares_nothing_with_the_input_or_the_operations() -> None:
    operations = parse_patch_request(
        _request({"op": "add", "path": "emails", "value": [{"value": "new@example.com"}]})
    )
    result, _ = apply_patch(USER, FULL_USER, operations)
    result["emails"][-1]["value"] = "mutated"
    result["name"]["givenName"] = "mutated"
    assert operations[0].value == [{"value": "new@example.com"}]
    assert FULL_USER["name"]["givenName"] == "Barbara"


def test_operations_apply_in_order() -> None:
    set_remove_add = _user(
        MINIMAL_USER,
        {"op": "replace", "path": "nickName", "value": "A"},
        {"op": "remove", "path": "nickName"},
        {"op": "add", "path": "nickName", "value": "B"},
    )
    assert set_remove_add["nickName"] == "B"
    add_then_remove = _user(
        MINIMAL_USER,
        {"op": "add", "path": "nickName", "value": "B"},
        {"op": "remove", "path": "nickName"},
    )
    assert "nickName" not in add_then_remove


def test_later_operation_sees_earlier_ones() -> None:
    result = _user(
        MINIMAL_USER,
        {"op": "add", "path": "emails", "value": [{"value": "a@example.com", "type": "work"}]},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "b@example.com"},
    )
    assert result["emails"] == [{"value": "b@example.com", "type": "work"}]


# --- Names and paths -----------------------------------------------------------------------------


def test_names_resolve_case_insensitively_to_canonical_spelling() -> None:
    result = _user(
        MINIMAL_USER,
        {"op": "add", "path": "NAME.GIVENNAME", "value": "Babs"},
        {"op": "add", "path": "NickName", "value": "B"},
        {"op": "add", "value": {"DISPLAYNAME": "Babs J", "Name": {"FamilyName": "Jensen"}}},
    )
    assert result["name"] == {"givenName": "Babs", "familyName": "Jensen"}
    assert result["nickName"] == "B"
    assert result["displayName"] == "Babs J"


def test_urn_qualified_core_path() -> None:
    result = _user(
        MINIMAL_USER, {"op": "add", "path": f"{USER_SCHEMA_ID}:displayName", "value": "Babs"}
    )
    assert result["displayName"] == "Babs"


def test_urn_qualified_extension_path_creates_block_and_lists_schema() -> None:
    result = _user(MINIMAL_USER, {"op": "add", "path": f"{ENT}:manager.value", "value": "m-1"})
    assert result[ENT] == {"manager": {"value": "m-1"}}
    assert result["schemas"] == [USER_SCHEMA_ID, ENT]
    parse_resource(USER, result, existing=MINIMAL_USER)


def test_removing_last_extension_attribute_drops_block_and_schema() -> None:
    before = _with(MINIMAL_USER, schemas=[USER_SCHEMA_ID, ENT], **{ENT: {"department": "Tours"}})
    result = _user(before, {"op": "remove", "path": f"{ENT}:department"})
    assert ENT not in result
    assert result["schemas"] == [USER_SCHEMA_ID]


ENTERPRISE_USER = _with(
    MINIMAL_USER,
    schemas=[USER_SCHEMA_ID, ENT],
    **{ENT: {"employeeNumber": "701984", "department": "Tours", "manager": {"value": "m-1"}}},
)


def test_bare_extension_urn_add_merges_into_the_block() -> None:
    result = _user(
        ENTERPRISE_USER,
        {"op": "add", "path": ENT, "value": {"department": "Sales", "costCenter": "4130"}},
    )
    assert result[ENT] == {
        "employeeNumber": "701984",
        "department": "Sales",
        "manager": {"value": "m-1"},
        "costCenter": "4130",
    }


def test_bare_extension_urn_replace_replaces_the_named_attributes_only() -> None:
    result = _user(
        ENTERPRISE_USER,
        {"op": "replace", "path": ENT, "value": {"department": "Sales", "manager": None}},
    )
    assert result[ENT] == {"employeeNumber": "701984", "department": "Sales"}


def test_bare_extension_urn_remove_deletes_block_and_schema() -> None:
    result = _user(ENTERPRISE_USER, {"op": "remove", "path": ENT.upper()})
    assert ENT not in result
    assert result["schemas"] == [USER_SCHEMA_ID]


def test_bare_extension_urn_add_to_user_without_block() -> None:
    result = _user(MINIMAL_USER, {"op": "add", "path": ENT, "value": {"division": "Theme Park"}})
    assert result[ENT] == {"division": "Theme Park"}
    assert result["schemas"] == [USER_SCHEMA_ID, ENT]


def test_core_schema_urn_as_path_is_the_resource_itself() -> None:
    result = _user(MINIMAL_USER, {"op": "replace", "path": USER_SCHEMA_ID, "value": {"title": "T"}})
    assert result["title"] == "T"
    with pytest.raises(MutabilityError, match="required"):
        _user(MINIMAL_USER, {"op": "remove", "path": USER_SCHEMA_ID})


def test_path_less_value_with_urn_qualified_keys_and_extension_objects() -> None:
    result = _user(
        MINIMAL_USER,
        {
            "op": "add",
            "value": {
                f"{ENT}:department": "Tours",
                ENT: {"costCenter": "4130", f"{ENT}:division": "Parks"},
                f"{USER_SCHEMA_ID}:title": "Guide",
                "name.givenName": "Barbara",
            },
        },
    )
    assert result[ENT] == {"department": "Tours", "costCenter": "4130", "division": "Parks"}
    assert result["title"] == "Guide"
    assert result["name"] == {"givenName": "Barbara"}
    assert result["schemas"] == [USER_SCHEMA_ID, ENT]


def test_path_less_value_ignores_read_only_schemas_and_unknown_keys() -> None:
    # Okta and JumpCloud send "id" inside a path-less replace value.
    result = _user(
        FULL_USER,
        {
            "op": "replace",
            "value": {
                "id": "another-id",
                "schemas": ["urn:example:other"],
                "meta": {"version": 'W/"9"'},
                "groups": [],
                "noSuchAttribute": 1,
                "name.noSuchSub": "x",
                "not an attribute!": 2,
                "urn:example:unknown:2.0:Thing": {"a": 1},
                f"{ENT}:manager.displayName": "Boss",
                "displayName": "Babs",
            },
        },
    )
    assert result == _with(FULL_USER, displayName="Babs")


@pytest.mark.parametrize(
    "path",
    [
        "nickname2",
        "name.nope",
        "members",
        "emails.nope",
        'emails[type eq "work"].nope',
        "urn:example:ext:1.0:User:department",
        f"{ENT}:userName",
        "urn:example:ext:1.0:User",
    ],
)
def test_path_naming_no_attribute_is_invalid_path(path: str) -> None:
    with pytest.raises(InvalidPathError, match="names no attribute"):
        _user(FULL_USER, {"op": "replace", "path": path, "value": "x"})


@pytest.mark.parametrize("path", ['name[givenName eq "Barbara"]', 'nickName[value eq "Babs"]'])
def test_value_filter_on_attribute_that_is_not_multi_valued_complex(path: str) -> None:
    with pytest.raises(InvalidPathError, match="multi-valued complex"):
        _user(FULL_USER, {"op": "remove", "path": path})


@pytest.mark.parametrize(
    "path",
    ['emails[nope eq "x"]', 'emails[primary eq "yes"]', "emails[value gt true]"],
)
def test_filter_that_cannot_apply_fails_even_on_a_resource_without_values(path: str) -> None:
    with pytest.raises(InvalidFilterError):
        _user(MINIMAL_USER, {"op": "remove", "path": path})


# --- add -----------------------------------------------------------------------------------------


def test_add_single_valued_replaces_the_value() -> None:
    assert _user(FULL_USER, {"op": "add", "path": "title", "value": "Chief"})["title"] == "Chief"


def test_add_complex_merges_sub_attributes() -> None:
    result = _user(FULL_USER, {"op": "add", "path": "name", "value": {"givenName": "Babs"}})
    assert result["name"] == {**FULL_USER["name"], "givenName": "Babs"}


def test_add_multi_valued_appends_and_accepts_a_lone_value() -> None:
    result = _user(
        FULL_USER, {"op": "add", "path": "ims", "value": {"value": "babs", "type": "xmpp"}}
    )
    assert result["ims"] == [*FULL_USER["ims"], {"value": "babs", "type": "xmpp"}]


def test_add_does_not_repeat_a_value_already_present() -> None:
    # RFC 7644 §3.5.2.1: "If the target location already contains the value specified, no
    # changes SHOULD be made to the resource".
    result = _user(
        FULL_USER,
        {"op": "add", "path": "emails", "value": [{"Type": "home", "value": "babs@jensen.org"}]},
    )
    assert result == FULL_USER


def test_add_existing_member_to_ordinary_members_list_is_no_change() -> None:
    before = _with(
        TOUR_GUIDES, members=[{"value": "u-1", "$ref": "https://x/Users/u-1", "display": "Babs"}]
    )
    result, _ = _patch(
        GROUP,
        before,
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "u-1", "$ref": "https://x/Users/u-1"}],
        },
    )
    assert result == before


def test_add_null_to_multi_valued_adds_nothing() -> None:
    assert _user(FULL_USER, {"op": "add", "path": "emails", "value": None}) == FULL_USER


def test_add_with_matching_filter_merges_into_each_match() -> None:
    result = _user(
        FULL_USER,
        {"op": "add", "path": 'addresses[type eq "home"]', "value": {"region": "NV"}},
    )
    assert result["addresses"][1] == {**FULL_USER["addresses"][1], "region": "NV"}
    assert result["addresses"][0] == FULL_USER["addresses"][0]


def test_add_with_equality_filter_matching_nothing_creates_the_value() -> None:
    # Entra ID adds a new work phone, then its other sub-attributes, this way.
    result = _user(
        FULL_USER,
        {"op": "add", "path": 'phoneNumbers[type eq "fax"].value', "value": "555-555-3333"},
        {"op": "add", "path": 'phoneNumbers[type eq "fax"].display', "value": "Fax"},
    )
    assert result["phoneNumbers"] == [
        *FULL_USER["phoneNumbers"],
        {"type": "fax", "value": "555-555-3333", "display": "Fax"},
    ]
    parse_resource(USER, result, existing=FULL_USER)


def test_add_with_and_of_equalities_creates_value_with_object() -> None:
    result = _user(
        MINIMAL_USER,
        {
            "op": "add",
            "path": 'addresses[type eq "work" and country eq "US"]',
            "value": {"locality": "Hollywood"},
        },
    )
    assert result["addresses"] == [{"type": "work", "country": "US", "locality": "Hollywood"}]


@pytest.mark.parametrize(
    "path",
    [
        'emails[value co "example.org"].type',
        'emails[type eq "work" or type eq "home"].value',
        'emails[type eq "work" and type eq "home"].value',
        'emails[not (type eq "work")].value',
    ],
)
def test_add_with_filter_matching_nothing_and_no_equalities_is_no_target(path: str) -> None:
    with pytest.raises(NoTargetError, match="matches no value"):
        _user(MINIMAL_USER, {"op": "add", "path": path, "value": "x"})


# --- replace -------------------------------------------------------------------------------------


def test_replace_complex_keeps_sub_attributes_not_given() -> None:
    # RFC 7644 §3.5.2.3: "Sub-attributes that are not specified in the "value" parameter are
    # left unchanged."
    result = _user(
        FULL_USER,
        {"op": "replace", "path": "name", "value": {"givenName": "Babs", "middleName": None}},
    )
    expected = {**FULL_USER["name"], "givenName": "Babs"}
    del expected["middleName"]
    assert result["name"] == expected


def test_replace_of_absent_attribute_acts_as_add() -> None:
    result = _user(
        MINIMAL_USER,
        {"op": "replace", "path": "name.familyName", "value": "Jensen"},
        {"op": "replace", "path": "phoneNumbers", "value": [{"value": "555"}]},
    )
    assert result["name"] == {"familyName": "Jensen"}
    assert result["phoneNumbers"] == [{"value": "555"}]


def test_replace_multi_valued_without_filter_replaces_every_value() -> None:
    result = _user(
        FULL_USER, {"op": "replace", "path": "photos", "value": [{"value": "https://p"}]}
    )
    assert result["photos"] == [{"value": "https://p"}]


def test_replace_with_filter_matching_nothing_is_no_target() -> None:
    with pytest.raises(NoTargetError, match=r"Operations\[0\]: emails\[type eq \"other\"\]"):
        _user(FULL_USER, {"op": "replace", "path": 'emails[type eq "other"]', "value": {}})
    with pytest.raises(NoTargetError):
        _user(MINIMAL_USER, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "x"})


def test_replace_with_filter_replaces_every_match() -> None:
    before = _with(
        MINIMAL_USER,
        emails=[
            {"value": "a@x", "type": "work"},
            {"value": "b@x", "type": "home"},
            {"value": "c@x", "type": "work"},
        ],
    )
    result = _user(
        before, {"op": "replace", "path": 'emails[type eq "work"].type', "value": "other"}
    )
    assert [e["type"] for e in result["emails"]] == ["other", "home", "other"]


def test_replace_null_unassigns() -> None:
    result = _user(
        FULL_USER,
        {"op": "replace", "path": "nickName", "value": None},
        {"op": "replace", "value": {"title": None, "name": {"honorificSuffix": None}}},
    )
    assert "nickName" not in result
    assert "title" not in result
    assert "honorificSuffix" not in result["name"]


def test_sub_attribute_of_multi_valued_without_filter_targets_every_value() -> None:
    result = _user(FULL_USER, {"op": "replace", "path": "phoneNumbers.type", "value": "other"})
    assert [p["type"] for p in result["phoneNumbers"]] == ["other", "other"]
    removed = _user(FULL_USER, {"op": "remove", "path": "emails.type"})
    assert removed["emails"] == [
        {"value": "bjensen@example.com", "primary": True},
        {"value": "babs@jensen.org"},
    ]
    with pytest.raises(NoTargetError, match="no value"):
        _user(MINIMAL_USER, {"op": "add", "path": "emails.type", "value": "work"})


# --- remove --------------------------------------------------------------------------------------


def test_remove_single_valued_and_multi_valued() -> None:
    result = _user(
        FULL_USER,
        {"op": "remove", "path": "nickName"},
        {"op": "remove", "path": "emails"},
        {"op": "remove", "path": "name.middleName"},
    )
    assert "nickName" not in result and "emails" not in result
    assert "middleName" not in result["name"]
    assert result["name"]["givenName"] == "Barbara"


def test_removing_last_sub_attribute_unassigns_the_parent() -> None:
    before = _with(MINIMAL_USER, name={"givenName": "Babs"})
    assert "name" not in _user(before, {"op": "remove", "path": "name.givenName"})


def test_remove_of_nothing_changes_nothing() -> None:
    assert _user(MINIMAL_USER, {"op": "remove", "path": "nickName"}) == MINIMAL_USER
    assert _user(MINIMAL_USER, {"op": "remove", "path": f"{ENT}:department"}) == MINIMAL_USER
    assert _user(FULL_USER, {"op": "remove", "path": 'emails[type eq "other"]'}) == FULL_USER


def test_remove_sub_attribute_of_matching_values() -> None:
    result = _user(FULL_USER, {"op": "remove", "path": 'addresses[type eq "work"].formatted'})
    assert "formatted" not in result["addresses"][0]
    assert result["addresses"][1] == FULL_USER["addresses"][1]


def test_removing_every_value_by_filter_unassigns_the_attribute() -> None:
    result = _user(FULL_USER, {"op": "remove", "path": 'ims[type eq "aim"]'})
    assert "ims" not in result


def test_remove_with_a_value_list_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="remove takes no value"):
        _user(
            FULL_USER, {"op": "remove", "path": "emails", "value": [{"value": "babs@jensen.org"}]}
        )
    # With a filter the value adds nothing and is ignored.
    result = _user(
        FULL_USER, {"op": "remove", "path": 'emails[type eq "home"]', "value": [{"value": "x"}]}
    )
    assert result["emails"] == [FULL_USER["emails"][0]]


@pytest.mark.parametrize(
    ("resource_type", "resource", "operation"),
    [
        (USER, FULL_USER, {"op": "remove", "path": "userName"}),
        (USER, FULL_USER, {"op": "replace", "path": "userName", "value": None}),
        (USER, FULL_USER, {"op": "replace", "value": {"userName": None}}),
        (GROUP, TOUR_GUIDES, {"op": "remove", "path": "displayName"}),
        (WIDGET, WIDGET_RESOURCE, {"op": "remove", "path": AUDIT_SCHEMA.id}),
        (WIDGET, WIDGET_RESOURCE, {"op": "replace", "value": {AUDIT_SCHEMA.id: None}}),
    ],
)
def test_unassigning_required_attribute_or_extension_is_mutability(
    resource_type: ResourceType, resource: dict[str, Any], operation: dict[str, Any]
) -> None:
    # RFC 7644 §3.5.2.2: "If an attribute is removed or becomes unassigned and is defined as a
    # required attribute ... "mutability"."
    with pytest.raises(MutabilityError, match="required"):
        _patch(resource_type, resource, operation)


# --- primary -------------------------------------------------------------------------------------


def test_new_primary_value_demotes_the_others() -> None:
    result = _user(
        FULL_USER,
        {"op": "add", "path": "emails", "value": [{"value": "new@x", "primary": True}]},
    )
    assert [e.get("primary") for e in result["emails"]] == [False, None, True]


def test_setting_primary_through_a_filter_wins() -> None:
    result = _user(
        FULL_USER, {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}
    )
    assert [e.get("primary") for e in result["emails"]] == [False, True]


def test_primary_settles_after_each_operation() -> None:
    result = _user(
        FULL_USER,
        {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True},
        {"op": "replace", "path": 'emails[type eq "work"].primary', "value": True},
    )
    assert [e.get("primary") for e in result["emails"]] == [True, False]


def test_several_primaries_in_one_list_keep_the_first() -> None:
    result = _user(
        MINIMAL_USER,
        {
            "op": "replace",
            "path": "emails",
            "value": [
                {"value": "a@x", "primary": False},
                {"value": "b@x", "primary": True},
                {"value": "c@x", "primary": True},
            ],
        },
    )
    assert [e["primary"] for e in result["emails"]] == [False, True, False]


def test_primary_of_an_added_value_already_present_wins() -> None:
    before = _with(
        MINIMAL_USER,
        emails=[{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}],
    )
    result = _user(
        before, {"op": "add", "path": "emails", "value": [{"value": "b@x", "primary": True}]}
    )
    assert result["emails"] == [
        {"value": "a@x", "primary": False},
        {"value": "b@x", "primary": True},
    ]


# --- mutability ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "resource", "operation"),
    [
        (USER, FULL_USER, {"op": "replace", "path": "id", "value": "x"}),
        (USER, FULL_USER, {"op": "remove", "path": "meta"}),
        (USER, FULL_USER, {"op": "replace", "path": "meta.lastModified", "value": "x"}),
        (USER, FULL_USER, {"op": "add", "path": "groups", "value": [{"value": "g"}]}),
        (USER, FULL_USER, {"op": "remove", "path": 'groups[display eq "Employees"]'}),
        (USER, FULL_USER, {"op": "add", "path": f"{ENT}:manager.displayName", "value": "B"}),
        (GROUP, TOUR_GUIDES, {"op": "remove", "path": 'members[value eq "u"].display'}),
    ],
)
def test_path_to_read_only_attribute_is_mutability(
    resource_type: ResourceType, resource: dict[str, Any], operation: dict[str, Any]
) -> None:
    with pytest.raises(MutabilityError, match="readOnly"):
        _patch(resource_type, resource, operation)


def test_read_only_sub_attributes_inside_values_are_dropped() -> None:
    result = _user(
        MINIMAL_USER,
        {"op": "add", "path": f"{ENT}:manager", "value": {"value": "m-1", "displayName": "B"}},
    )
    assert result[ENT] == {"manager": {"value": "m-1"}}


def test_immutable_attribute_may_be_set_once() -> None:
    unlabelled = {k: v for k, v in WIDGET_RESOURCE.items() if k != "label"}
    result, _ = _patch(WIDGET, unlabelled, {"op": "add", "path": "label", "value": "Beta"})
    assert result["label"] == "Beta"
    same, _ = _patch(WIDGET, WIDGET_RESOURCE, {"op": "replace", "path": "label", "value": "ALPHA"})
    assert same["label"] == "ALPHA"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "label", "value": "Beta"},
        {"op": "add", "value": {"label": "Beta"}},
        {"op": "remove", "path": "label"},
        {"op": "replace", "path": "spec.vendor", "value": "Other"},
        {"op": "replace", "path": "spec", "value": {"vendor": "Other"}},
        {"op": "remove", "path": "spec.vendor"},
        {"op": "replace", "path": 'parts[serial eq "1"].serial', "value": "3"},
        {"op": "replace", "path": 'parts[serial eq "1"]', "value": {"serial": "3"}},
        {"op": "add", "path": 'parts[serial eq "1"]', "value": {"serial": "3"}},
        {"op": "remove", "path": "parts.serial"},
    ],
)
def test_changing_immutable_value_is_mutability(operation: dict[str, Any]) -> None:
    with pytest.raises(MutabilityError, match="immutable"):
        _patch(WIDGET, WIDGET_RESOURCE, operation)


def test_replacing_value_by_filter_keeps_immutable_sub_attributes_left_out() -> None:
    result, _ = _patch(
        WIDGET,
        WIDGET_RESOURCE,
        {"op": "replace", "path": 'parts[serial eq "2"]', "value": {"name": "sprocket"}},
    )
    assert result["parts"][1] == {"name": "sprocket", "serial": "2"}


def test_ordinary_members_value_is_immutable() -> None:
    before = _with(TOUR_GUIDES, members=[{"value": "u-1", "type": "User"}])
    with pytest.raises(MutabilityError, match="immutable"):
        _patch(
            GROUP,
            before,
            {"op": "replace", "path": 'members[value eq "u-1"].value', "value": "u-2"},
        )


# --- value shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "value": [{"nickName": "x"}]},
        {"op": "replace", "value": "nickName=x"},
        {"op": "add", "path": ENT, "value": "Tours"},
        {"op": "replace", "path": "name", "value": "Barbara Jensen"},
        {"op": "add", "path": "emails", "value": ["babs@example.com"]},
        {"op": "replace", "path": 'addresses[type eq "work"]', "value": "911 Universal City Plaza"},
        {"op": "add", "path": 'addresses[type eq "home"]', "value": ["x"]},
        {"op": "add", "path": 'addresses[type eq "other"]', "value": "x"},
    ],
)
def test_value_of_the_wrong_shape_is_invalid_value(operation: dict[str, Any]) -> None:
    with pytest.raises(InvalidValueError):
        _user(FULL_USER, operation)


def test_value_object_naming_one_attribute_twice_is_invalid_syntax() -> None:
    with pytest.raises(InvalidSyntaxError, match="case-insensitive"):
        _user(
            FULL_USER,
            {"op": "replace", "path": "name", "value": {"givenName": "a", "GivenName": "b"}},
        )


# --- Group members kept apart --------------------------------------------------------------------


def _m(value: str, **more: str) -> dict[str, Any]:
    return {"value": value, **more}


def _remove(*ids: str) -> dict[str, Any]:
    text = " or ".join(f'value eq "{i}"' for i in ids)
    return {"op": "remove", "path": f"members[{text}]"}


def _add(*ids: str) -> dict[str, Any]:
    return {"op": "add", "path": "members", "value": [_m(i) for i in ids]}


def _replace(*ids: str) -> dict[str, Any]:
    return {"op": "replace", "path": "members", "value": [_m(i) for i in ids]}


REMOVE_ALL = {"op": "remove", "path": "members"}


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ([_add("a"), _remove("a")], {"remove": ["a"]}),
        ([_remove("a"), _add("a")], {"add": [_m("a")]}),
        ([_add("a", "b"), _remove("a")], {"add": [_m("b")], "remove": ["a"]}),
        ([_add("a"), _add("a", "b")], {"add": [_m("a"), _m("b")]}),
        ([REMOVE_ALL, _add("a")], {"replace": [_m("a")]}),
        ([_add("a"), REMOVE_ALL, _add("b")], {"replace": [_m("b")]}),
        ([_replace("a"), _add("b", "a")], {"replace": [_m("a"), _m("b")]}),
        ([_replace("a", "b"), _remove("a")], {"replace": [_m("b")]}),
        ([_replace("a"), _remove("a")], {"remove_all": True}),
        ([_add("a"), REMOVE_ALL], {"remove_all": True}),
        ([REMOVE_ALL, _remove("a")], {"remove_all": True}),
        ([_replace()], {"remove_all": True}),
        ([_remove("a"), _replace("b")], {"replace": [_m("b")]}),
        ([_add("a"), {"op": "add", "path": "members", "value": None}], {"add": [_m("a")]}),
        ([_add("a"), {"op": "replace", "path": "members", "value": None}], {"remove_all": True}),
    ],
)
def test_member_changes_compose_in_order(
    operations: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    assert _members(*operations) == {
        "add": [],
        "remove": [],
        "remove_all": False,
        "replace": None,
        **expected,
    }


@pytest.mark.parametrize(
    ("path", "ids"),
    [
        ('members[value eq "a"]', ["a"]),
        ('members[VALUE EQ "a"]', ["a"]),
        ('members[value eq "a" or value eq "b" or value eq "c"]', ["a", "b", "c"]),
        ('members[(value eq "a") or (value eq "b" or value eq "c")]', ["a", "b", "c"]),
        (f'{GROUP_SCHEMA_ID}:members[value eq "a"]', ["a"]),
    ],
)
def test_members_filtered_by_value_are_removed(path: str, ids: list[str]) -> None:
    assert _members({"op": "remove", "path": path})["remove"] == ids


@pytest.mark.parametrize(
    "path",
    [
        'members[value ne "a"]',
        'members[value co "a"]',
        'members[type eq "User"]',
        'members[value eq "a" and type eq "User"]',
        'members[value eq "a" or type eq "User"]',
        'members[not (value eq "a")]',
        "members[value eq 1]",
        "members[value pr]",
    ],
)
def test_members_filter_other_than_value_equality_is_invalid_filter(path: str) -> None:
    with pytest.raises(InvalidFilterError, match="members can be filtered only by value"):
        _members({"op": "remove", "path": path})


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": 'members[value eq "a"]', "value": {"value": "b"}},
        {"op": "add", "path": 'members[value eq "a"]', "value": {"value": "a"}},
        {"op": "replace", "path": 'members[value eq "a"].type', "value": "Group"},
        {"op": "remove", "path": "members.value"},
    ],
)
def test_members_cannot_be_changed_in_place(operation: dict[str, Any]) -> None:
    with pytest.raises(MutabilityError):
        _members(operation)


def test_member_objects_keep_value_type_and_ref() -> None:
    changes = _members(
        {
            "op": "add",
            "path": "members",
            "value": [
                {"Value": "a", "TYPE": "user", "$Ref": "https://x/Users/a", "display": "A", "x": 1},
                {"value": "b", "type": "GROUP"},
            ],
        }
    )
    assert changes["add"] == [
        {"value": "a", "type": "User", "$ref": "https://x/Users/a"},
        {"value": "b", "type": "Group"},
    ]


@pytest.mark.parametrize(
    "member",
    [
        {"display": "Babs Jensen"},
        {"value": 5},
        {"value": "   "},
        "2819c223-7f76-453a-919d-413861904646",
        {"value": "a", "type": "Robot"},
        {"value": "a", "$ref": 5},
    ],
)
def test_malformed_member_object_is_invalid_value(member: Any) -> None:
    with pytest.raises(InvalidValueError, match=r"members\[0\]"):
        _members({"op": "add", "path": "members", "value": [member]})


def test_remove_members_with_a_value_list_is_refused() -> None:
    # Entra ID's form; its normaliser turns the ids into a filter before this point.
    with pytest.raises(InvalidValueError, match="remove takes no value"):
        _members({"op": "remove", "path": "members", "value": [{"value": "a"}]})


def test_path_less_values_split_members_from_other_attributes() -> None:
    result, changes = _patch(
        GROUP,
        TOUR_GUIDES,
        {"op": "replace", "value": {"id": "x", "displayName": "Guides", "members": [_m("a")]}},
        {"op": "add", "value": {"Members": [_m("b")]}},
        split_members=True,
    )
    assert result == _with(TOUR_GUIDES, displayName="Guides")
    assert changes.replace == [_m("a"), _m("b")]


def test_split_members_leaves_members_in_the_dict_alone() -> None:
    before = _with(TOUR_GUIDES, members=[_m("a")])
    result, changes = _patch(GROUP, before, _add("b"), REMOVE_ALL, split_members=True)
    assert result == before
    assert changes.remove_all and changes.changed


def test_member_changes_start_empty() -> None:
    _result, changes = _patch(
        GROUP,
        TOUR_GUIDES,
        {"op": "replace", "path": "displayName", "value": "G"},
        split_members=True,
    )
    assert changes == MemberChanges()
    assert not changes.changed


def test_changes_members_only() -> None:
    def ops(*items: dict[str, Any]) -> list[Operation]:
        return parse_patch_request(_request(*items))

    member_ops = ops(
        {"op": "add", "path": "members", "value": [{"value": "1"}]},
        {"op": "remove", "path": 'members[value eq "2"]'},
        {"op": "replace", "path": f"{GROUP_SCHEMA_ID}:members", "value": []},
    )
    assert changes_members_only(GROUP, member_ops)
    for other in (
        ops({"op": "replace", "path": "displayName", "value": "x"}),
        ops({"op": "add", "value": {"members": [{"value": "1"}]}}),
        ops({"op": "replace", "path": 'members[value eq "1"].display', "value": "x"}),
        [],
    ):
        assert not changes_members_only(GROUP, other)
    assert not changes_members_only(USER, ops({"op": "add", "path": "emails", "value": []}))

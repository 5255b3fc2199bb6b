"""scim.resources: POST/PUT body validation (RFC 7643 §2, RFC 7644 §3.3, §3.5.1) and response
projection (RFC 7643 §7 `returned`, RFC 7644 §3.4.2.5 attributes / excludedAttributes)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scim.errors import InvalidSyntaxError, InvalidValueError, MutabilityError, ScimError
from scim.resources import parse_attribute_list, parse_resource, project
from scim.schema import (
    ENTERPRISE_USER_SCHEMA_ID,
    GROUP,
    GROUP_SCHEMA_ID,
    USER,
    USER_SCHEMA_ID,
    Attribute,
    Mutability,
    ResourceType,
    Returned,
    Schema,
    Type,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc7643"
ENT = ENTERPRISE_USER_SCHEMA_ID

# A resource type exercising characteristics the User and Group schemas do not use.
WIDGET_SCHEMA = Schema(
    id="urn:example:params:scim:schemas:core:2.0:Widget",
    name="Widget",
    description="Test widget",
    attributes=(
        Attribute("label", mutability=Mutability.IMMUTABLE),
        Attribute("code", returned=Returned.ALWAYS),
        Attribute("secretNote", returned=Returned.REQUEST),
        Attribute("count", type=Type.INTEGER),
        Attribute("weight", type=Type.DECIMAL),
        Attribute("installedAt", type=Type.DATETIME),
        Attribute("blob", type=Type.BINARY),
        Attribute("tags", multi_valued=True),
        Attribute(
            "spec",
            type=Type.COMPLEX,
            sub_attributes=(
                Attribute("vendor", mutability=Mutability.IMMUTABLE),
                Attribute("model"),
                Attribute("internal", returned=Returned.REQUEST),
                Attribute("kind", returned=Returned.ALWAYS),
            ),
        ),
    ),
)
AUDIT_SCHEMA = Schema(
    id="urn:example:params:scim:schemas:extension:audit:2.0:Widget",
    name="Audit",
    description="Test extension",
    attributes=(
        Attribute("owner", required=True),
        Attribute("batch", mutability=Mutability.IMMUTABLE),
    ),
)
AUDIT = AUDIT_SCHEMA.id
WIDGET = ResourceType(
    name="Widget",
    endpoint="/Widgets",
    description="Test widget",
    schema=WIDGET_SCHEMA,
    extensions=((AUDIT_SCHEMA, False),),
)
AUDITED_WIDGET = ResourceType(
    name="AuditedWidget",
    endpoint="/AuditedWidgets",
    description="Test widget whose extension is required",
    schema=WIDGET_SCHEMA,
    extensions=((AUDIT_SCHEMA, True),),
)


def vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    assert data["description"]
    resource: dict[str, Any] = data["resource"]
    return resource


def user(**attrs: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA_ID], "userName": "bjensen", **attrs}


def group(**attrs: Any) -> dict[str, Any]:
    return {"schemas": [GROUP_SCHEMA_ID], "displayName": "Tour Guides", **attrs}


def widget(**attrs: Any) -> dict[str, Any]:
    return {"schemas": [WIDGET_SCHEMA.id], **attrs}


def stored_user(**attrs: Any) -> dict[str, Any]:
    """What storage holds: parse_resource output plus id, meta and groups."""
    body = vector("8.3-enterprise-user.json")
    stored = parse_resource(USER, body)
    stored.update(id=body["id"], meta=body["meta"], groups=body["groups"], **attrs)
    return stored


# --- RFC 7643 §8 examples ------------------------------------------------------------------------

# (vector file, resource type it is parsed as)
VECTOR_CASES = [
    ("8.1-minimal-user.json", USER),
    ("8.2-full-user.json", USER),
    ("8.3-enterprise-user.json", USER),
    ("8.4-group.json", GROUP),
]


def _expected_output(name: str, resource: dict[str, Any]) -> dict[str, Any]:
    """The example as a GET returns it: password never, readOnly input never stored."""
    expected = copy.deepcopy(resource)
    expected.pop("password", None)
    if ENT in expected:
        del expected[ENT]["manager"]["displayName"]
    for member in expected.get("members", []):
        del member["display"]
    return expected


@pytest.mark.parametrize(("name", "resource_type"), VECTOR_CASES)
def test_rfc_example_parses_without_server_managed_attributes(
    name: str, resource_type: ResourceType
) -> None:
    resource = vector(name)
    parsed = parse_resource(resource_type, resource)
    assert "id" not in parsed
    assert "meta" not in parsed
    assert "groups" not in parsed
    assert parsed["schemas"] == resource["schemas"]
    # Parsing the canonical form again changes nothing.
    assert parse_resource(resource_type, parsed) == parsed


@pytest.mark.parametrize(("name", "resource_type"), VECTOR_CASES)
def test_rfc_example_round_trips_through_storage_shape(
    name: str, resource_type: ResourceType
) -> None:
    resource = vector(name)
    stored = parse_resource(resource_type, resource)
    stored.update(id=resource["id"], meta=resource["meta"])
    if "groups" in resource:
        stored["groups"] = resource["groups"]
    assert project(resource_type, stored) == _expected_output(name, resource)


def test_minimal_user_is_schemas_and_username() -> None:
    parsed = parse_resource(USER, vector("8.1-minimal-user.json"))
    assert parsed == {"schemas": [USER_SCHEMA_ID], "userName": "bjensen@example.com"}


def test_full_user_keeps_write_only_password_and_external_id() -> None:
    parsed = parse_resource(USER, vector("8.2-full-user.json"))
    assert parsed["password"] == "t1meMa$heen"
    assert parsed["externalId"] == "701984"


def test_enterprise_user_drops_read_only_manager_display_name() -> None:
    parsed = parse_resource(USER, vector("8.3-enterprise-user.json"))
    assert parsed[ENT]["manager"] == {
        "value": "26118915-6090-4610-87e4-49d8ca9f808d",
        "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
    }
    assert parsed[ENT]["department"] == "Tour Operations"


def test_group_members_lose_read_only_display() -> None:
    parsed = parse_resource(GROUP, vector("8.4-group.json"))
    assert [sorted(m) for m in parsed["members"]] == [["$ref", "value"], ["$ref", "value"]]


# --- parse_resource: structure -------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "user", 3, None])
def test_body_must_be_an_object(body: object) -> None:
    with pytest.raises(InvalidSyntaxError, match="must be a JSON object"):
        parse_resource(USER, body)


@pytest.mark.parametrize(
    ("schemas", "detail"),
    [
        (None, f"schemas is required and must include {USER_SCHEMA_ID}"),
        ("urn:ietf:params:scim:schemas:core:2.0:User", "schemas must be an array"),
        ([USER_SCHEMA_ID, 7], "schemas must be an array"),
        ([GROUP_SCHEMA_ID], f"schemas must include {USER_SCHEMA_ID}"),
        ([], f"schemas must include {USER_SCHEMA_ID}"),
    ],
)
def test_schemas_must_name_the_core_schema(schemas: Any, detail: str) -> None:
    body: dict[str, Any] = {"userName": "bjensen"}
    if schemas is not None:
        body["schemas"] = schemas
    with pytest.raises(InvalidValueError) as caught:
        parse_resource(USER, body)
    assert detail in caught.value.detail
    assert caught.value.scim_type == "invalidValue"


def test_schemas_compared_case_insensitively() -> None:
    parsed = parse_resource(USER, {"schemas": [USER_SCHEMA_ID.upper()], "userName": "bjensen"})
    assert parsed["schemas"] == [USER_SCHEMA_ID]


def test_attribute_names_are_case_insensitive_and_come_out_canonical() -> None:
    body = {
        "SCHEMAS": [USER_SCHEMA_ID],
        "USERNAME": "bjensen",
        "Name": {"GIVENNAME": "Barbara", "familyname": "Jensen"},
        "EMAILS": [{"VALUE": "bjensen@example.com", "Primary": True}],
        "externalID": "701984",
        ENT.upper(): {"DEPARTMENT": "Tour Operations", "Manager": {"VALUE": "m1"}},
    }
    parsed = parse_resource(USER, body)
    assert parsed == {
        "schemas": [USER_SCHEMA_ID, ENT],
        "externalId": "701984",
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "emails": [{"value": "bjensen@example.com", "primary": True}],
        ENT: {"department": "Tour Operations", "manager": {"value": "m1"}},
    }
    assert list(parsed) == ["schemas", "externalId", "userName", "name", "emails", ENT]
    assert list(parsed["name"]) == ["familyName", "givenName"]


def test_same_attribute_twice_in_different_case_is_rejected() -> None:
    with pytest.raises(InvalidSyntaxError) as caught:
        parse_resource(USER, user(USERNAME="other"))
    assert "'userName'" in caught.value.detail
    assert "'USERNAME'" in caught.value.detail


def test_read_only_input_is_ignored_without_validation() -> None:
    body = user(
        id="client-chosen",
        meta={"resourceType": "User", "version": 'W/"1"'},
        groups="not even a list",
    )
    body[ENT] = {"department": "Ops", "manager": {"value": "m1", "displayName": 42}}
    parsed = parse_resource(USER, body)
    assert parsed == {
        "schemas": [USER_SCHEMA_ID, ENT],
        "userName": "bjensen",
        ENT: {"department": "Ops", "manager": {"value": "m1"}},
    }


def test_unknown_attributes_and_sub_attributes_are_not_stored() -> None:
    body = user(foo=1, emails=[{"value": "a@example.com", "verified": True}])
    parsed = parse_resource(USER, body)
    assert "foo" not in parsed
    assert parsed["emails"] == [{"value": "a@example.com"}]


def test_null_and_empty_values_are_unassigned() -> None:
    body = user(
        displayName=None,
        emails=[],
        phoneNumbers=[None],
        name={"givenName": None},
        addresses=[{"country": None}],
    )
    body[ENT] = {"department": None}
    assert parse_resource(USER, body) == {"schemas": [USER_SCHEMA_ID], "userName": "bjensen"}


def test_onelogin_lone_object_for_multi_valued_attribute_becomes_a_list() -> None:
    parsed = parse_resource(USER, user(emails={"value": "a@example.com", "type": "work"}))
    assert parsed["emails"] == [{"value": "a@example.com", "type": "work"}]


# --- parse_resource: extensions ------------------------------------------------------------------


def test_known_extension_block_accepted_when_not_declared() -> None:
    body = user()
    body[ENT] = {"employeeNumber": "701984"}
    parsed = parse_resource(USER, body)
    assert parsed["schemas"] == [USER_SCHEMA_ID, ENT]
    assert parsed[ENT] == {"employeeNumber": "701984"}


def test_declared_extension_without_content_is_dropped_from_schemas() -> None:
    body = user(schemas=[USER_SCHEMA_ID, ENT])
    body[ENT] = {"manager": {"displayName": "read only"}}
    parsed = parse_resource(USER, body)
    assert parsed == {"schemas": [USER_SCHEMA_ID], "userName": "bjensen"}


def test_declared_unknown_extension_is_kept_verbatim() -> None:
    custom = "urn:ietf:params:scim:schemas:extension:CustomExtension:2.0:User"
    block = {"customAttribute": {"Nested": [1, "two"]}}
    body = user(schemas=[USER_SCHEMA_ID, custom])
    body[custom] = block
    parsed = parse_resource(USER, body)
    assert parsed["schemas"] == [USER_SCHEMA_ID, custom]
    assert parsed[custom] == block
    assert parsed[custom] is not block


def test_undeclared_unknown_extension_is_dropped() -> None:
    body = user()
    body["urn:example:undeclared"] = {"x": 1}
    assert parse_resource(USER, body) == {"schemas": [USER_SCHEMA_ID], "userName": "bjensen"}


def test_declared_unknown_extension_without_block_is_dropped_from_schemas() -> None:
    parsed = parse_resource(USER, user(schemas=[USER_SCHEMA_ID, "urn:example:nothing"]))
    assert parsed["schemas"] == [USER_SCHEMA_ID]


def test_core_urn_as_a_block_is_not_kept() -> None:
    body = user()
    body[USER_SCHEMA_ID] = {"userName": "other"}
    assert parse_resource(USER, body) == {"schemas": [USER_SCHEMA_ID], "userName": "bjensen"}


def test_required_extension_must_be_present() -> None:
    with pytest.raises(InvalidValueError, match=f"{AUDIT} is required for AuditedWidget"):
        parse_resource(AUDITED_WIDGET, widget(label="a"))
    body = widget(label="a")
    body[AUDIT] = {"owner": "ops"}
    assert parse_resource(AUDITED_WIDGET, body)[AUDIT] == {"owner": "ops"}


def test_required_attribute_of_present_extension() -> None:
    body = widget()
    body[AUDIT] = {"batch": "b1"}
    with pytest.raises(InvalidValueError, match=f"{AUDIT}:owner is required"):
        parse_resource(WIDGET, body)


# --- parse_resource: types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "body", "detail"),
    [
        (USER, user(userName=5), "userName must be a string, got number"),
        (USER, user(active="true"), "active must be a boolean (true or false), got string"),
        (USER, user(active=1), "active must be a boolean (true or false), got number"),
        (USER, user(name="Barbara Jensen"), "name must be an object, got string"),
        (USER, user(name={"givenName": ["B"]}), "name.givenName must be a string, got array"),
        (USER, user(emails=["a@example.com"]), "emails[0] must be an object, got string"),
        (
            USER,
            user(emails=[{"value": "a@example.com"}, {"value": 42}]),
            "emails[1].value must be a string, got number",
        ),
        (
            USER,
            user(emails=[{"value": "a@example.com", "primary": "True"}]),
            "emails[0].primary must be a boolean",
        ),
        (
            USER,
            user(x509Certificates=[{"value": "not base64!"}]),
            "x509Certificates[0].value must be base64-encoded",
        ),
        (USER, user(externalId=701984), "externalId must be a string, got number"),
        (USER, user(profileUrl=False), "profileUrl must be a string (a URI), got boolean"),
        (USER, user(**{ENT: "Ops"}), f"{ENT} must be an object"),
        (USER, user(**{ENT: {"department": 7}}), f"{ENT}:department must be a string"),
        (USER, user(**{ENT: {"manager": "m1"}}), f"{ENT}:manager must be an object"),
        (WIDGET, widget(count="3"), "count must be an integer, got string"),
        (WIDGET, widget(count=True), "count must be an integer, got boolean"),
        (WIDGET, widget(count=2.5), "count must be an integer, got number"),
        (WIDGET, widget(weight="1.5"), "weight must be a number, got string"),
        (WIDGET, widget(weight=float("nan")), "weight must be a number"),
        (WIDGET, widget(installedAt=20150123), "installedAt must be an xsd:dateTime"),
        (WIDGET, widget(installedAt="2015-01-23"), "installedAt must be an xsd:dateTime"),
        (WIDGET, widget(installedAt="2015-13-23T04:56:22Z"), "installedAt must be an xsd"),
        (WIDGET, widget(installedAt="2015-01-23 04:56:22"), "installedAt must be an xsd"),
        (WIDGET, widget(blob="QUJ"), "blob must be base64-encoded"),
        (WIDGET, widget(tags=5), "tags[0] must be a string, got number"),
    ],
)
def test_wrong_type_names_attribute_and_expected_type(
    resource_type: ResourceType, body: dict[str, Any], detail: str
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_resource(resource_type, body)
    assert detail in caught.value.detail


def test_typed_values_accepted() -> None:
    parsed = parse_resource(
        WIDGET,
        widget(
            count=3,
            weight=2,
            installedAt="2015-01-23T04:56:22.123456789+02:00",
            blob="QUJD\nREVG",
            tags=["a", None, "b"],
        ),
    )
    assert parsed == {
        "schemas": [WIDGET_SCHEMA.id],
        "count": 3,
        "weight": 2,
        "installedAt": "2015-01-23T04:56:22.123456789+02:00",
        "blob": "QUJDREVG",
        "tags": ["a", "b"],
    }


def test_datetime_without_zone_and_decimal_float_accepted() -> None:
    parsed = parse_resource(WIDGET, widget(installedAt="2015-01-23T04:56:22", weight=1.5))
    assert parsed["installedAt"] == "2015-01-23T04:56:22"
    assert parsed["weight"] == 1.5


# --- parse_resource: required, primary, members --------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "body", "detail"),
    [
        (USER, {"schemas": [USER_SCHEMA_ID]}, "userName is required"),
        (USER, user(userName=None), "userName is required"),
        (USER, user(userName="   "), "userName is required and must not be blank"),
        (GROUP, {"schemas": [GROUP_SCHEMA_ID], "members": []}, "displayName is required"),
        (GROUP, group(displayName=""), "displayName is required and must not be blank"),
    ],
)
def test_required_attributes(
    resource_type: ResourceType, body: dict[str, Any], detail: str
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_resource(resource_type, body)
    assert caught.value.detail == detail


def test_only_the_first_primary_stays_true() -> None:
    parsed = parse_resource(
        USER,
        user(
            emails=[
                {"value": "a@example.com", "primary": False},
                {"value": "b@example.com", "primary": True},
                {"value": "c@example.com", "primary": True},
                {"value": "d@example.com", "primary": True},
            ],
            addresses=[{"country": "US", "primary": True}, {"country": "DE", "primary": True}],
        ),
    )
    assert [e["primary"] for e in parsed["emails"]] == [False, True, False, False]
    assert [a["primary"] for a in parsed["addresses"]] == [True, False]


def test_members_are_normalised_and_deduplicated() -> None:
    parsed = parse_resource(
        GROUP,
        group(
            members=[
                {"value": "u1", "type": "user", "display": "Babs", "$ref": "../Users/u1"},
                {"value": "g1", "TYPE": "GROUP"},
                {"value": "u1", "type": "Group"},
                {"value": "u2"},
            ]
        ),
    )
    assert parsed["members"] == [
        {"value": "u1", "$ref": "../Users/u1", "type": "User"},
        {"value": "g1", "type": "Group"},
        {"value": "u2"},
    ]


@pytest.mark.parametrize(
    ("members", "detail"),
    [
        ([{"display": "Babs"}], "members[0].value is required"),
        ([{"value": "u1"}, {"value": "  "}], "members[1].value is required"),
        ([{"value": 12}], "members[0].value must be a string, got number"),
        (["u1"], "members[0] must be an object, got string"),
        ([{"value": "u1", "type": "Device"}], 'members[0].type must be "User" or "Group"'),
    ],
)
def test_invalid_members(members: list[Any], detail: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_resource(GROUP, group(members=members))
    assert detail in caught.value.detail


# --- parse_resource: PUT and immutable -----------------------------------------------------------


def test_immutable_attribute_cannot_change_on_put() -> None:
    existing = parse_resource(WIDGET, widget(label="Alpha"))
    with pytest.raises(MutabilityError) as caught:
        parse_resource(WIDGET, widget(label="Beta"), existing=existing)
    assert "label is immutable" in caught.value.detail
    assert caught.value.scim_type == "mutability"
    assert caught.value.status == 400


def test_immutable_attribute_same_value_accepted_case_insensitively() -> None:
    existing = parse_resource(WIDGET, widget(label="Alpha"))
    assert parse_resource(WIDGET, widget(label="ALPHA"), existing=existing)["label"] == "ALPHA"


def test_immutable_attribute_may_be_set_when_unset() -> None:
    existing = parse_resource(WIDGET, widget(count=1))
    assert parse_resource(WIDGET, widget(label="Beta"), existing=existing)["label"] == "Beta"


def test_immutable_attribute_omitted_on_put_keeps_its_value() -> None:
    existing = parse_resource(WIDGET, widget(label="Alpha", count=1))
    parsed = parse_resource(WIDGET, widget(count=2), existing=existing)
    assert parsed == {"schemas": [WIDGET_SCHEMA.id], "label": "Alpha", "count": 2}
    assert list(parsed) == ["schemas", "label", "count"]


def test_post_does_not_check_immutability() -> None:
    assert parse_resource(WIDGET, widget(label="Beta"))["label"] == "Beta"


def test_immutable_sub_attribute_of_single_valued_complex() -> None:
    existing = parse_resource(WIDGET, widget(spec={"vendor": "ACME", "model": "X1"}))
    with pytest.raises(MutabilityError, match=r"spec\.vendor is immutable"):
        parse_resource(WIDGET, widget(spec={"vendor": "Other"}), existing=existing)
    parsed = parse_resource(WIDGET, widget(spec={"model": "X2"}), existing=existing)
    assert parsed["spec"] == {"vendor": "ACME", "model": "X2"}
    assert list(parsed["spec"]) == ["vendor", "model"]


def test_immutable_extension_attribute_is_kept_with_its_block() -> None:
    body = widget()
    body[AUDIT] = {"owner": "ops", "batch": "b1"}
    existing = parse_resource(WIDGET, body)
    parsed = parse_resource(WIDGET, widget(count=1), existing=existing)
    assert parsed["schemas"] == [WIDGET_SCHEMA.id, AUDIT]
    assert parsed[AUDIT] == {"batch": "b1"}
    changed = widget()
    changed[AUDIT] = {"owner": "ops", "batch": "b2"}
    with pytest.raises(MutabilityError, match=f"{AUDIT}:batch is immutable"):
        parse_resource(WIDGET, changed, existing=existing)


def test_put_may_replace_group_members() -> None:
    existing = parse_resource(GROUP, group(members=[{"value": "u1", "type": "User"}]))
    parsed = parse_resource(GROUP, group(members=[{"value": "u2"}]), existing=existing)
    assert parsed["members"] == [{"value": "u2"}]


# --- project -------------------------------------------------------------------------------------


def test_default_projection_order_and_meta_last() -> None:
    out = project(USER, stored_user())
    keys = list(out)
    assert keys[:4] == ["schemas", "id", "externalId", "userName"]
    assert keys[-2:] == [ENT, "meta"]
    assert keys.index("groups") < keys.index("x509Certificates")


def test_password_is_never_returned_even_when_asked_for() -> None:
    stored = stored_user()
    assert stored["password"] == "t1meMa$heen"
    assert "password" not in project(USER, stored)
    assert "password" not in project(USER, stored, attributes=["password", "userName"])


def test_attributes_returns_only_named_plus_always_rfc7644_3_9() -> None:
    # RFC 7644 §3.9: GET /Users/{id}?attributes=userName returns schemas, id and userName.
    out = project(USER, stored_user(), attributes=["userName"])
    assert out == {
        "schemas": [USER_SCHEMA_ID],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen@example.com",
    }


def test_always_returned_attributes_survive_exclusion() -> None:
    out = project(USER, stored_user(), excluded_attributes=["id", "schemas", "userName"])
    assert out["id"] == "2819c223-7f76-453a-919d-413861904646"
    assert out["schemas"] == [USER_SCHEMA_ID, ENT]
    assert "userName" not in out
    assert "displayName" in out


def test_meta_returned_by_default_and_excludable() -> None:
    assert project(USER, stored_user())["meta"]["resourceType"] == "User"
    assert "meta" not in project(USER, stored_user(), excluded_attributes=["META"])
    assert project(USER, stored_user(), attributes=["meta.location"])["meta"] == {
        "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
    }


def test_read_only_groups_returned_by_default_and_excludable() -> None:
    assert len(project(USER, stored_user())["groups"]) == 3
    assert "groups" not in project(USER, stored_user(), excluded_attributes=["groups"])


def test_sub_attribute_selection_in_any_case() -> None:
    out = project(USER, stored_user(), attributes=["NAME.givenname", "emails.VALUE"])
    assert out["name"] == {"givenName": "Barbara"}
    assert out["emails"] == [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}]
    assert set(out) == {"schemas", "id", "name", "emails"}


def test_whole_attribute_wins_over_its_sub_attribute() -> None:
    out = project(USER, stored_user(), attributes=["name.givenName", "name"])
    assert out["name"]["familyName"] == "Jensen"
    assert len(out["name"]) == 6


def test_excluded_sub_attribute() -> None:
    out = project(USER, stored_user(), excluded_attributes=["emails.type", "name.middleName"])
    assert out["emails"][0] == {"value": "bjensen@example.com", "primary": True}
    assert "middleName" not in out["name"]
    assert out["name"]["givenName"] == "Barbara"


def test_whole_extension_urn_selected_or_excluded() -> None:
    only = project(USER, stored_user(), attributes=[ENT.lower()])
    assert set(only) == {"schemas", "id", ENT}
    assert only["schemas"] == [USER_SCHEMA_ID, ENT]
    assert only[ENT]["employeeNumber"] == "701984"
    without = project(USER, stored_user(), excluded_attributes=[ENT])
    assert ENT not in without
    assert without["schemas"] == [USER_SCHEMA_ID]


def test_urn_qualified_extension_attributes() -> None:
    out = project(
        USER,
        stored_user(),
        attributes=[f"{ENT}:department", f"{ENT.upper()}:MANAGER.value", f"{USER_SCHEMA_ID}:title"],
    )
    assert out == {
        "schemas": [USER_SCHEMA_ID, ENT],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "title": "Tour Guide",
        ENT: {
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
        },
    }


def test_extension_emptied_by_projection_leaves_schemas() -> None:
    out = project(
        USER,
        stored_user(),
        excluded_attributes=[
            f"{ENT}:{name}"
            for name in (
                "employeeNumber",
                "costCenter",
                "organization",
                "division",
                "department",
                "manager",
            )
        ],
    )
    assert ENT not in out
    assert out["schemas"] == [USER_SCHEMA_ID]


@pytest.mark.parametrize(
    "names",
    [
        ["nosuch"],
        ["name.nosuch"],
        ["name.givenName.extra"],
        ["urn:example:unknown:attr"],
        ["schemas"],
        [""],
    ],
)
def test_unknown_names_are_ignored(names: list[str]) -> None:
    stored = stored_user()
    assert project(USER, stored, attributes=names) == project(USER, stored)
    assert project(USER, stored, excluded_attributes=names) == project(USER, stored)


def test_unknown_name_next_to_known_one_is_ignored() -> None:
    out = project(USER, stored_user(), attributes=["userName", "nosuch"])
    assert set(out) == {"schemas", "id", "userName"}


def test_request_attribute_only_when_named() -> None:
    stored = parse_resource(WIDGET, widget(secretNote="s", count=1))
    stored["id"] = "w1"
    assert "secretNote" not in project(WIDGET, stored)
    assert project(WIDGET, stored, attributes=["secretNote"]) == {
        "schemas": [WIDGET_SCHEMA.id],
        "id": "w1",
        "secretNote": "s",
    }


def test_request_sub_attribute_only_when_named_or_parent_named() -> None:
    stored = parse_resource(WIDGET, widget(spec={"model": "X1", "internal": "i", "kind": "k"}))
    assert project(WIDGET, stored)["spec"] == {"model": "X1", "kind": "k"}
    assert project(WIDGET, stored, attributes=["spec.internal"])["spec"] == {
        "internal": "i",
        "kind": "k",
    }
    assert project(WIDGET, stored, attributes=["spec"])["spec"] == {
        "model": "X1",
        "internal": "i",
        "kind": "k",
    }


def test_always_attribute_and_sub_attribute() -> None:
    stored = parse_resource(WIDGET, widget(code="c1", count=1, spec={"model": "X1", "kind": "k"}))
    assert project(WIDGET, stored, attributes=["count"]) == {
        "schemas": [WIDGET_SCHEMA.id],
        "code": "c1",
        "count": 1,
    }
    assert project(WIDGET, stored, excluded_attributes=["code", "spec.kind"])["code"] == "c1"
    assert project(WIDGET, stored, excluded_attributes=["spec.kind"])["spec"]["kind"] == "k"
    assert project(WIDGET, stored, attributes=["spec.model"])["spec"] == {
        "model": "X1",
        "kind": "k",
    }


def test_unknown_extension_block_projection() -> None:
    custom = "urn:example:custom:2.0:User"
    stored = stored_user(**{custom: {"badge": "7"}})
    stored["schemas"].append(custom)
    assert project(USER, stored)[custom] == {"badge": "7"}
    assert project(USER, stored)["schemas"][-1] == custom
    assert set(project(USER, stored, attributes=[custom.upper()])) == {"schemas", "id", custom}
    named_other = project(USER, stored, attributes=["userName"])
    assert custom not in named_other
    assert named_other["schemas"] == [USER_SCHEMA_ID]
    assert custom not in project(USER, stored, excluded_attributes=[custom])


def test_storage_fields_outside_the_schema_are_not_output() -> None:
    out = project(USER, stored_user(tenant_id="t1", version=3))
    assert "tenant_id" not in out
    assert "version" not in out


def test_projection_copies_values() -> None:
    stored = stored_user()
    out = project(USER, stored)
    out["name"]["givenName"] = "changed"
    out["emails"].append({"value": "x"})
    assert stored["name"]["givenName"] == "Barbara"
    assert len(stored["emails"]) == 2


def test_group_projection_members_sub_attribute() -> None:
    resource = vector("8.4-group.json")
    stored = parse_resource(GROUP, resource)
    stored.update(id=resource["id"], meta=resource["meta"])
    out = project(GROUP, stored, attributes=["members.value"])
    assert out == {
        "schemas": [GROUP_SCHEMA_ID],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a"},
        ],
    }


# --- parse_attribute_list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (None, ()),
        ("", ()),
        (" , ,", ()),
        ("userName", ("userName",)),
        (" userName , name.givenName ,,emails ", ("userName", "name.givenName", "emails")),
        (f"{ENT}:manager.value", (f"{ENT}:manager.value",)),
    ],
)
def test_parse_attribute_list(text: str | None, items: tuple[str, ...]) -> None:
    assert parse_attribute_list(text) == items


def test_errors_are_scim_errors_with_status_400() -> None:
    with pytest.raises(ScimError) as caught:
        parse_resource(USER, user(active="yes"))
    assert caught.value.status == 400
    assert caught.value.to_json()["scimType"] == "invalidValue"


def test_put_must_repeat_required_attributes() -> None:
    # RFC 7644 §3.5.1: "clients MUST specify the attribute in the PUT request".
    existing = parse_resource(USER, user())
    with pytest.raises(InvalidValueError, match="userName is required"):
        parse_resource(USER, {"schemas": [USER_SCHEMA_ID], "title": "x"}, existing=existing)

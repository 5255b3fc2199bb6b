"""sso.profile: the user in the attribute names of Entra ID, Okta, Google, Keycloak, OIDC."""

from __future__ import annotations

from typing import Any

import pytest

from sso.profile import (
    DEFAULT_FIELDS,
    DISPLAY_NAME,
    EMAIL,
    FAMILY_NAME,
    GIVEN_NAME,
    GROUPS,
    PRESETS,
    FieldMap,
    Profile,
    field_map,
    profile,
    profile_update,
    scim_user,
)

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
ENTRA = "http://schemas.microsoft.com/ws/2008/06/identity/claims/"

CASES: dict[str, tuple[dict[str, Any], Profile]] = {
    # Entra ID's SAML token (WS-Fed claim URIs; groups by object id).
    "entra-saml": (
        {
            f"{CLAIMS}emailaddress": ["jane@corp.example"],
            f"{CLAIMS}givenname": ["Jane"],
            f"{CLAIMS}surname": ["Doe"],
            f"{CLAIMS}name": ["jane@corp.example"],
            "http://schemas.microsoft.com/identity/claims/displayname": ["Jane Doe"],
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["a1", "b2"],
        },
        Profile("jane@corp.example", "Jane", "Doe", "jane@corp.example", ("a1", "b2")),
    ),
    # Okta's SAML app with the usual attribute statements (basic names).
    "okta-saml": (
        {
            "email": ["jane@corp.example"],
            "firstName": ["Jane"],
            "lastName": ["Doe"],
            "groups": ["Engineering", "Everyone", "Engineering"],
        },
        Profile("jane@corp.example", "Jane", "Doe", None, ("Engineering", "Everyone")),
    ),
    # Keycloak / Shibboleth with X.500 OIDs (urn:oid names).
    "keycloak-oid": (
        {
            "urn:oid:0.9.2342.19200300.100.1.3": ["jane@corp.example"],
            "urn:oid:2.5.4.42": ["Jane"],
            "urn:oid:2.5.4.4": ["Doe"],
            "urn:oid:2.16.840.1.113730.3.1.241": ["Jane Doe"],
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ()),
    ),
    # Google's OIDC id_token claims (single values, not lists).
    "google-oidc": (
        {
            "email": "jane@corp.example",
            "given_name": "Jane",
            "family_name": "Doe",
            "name": "Jane Doe",
            "email_verified": True,
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ()),
    ),
    # Names in another case, and blank values skipped for the next name.
    "case-and-blanks": (
        {"EMAIL": [" "], "Mail": ["jd@corp.example"], "GivenName": ["Jane"]},
        Profile("jd@corp.example", "Jane", None, None, ()),
    ),
}


@pytest.mark.parametrize("attributes,expected", CASES.values(), ids=CASES.keys())
def test_profiles_from_real_attribute_names(attributes: dict[str, Any], expected: Profile) -> None:
    assert profile(attributes) == expected


def test_an_email_subject_stands_in_for_a_missing_email() -> None:
    assert profile({}, "jane@corp.example").email == "jane@corp.example"
    assert profile({}, "00u1abcd").email is None
    assert profile({"email": ["a@x.example"]}, "b@y.example").email == "a@x.example"


def test_jit_user_body() -> None:
    body = scim_user("jane@corp.example", profile(CASES["okta-saml"][0]))
    assert body == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "jane@corp.example",
        "active": True,
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "displayName": "Jane Doe",
        "emails": [{"value": "jane@corp.example", "type": "work", "primary": True}],
    }
    bare = scim_user("00u1", profile({}))
    assert set(bare) == {"schemas", "userName", "active"}


def test_profile_update_replaces_only_what_the_idp_sent() -> None:
    change = profile_update(profile({"email": ["new@corp.example"], "firstName": ["Jane"]}))
    assert change == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "replace",
                "value": {
                    "name": {"givenName": "Jane"},
                    "displayName": "Jane",
                    "emails": [{"value": "new@corp.example", "type": "work", "primary": True}],
                },
            }
        ],
    }
    assert profile_update(profile({})) is None


def test_default_fields_are_the_union_and_the_default() -> None:
    assert FieldMap(EMAIL, GIVEN_NAME, FAMILY_NAME, DISPLAY_NAME, GROUPS) == DEFAULT_FIELDS
    assert PRESETS["generic"] == DEFAULT_FIELDS
    assert field_map() == DEFAULT_FIELDS
    assert set(PRESETS) == {
        "generic",
        "okta",
        "entra",
        "google",
        "onelogin",
        "keycloak",
        "jumpcloud",
    }
    for attributes, expected in CASES.values():
        assert profile(attributes, None, DEFAULT_FIELDS) == expected


# id -> (preset, what the IdP sends, the profile read with the preset, with the default fields)
PRESET_CASES: dict[str, tuple[str, dict[str, Any], Profile, Profile]] = {
    # Okta SAML attribute statements plus the group attribute statement.
    "okta-saml": (
        "okta",
        {
            "email": ["jane@corp.example"],
            "firstName": ["Jane"],
            "lastName": ["Doe"],
            "groups": ["Everyone", "Support"],
            "memberOf": ["CN=Legacy"],
        },
        Profile("jane@corp.example", "Jane", "Doe", None, ("Everyone", "Support")),
        Profile("jane@corp.example", "Jane", "Doe", None, ("Everyone", "Support")),
    ),
    # Okta OIDC: no `email` scope granted, the login stands in; `memberOf` is not Okta's.
    "okta-oidc-login": (
        "okta",
        {"preferred_username": "jane@corp.example", "name": "Jane Doe", "memberOf": ["x"]},
        Profile("jane@corp.example", None, None, "Jane Doe", ()),
        Profile("jane@corp.example", None, None, "Jane Doe", ("x",)),
    ),
    # Entra SAML default claims: `.../claims/name` is the UPN, the display name has its own URI.
    "entra-saml": (
        "entra",
        {
            f"{CLAIMS}emailaddress": ["jane@corp.example"],
            f"{CLAIMS}givenname": ["Jane"],
            f"{CLAIMS}surname": ["Doe"],
            f"{CLAIMS}name": ["jdoe@corp.onmicrosoft.com"],
            "http://schemas.microsoft.com/identity/claims/displayname": ["Jane Doe"],
            f"{ENTRA}groups": ["7d3c-11", "b2"],
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ("7d3c-11", "b2")),
        Profile("jane@corp.example", "Jane", "Doe", "jdoe@corp.onmicrosoft.com", ("7d3c-11", "b2")),
    ),
    # Entra SAML for a user without a mailbox and with app roles but no groups claim.
    "entra-saml-upn-and-roles": (
        "entra",
        {f"{CLAIMS}name": ["jdoe@corp.example"], f"{ENTRA}role": ["Admin"]},
        Profile("jdoe@corp.example", None, None, None, ()),
        Profile(None, None, None, "jdoe@corp.example", ("Admin",)),
    ),
    # Entra OIDC id_token: UPN in preferred_username, app roles in `roles`.
    "entra-oidc": (
        "entra",
        {
            "preferred_username": "jane@corp.example",
            "name": "Jane Doe",
            "given_name": "Jane",
            "family_name": "Doe",
            "roles": ["Admin"],
            "groups": ["7d3c-11"],
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ("7d3c-11",)),
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ("7d3c-11",)),
    ),
    # Google Workspace SAML app with the usual custom attribute mapping.
    "google-saml": (
        "google",
        {
            "email": ["jane@corp.example"],
            "firstName": ["Jane"],
            "lastName": ["Doe"],
            "groups": ["support@corp.example"],
        },
        Profile("jane@corp.example", "Jane", "Doe", None, ("support@corp.example",)),
        Profile("jane@corp.example", "Jane", "Doe", None, ("support@corp.example",)),
    ),
    # Google OIDC: the standard claims, no groups; `hd` is the Workspace domain, not a group.
    "google-oidc": (
        "google",
        {
            "email": "jane@corp.example",
            "given_name": "Jane",
            "family_name": "Doe",
            "name": "Jane Doe",
            "hd": "corp.example",
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ()),
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ()),
    ),
    # OneLogin's SAML custom connector parameters, which the union does not know.
    "onelogin-saml": (
        "onelogin",
        {
            "User.email": ["jane@corp.example"],
            "User.FirstName": ["Jane"],
            "User.LastName": ["Doe"],
            "memberOf": ["Support;Engineering"],
            "PersonImmutableID": ["jdoe"],
        },
        Profile("jane@corp.example", "Jane", "Doe", None, ("Support;Engineering",)),
        Profile(None, None, None, None, ("Support;Engineering",)),
    ),
    # Keycloak OIDC with the group membership mapper (full group paths).
    "keycloak-oidc": (
        "keycloak",
        {
            "email": "jane@corp.example",
            "given_name": "Jane",
            "family_name": "Doe",
            "name": "Jane Doe",
            "preferred_username": "jdoe",
            "groups": ["/Engineering", "/Support"],
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ("/Engineering", "/Support")),
        Profile("jane@corp.example", "Jane", "Doe", "Jane Doe", ("/Engineering", "/Support")),
    ),
    # Keycloak SAML built-in X.500 mappers: e-mail as PKCS#9 emailAddress.
    "keycloak-saml-x500": (
        "keycloak",
        {
            "urn:oid:1.2.840.113549.1.9.1": ["jane@corp.example"],
            "urn:oid:2.5.4.42": ["Jane"],
            "urn:oid:2.5.4.4": ["Doe"],
            "Role": ["offline_access"],
        },
        Profile("jane@corp.example", "Jane", "Doe", None, ()),
        Profile(None, "Jane", "Doe", None, ()),
    ),
    # JumpCloud SAML with lower-case names and its group attribute.
    "jumpcloud-saml": (
        "jumpcloud",
        {
            "email": ["jane@corp.example"],
            "firstname": ["Jane"],
            "lastname": ["Doe"],
            "displayname": ["Jane D."],
            "memberOf": ["Support", "Engineering"],
        },
        Profile("jane@corp.example", "Jane", "Doe", "Jane D.", ("Support", "Engineering")),
        Profile("jane@corp.example", "Jane", "Doe", "Jane D.", ("Support", "Engineering")),
    ),
}


@pytest.mark.parametrize(
    "preset,attributes,expected,by_default", PRESET_CASES.values(), ids=PRESET_CASES.keys()
)
def test_presets_read_what_each_idp_sends(
    preset: str, attributes: dict[str, Any], expected: Profile, by_default: Profile
) -> None:
    assert profile(attributes, None, PRESETS[preset]) == expected
    assert profile(attributes) == by_default


OVERRIDES: dict[str, tuple[FieldMap, dict[str, Any], Profile]] = {
    "a-string-is-the-only-name": (
        field_map("okta", email="mail"),
        {"email": ["a@corp.example"], "mail": ["b@corp.example"], "firstName": "Jane"},
        Profile("b@corp.example", "Jane", None, None, ()),
    ),
    "a-string-not-found": (
        field_map("okta", email="mail"),
        {"email": ["a@corp.example"]},
        Profile(None, None, None, None, ()),
    ),
    "a-list-in-order": (
        field_map("generic", groups=["roles", "groups"]),
        {"groups": ["g"], "roles": ["Admin", "Admin"]},
        Profile(None, None, None, None, ("Admin",)),
    ),
    "an-empty-list-reads-nothing": (
        field_map("entra", groups=[]),
        {f"{ENTRA}groups": ["g"], "groups": ["h"]},
        Profile(None, None, None, None, ()),
    ),
    "the-rest-from-the-preset": (
        field_map("onelogin", display_name=("User.DisplayName",)),
        {"User.email": "jane@corp.example", "User.DisplayName": "Jane D.", "name": "x"},
        Profile("jane@corp.example", None, None, "Jane D.", ()),
    ),
}


@pytest.mark.parametrize("fields,attributes,expected", OVERRIDES.values(), ids=OVERRIDES.keys())
def test_field_overrides(fields: FieldMap, attributes: dict[str, Any], expected: Profile) -> None:
    assert profile(attributes, None, fields) == expected


def test_field_map_values() -> None:
    assert field_map("okta", email="mail").email == ("mail",)
    assert field_map("okta", email="mail").groups == PRESETS["okta"].groups
    assert field_map("entra", groups=("a", "b")).groups == ("a", "b")
    assert field_map("keycloak") == PRESETS["keycloak"]


BAD_FIELD_MAPS: dict[str, tuple[str, dict[str, Any], str]] = {
    "unknown-preset": ("octa", {}, "unknown preset 'octa'"),
    "unknown-field": ("okta", {"mail": "email"}, "unknown field 'mail'"),
    "empty-name": ("okta", {"email": ""}, "email: attribute names must be non-empty strings"),
    "blank-name-in-list": ("okta", {"groups": ["groups", " "]}, "groups: attribute names"),
    "not-a-string": ("okta", {"groups": ["groups", 3]}, "groups: attribute names"),
}


@pytest.mark.parametrize("preset,overrides,message", BAD_FIELD_MAPS.values(), ids=BAD_FIELD_MAPS)
def test_field_map_refuses(preset: str, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        field_map(preset, **overrides)
    assert str(caught.value).startswith(message)

"""sso.profile: the user in the attribute names of Entra ID, Okta, Google, Keycloak, OIDC."""

from __future__ import annotations

from typing import Any

import pytest

from sso.profile import Profile, profile, profile_update, scim_user

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"

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

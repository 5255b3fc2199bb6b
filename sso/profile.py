"""The user an IdP describes, from the attribute names real IdPs use.

SAML attributes and OIDC claims name the same things differently: Entra ID uses the WS-Fed
claim URIs (`http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress`), Shibboleth
and Keycloak can send X.500 OIDs (`urn:oid:0.9.2342.19200300.100.1.3`), Okta and OneLogin
short names (`email`, `firstName`), OIDC the standard claims (`email`, `given_name`). Names
are compared case-insensitively; the first name of a list that has a value wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
_ENTRA = "http://schemas.microsoft.com/ws/2008/06/identity/claims/"

EMAIL = (
    "email",
    "mail",
    "emailAddress",
    f"{_CLAIMS}emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "preferred_username",  # OIDC (Entra: the UPN, usually the e-mail)
    f"{_CLAIMS}upn",
)
GIVEN_NAME = ("given_name", "givenName", "firstName", f"{_CLAIMS}givenname", "urn:oid:2.5.4.42")
FAMILY_NAME = ("family_name", "sn", "surname", "lastName", f"{_CLAIMS}surname", "urn:oid:2.5.4.4")
DISPLAY_NAME = (
    "name",
    "displayName",
    f"{_CLAIMS}name",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
)
GROUPS = (
    "groups",
    "memberOf",
    f"{_ENTRA}groups",
    f"{_ENTRA}role",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",  # isMemberOf (eduMember)
)


@dataclass(frozen=True)
class Profile:
    email: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    groups: tuple[str, ...]


def _values(folded: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The values under the first of `names` that has any, in attributes keyed lower-case."""
    for name in names:
        value = folded.get(name.lower())
        items = value if isinstance(value, list) else [value]
        found = [str(v).strip() for v in items if isinstance(v, str | int) and str(v).strip()]
        if found:
            return found
    return []


def _first(folded: Mapping[str, Any], names: Sequence[str]) -> str | None:
    values = _values(folded, names)
    return values[0] if values else None


def profile(attributes: Mapping[str, Any], subject: str | None = None) -> Profile:
    """The profile in SAML attributes (name -> list of values) or OIDC claims. A subject
    that looks like an e-mail address stands in for a missing e-mail attribute."""
    folded = {key.lower(): value for key, value in attributes.items()}
    email = _first(folded, EMAIL)
    if email is None and subject and "@" in subject:
        email = subject
    return Profile(
        email=email,
        given_name=_first(folded, GIVEN_NAME),
        family_name=_first(folded, FAMILY_NAME),
        display_name=_first(folded, DISPLAY_NAME),
        groups=tuple(dict.fromkeys(_values(folded, GROUPS))),
    )


def _described(found: Profile) -> dict[str, Any]:
    """The SCIM attributes a profile gives values for."""
    out: dict[str, Any] = {}
    name = {
        key: value
        for key, value in (("givenName", found.given_name), ("familyName", found.family_name))
        if value
    }
    if name:
        out["name"] = name
    display = found.display_name or " ".join(
        part for part in (found.given_name, found.family_name) if part
    )
    if display:
        out["displayName"] = display
    if found.email:
        out["emails"] = [{"value": found.email, "type": "work", "primary": True}]
    return out


def scim_user(user_name: str, found: Profile) -> dict[str, Any]:
    """The SCIM User body a just-in-time login creates."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": True,
        **_described(found),
    }


def profile_update(found: Profile) -> dict[str, Any] | None:
    """The SCIM PatchOp that brings a user up to date with a later login's profile: the
    attributes the IdP gave values for are replaced, the others kept; None if it gave none."""
    values = _described(found)
    if not values:
        return None
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": values}],
    }

"""The user an IdP describes, from the attribute names real IdPs use.

SAML attributes and OIDC claims name the same things differently: Entra ID uses the WS-Fed
claim URIs (`http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress`), Shibboleth
and Keycloak can send X.500 OIDs (`urn:oid:0.9.2342.19200300.100.1.3`), Okta and OneLogin
short names (`email`, `firstName`), OIDC the standard claims (`email`, `given_name`). Names
are compared case-insensitively; the first name of a list that has a value wins.

`DEFAULT_FIELDS` is the union of the names every IdP below uses, so a connection works
without configuration. Where the union reads the wrong attribute (Entra's SAML `name` claim
is the UPN, not a display name; its `role` claims are app roles, not groups), a connection
names its IdP's preset in `PRESETS`, optionally with some fields overridden (`field_map`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
class FieldMap:
    """For each profile field, the attribute names tried in order (first with a value wins).
    An empty tuple reads nothing for that field."""

    email: tuple[str, ...]
    given_name: tuple[str, ...]
    family_name: tuple[str, ...]
    display_name: tuple[str, ...]
    groups: tuple[str, ...]


FIELDS = ("email", "given_name", "family_name", "display_name", "groups")

DEFAULT_FIELDS = FieldMap(EMAIL, GIVEN_NAME, FAMILY_NAME, DISPLAY_NAME, GROUPS)

PRESETS: dict[str, FieldMap] = {
    "generic": DEFAULT_FIELDS,
    # Okta: SAML attribute statements as in Okta's app wizard examples (`email`, `firstName`,
    # `lastName`, a group attribute statement named `groups`); OIDC standard claims
    # (`preferred_username` is the Okta login, e-mail shaped by default) and the `groups`
    # claim of a groups claim filter.
    "okta": FieldMap(
        email=("email", "preferred_username"),
        given_name=("firstName", "given_name"),
        family_name=("lastName", "family_name"),
        display_name=("name", "displayName"),
        groups=("groups",),
    ),
    # Entra ID: SAML claim URIs of the default claim set (`.../claims/name` is the UPN, so it
    # is a last resort for the e-mail and never the display name) and the groups claim (object
    # ids unless configured otherwise); OIDC `email` (optional claim), `preferred_username`
    # (the UPN), `name`, `groups`. App roles (`roles`, `.../claims/role`) are not groups.
    "entra": FieldMap(
        email=(
            f"{_CLAIMS}emailaddress",
            "email",
            f"{_CLAIMS}upn",
            "preferred_username",
            f"{_CLAIMS}name",
        ),
        given_name=(f"{_CLAIMS}givenname", "given_name"),
        family_name=(f"{_CLAIMS}surname", "family_name"),
        display_name=("http://schemas.microsoft.com/identity/claims/displayname", "name"),
        groups=(f"{_ENTRA}groups", "groups"),
    ),
    # Google Workspace: SAML attributes are whatever the admin maps (`email`, `firstName`,
    # `lastName`, group membership as `groups` by convention); the OIDC id_token has the
    # standard claims and no groups.
    "google": FieldMap(
        email=("email",),
        given_name=("firstName", "given_name"),
        family_name=("lastName", "family_name"),
        display_name=("name", "displayName"),
        groups=("groups",),
    ),
    # OneLogin: the SAML custom connector's parameters (`User.email`, `User.FirstName`,
    # `User.LastName`, `memberOf`); OIDC standard claims and `groups`.
    "onelogin": FieldMap(
        email=("User.email", "email"),
        given_name=("User.FirstName", "given_name"),
        family_name=("User.LastName", "family_name"),
        display_name=("name",),
        groups=("memberOf", "groups"),
    ),
    # Keycloak: OIDC standard claims and the group membership mapper's `groups`; SAML user
    # property mappers (`email`, `firstName`, `lastName`) or the built-in X.500 mappers
    # (e-mail as PKCS#9 `urn:oid:1.2.840.113549.1.9.1`, givenName, surname).
    "keycloak": FieldMap(
        email=("email", "urn:oid:1.2.840.113549.1.9.1", "urn:oid:0.9.2342.19200300.100.1.3"),
        given_name=("given_name", "firstName", "urn:oid:2.5.4.42"),
        family_name=("family_name", "lastName", "urn:oid:2.5.4.4"),
        display_name=("name", "displayName", "urn:oid:2.16.840.1.113730.3.1.241"),
        groups=("groups",),
    ),
    # JumpCloud: SAML user attributes as commonly mapped (`email`, `firstname`, `lastname`)
    # and its group attribute (`memberOf` by default); OIDC standard claims and `groups`.
    "jumpcloud": FieldMap(
        email=("email",),
        given_name=("firstname", "given_name"),
        family_name=("lastname", "family_name"),
        display_name=("displayname", "name"),
        groups=("memberOf", "groups"),
    ),
}


# Names that often hold an address-shaped value which is a login name, not an e-mail the IdP
# vouches for (Entra's UPN, OIDC's preferred_username: user-chosen at some IdPs).
USER_NAMES = ("preferred_username", f"{_CLAIMS}upn")


def addresses_only(fields: FieldMap) -> FieldMap:
    """`fields` reading the e-mail from e-mail attributes only (not from `USER_NAMES`)."""
    names = {name.lower() for name in USER_NAMES}
    return replace(fields, email=tuple(n for n in fields.email if n.lower() not in names))


def field_map(preset: str = "generic", **overrides: str | Sequence[str]) -> FieldMap:
    """The preset's field map with some fields replaced. A string override is the one name
    used for that field; a sequence is the names tried in order. Raises ValueError for an
    unknown preset or field, or a name that is not a non-empty string."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (expected one of {', '.join(PRESETS)})")
    base = PRESETS[preset]
    changed: dict[str, tuple[str, ...]] = {}
    for field, names in overrides.items():
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r} (expected one of {', '.join(FIELDS)})")
        listed = (names,) if isinstance(names, str) else tuple(names)
        if not all(isinstance(name, str) and name.strip() for name in listed):
            raise ValueError(f"{field}: attribute names must be non-empty strings")
        changed[field] = listed
    return replace(base, **changed)


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
        items = value if isinstance(value, list | tuple) else [value]
        found = [str(v).strip() for v in items if isinstance(v, str | int) and str(v).strip()]
        if found:
            return found
    return []


def _first(folded: Mapping[str, Any], names: Sequence[str]) -> str | None:
    values = _values(folded, names)
    return values[0] if values else None


def profile(
    attributes: Mapping[str, Any], subject: str | None = None, fields: FieldMap = DEFAULT_FIELDS
) -> Profile:
    """The profile in SAML attributes (name -> list of values) or OIDC claims, read with the
    connection's field map. A subject that looks like an e-mail address stands in for a
    missing e-mail attribute."""
    folded = {key.lower(): value for key, value in attributes.items()}
    email = _first(folded, fields.email)
    if email is None and subject and "@" in subject:
        email = subject
    return Profile(
        email=email,
        given_name=_first(folded, fields.given_name),
        family_name=_first(folded, fields.family_name),
        display_name=_first(folded, fields.display_name),
        groups=tuple(dict.fromkeys(_values(folded, fields.groups))),
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

"""What a tenant's SSO connection is, apart from the protocol libraries: its name, its URLs,
and the settings stored for it.

A connection's URLs all live under `{public URL}/sso/{tenant}/{connection}/`; the SAML
entity ID of our side is its metadata URL, the usual choice that lets an IdP fetch the
metadata from the entity ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SAML = "saml"
OIDC = "oidc"
TYPES = (SAML, OIDC)
DEFAULT_OIDC_SCOPES = ("openid", "email", "profile")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ConnectionUrls:
    entity_id: str  # our SAML entity ID (= the metadata URL)
    metadata_url: str  # our SAML SP metadata
    acs_url: str  # SAML Assertion Consumer Service (HTTP-POST)
    login_url: str  # where a login through this connection starts
    redirect_uri: str  # OIDC redirect URI (authorization code callback)


def connection_urls(base_url: str, tenant: str, name: str) -> ConnectionUrls:
    root = f"{base_url.rstrip('/')}/sso/{tenant}/{name}"
    return ConnectionUrls(
        entity_id=f"{root}/metadata",
        metadata_url=f"{root}/metadata",
        acs_url=f"{root}/acs",
        login_url=f"{root}/login",
        redirect_uri=f"{root}/callback",
    )


def check_name(name: str) -> str:
    """A connection name, as it appears in URLs: lower-case letters, digits, '-' and '_'."""
    if not _NAME.match(name):
        raise ValueError(
            f"connection name {name!r}: use 1 to 63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_domain(domain: str) -> str:
    """An e-mail domain, lower-cased (`corp.example`; no scheme, port or '@')."""
    folded = domain.strip().lower().rstrip(".")
    if not _DOMAIN.match(folded):
        raise ValueError(f"{domain!r} is not a domain name such as corp.example")
    return folded


def check_url(url: str, what: str) -> str:
    """An absolute https URL (http only to this machine, for development)."""
    parts = urlsplit(url)
    local = parts.hostname in _LOCAL_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(f"{what} must be an https URL (http only for localhost): {url!r}")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValueError(f"{what} must be an absolute URL without credentials or fragment")
    return url


def oidc_settings(issuer: str, client_id: str, scopes: tuple[str, ...]) -> dict[str, object]:
    """The stored, shown side of an OIDC connection (the client secret is kept apart)."""
    if "openid" not in scopes:
        raise ValueError("the scopes of an OpenID Connect login must include 'openid'")
    if not client_id.strip():
        raise ValueError("the client id may not be empty")
    return {
        # Kept exactly as given: the discovery document's issuer must equal it (OpenID
        # Connect Discovery §4.3), trailing slash included.
        "issuer": check_url(issuer, "the issuer"),
        "client_id": client_id,
        "scopes": list(scopes),
    }

"""OpenID Connect relying party: read a provider's discovery document, build the authorization
code request (PKCE S256, state, nonce) and the token request, and check the ID token.

The one module that imports authlib. Functions over plain data: the caller fetches the
discovery document, the token response and the JWKS over HTTP and passes them in, and gives
the current time as `now` (epoch seconds).

Specs: OpenID Connect Core 1.0 (3.1 Authorization Code Flow, 3.1.3.7 ID Token Validation),
OpenID Connect Discovery 1.0, RFC 6749 (OAuth 2.0), RFC 7636 (PKCE), RFC 7515/7517/7519 (JWS,
JWK, JWT), RFC 9207 and the OAuth 2.0 Security BCP (RFC 9700) on mix-up attacks.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc7636 import create_s256_code_challenge

with warnings.catch_warnings():
    # authlib 1.7 deprecates authlib.jose in favour of joserfc (it stays until authlib 2.0,
    # hence the `<2` in pyproject.toml) and says so when the package is imported.
    warnings.filterwarnings("ignore", "authlib.jose", AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import (
        ExpiredTokenError,
        InvalidClaimError,
        JoseError,
        UnsupportedAlgorithmError,
    )

CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
DEFAULT_ALGS = ("RS256", "ES256", "PS256")

_LOCAL_HOSTS = ("localhost", "127.0.0.1")
# Public-key signatures only. An HMAC algorithm would make the provider's published key (or
# the client secret) a verification secret: a token MACed with the public key as its secret
# would verify. "none" is no signature at all.
_KEY_TYPES = {
    **{f"RS{bits}": "RSA" for bits in (256, 384, 512)},
    **{f"PS{bits}": "RSA" for bits in (256, 384, 512)},
    **{f"ES{bits}": "EC" for bits in (256, 384, 512)},
    "EdDSA": "OKP",
}
# OpenID Connect Core 2: sub "MUST NOT exceed 255 ASCII characters in length".
_MAX_SUBJECT = 255


class OidcError(Exception):
    """A provider, token or ID token this relying party cannot accept; the message says why."""


class UnknownKeyError(OidcError):
    """The ID token names a signing key (`kid`) that the JWKS given does not hold. The provider
    may have rotated its keys: fetch the JWKS again (not more often than the caller's rate
    limit allows) and validate once more."""


@dataclass(frozen=True)
class ProviderMetadata:
    """What the relying party needs from a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    id_token_signing_alg_values_supported: tuple[str, ...]


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and the three secrets to keep with the login until the
    callback: `state` (compared with the callback's), `nonce` (given to validate_id_token)
    and `code_verifier` (given to token_request)."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class ExternalClaims:
    """The user an ID token describes: its `sub`, its issuer, and every claim it holds."""

    subject: str
    issuer: str
    claims: dict[str, Any]


def provider_metadata(document: Mapping[str, Any], expected_issuer: str) -> ProviderMetadata:
    """The provider described by the discovery document fetched from
    `{expected_issuer}/.well-known/openid-configuration`.

    Guarantees, else OidcError: the document's issuer is exactly `expected_issuer`; the
    issuer and the authorization, token and JWKS endpoints are https URLs (http only on
    localhost / 127.0.0.1); the provider offers response_type=code and, when it lists its
    PKCE methods, S256; it lists at least one ID token signing algorithm.
    """
    if not isinstance(document, Mapping):
        raise OidcError("the discovery document is not a JSON object")
    # Discovery 4.3: "The issuer value returned MUST be identical to the Issuer URL that was
    # used as the prefix to /.well-known/openid-configuration to retrieve the configuration
    # information." A document naming another issuer is refused: mix-up defence.
    issuer = document.get("issuer")
    if issuer != expected_issuer:
        raise OidcError(
            f"the discovery document names issuer {issuer!r}, not the configured "
            f"{expected_issuer!r}"
        )
    _check_url(issuer, "issuer")
    endpoints = {
        name: _check_url(document.get(name), name)
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
    }
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise OidcError("the provider does not offer the authorization code flow")
    pkce = document.get("code_challenge_methods_supported")
    if isinstance(pkce, list) and "S256" not in pkce:
        raise OidcError("the provider lists its PKCE methods and S256 is not among them")
    algs = document.get("id_token_signing_alg_values_supported")
    if (
        not isinstance(algs, list)
        or not algs
        or not all(isinstance(alg, str) and alg for alg in algs)
    ):
        raise OidcError("the discovery document has no id_token_signing_alg_values_supported list")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        id_token_signing_alg_values_supported=tuple(algs),
    )


def authorization_request(
    provider: ProviderMetadata, client_id: str, redirect_uri: str, scopes: Sequence[str]
) -> AuthorizationRequest:
    """An authorization code request (Core 3.1.2.1) with a fresh state, nonce and PKCE S256
    code verifier (RFC 7636 4.1-4.2). `scopes` must include "openid"."""
    if "openid" not in scopes:
        raise OidcError("the scopes of an OpenID Connect login must include 'openid'")
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    # RFC 7636 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~";
    # 64 random bytes give 86.
    code_verifier = secrets.token_urlsafe(64)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(code_verifier),
        "code_challenge_method": "S256",
    }
    return AuthorizationRequest(
        url=_add_query(provider.authorization_endpoint, params),
        state=state,
        nonce=nonce,
        code_verifier=code_verifier,
    )


def token_request(
    provider: ProviderMetadata,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    *,
    auth_method: str = CLIENT_SECRET_BASIC,
) -> tuple[str, dict[str, str], dict[str, str]]:
    """The token request that exchanges `code` (Core 3.1.3.1, RFC 6749 4.1.3, RFC 7636 4.5):
    the URL to POST to, the form fields and the headers.

    `auth_method` is client_secret_basic (the default: OpenID Connect Registration's default
    token_endpoint_auth_method, and the one RFC 6749 2.3.1 says every server MUST support) or
    client_secret_post, for providers registered with that method.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if auth_method == CLIENT_SECRET_BASIC:
        # RFC 6749 2.3.1: the client identifier and password are each encoded with
        # application/x-www-form-urlencoded before being joined with ":" and base64-encoded.
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif auth_method == CLIENT_SECRET_POST:
        form["client_id"] = client_id
        form["client_secret"] = client_secret
    else:
        raise OidcError(
            f"token endpoint authentication {auth_method!r} is not supported; use "
            f"{CLIENT_SECRET_BASIC!r} or {CLIENT_SECRET_POST!r}"
        )
    return provider.token_endpoint, form, headers


def validate_id_token(
    id_token: str,
    jwks: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: int,
    leeway: int = 60,
    allowed_algs: Sequence[str] = DEFAULT_ALGS,
) -> ExternalClaims:
    """The claims of an ID token received from the token endpoint (Core 3.1.3.7).

    Guarantees, else OidcError: the token is a JWS (not a JWE) signed with one of
    `allowed_algs` (public-key algorithms only: never "none" or HS*) by the key of `jwks`
    its `kid` names (UnknownKeyError when the JWKS has no such key); `iss` is exactly
    `issuer`; `aud` contains `client_id`; when `aud` has several values, `azp` is present, and
    whenever `azp` is present it equals `client_id`; `exp`, `iat` and `sub` are present; the
    token has not expired and is not from the future (`nbf`, `iat`), allowing `leeway` seconds
    of clock skew; `nonce` equals the one sent in the authorization request.
    """
    unusable = [alg for alg in allowed_algs if alg not in _KEY_TYPES]
    if unusable or not allowed_algs:
        raise OidcError(
            f"ID token algorithms {unusable or list(allowed_algs)!r} cannot be allowed; "
            f"choose among {sorted(_KEY_TYPES)}"
        )
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        # Five parts would be a JWE: encrypted ID tokens are not supported.
        raise OidcError("the ID token is not a signed JWT (JWS compact serialization)")

    def load_key(header: Mapping[str, Any], payload: Any) -> Any:
        return _signing_key(jwks, header)

    try:
        claims = JsonWebToken(list(allowed_algs)).decode(
            id_token,
            load_key,
            claims_options={
                # authlib checks a claim's value only when asked to; aud is not checked
                # at all without this option.
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "nonce": {"essential": True},
            },
        )
    except OidcError:
        raise
    except UnsupportedAlgorithmError:
        raise OidcError(
            f"the ID token is signed with {_header(id_token).get('alg')!r}, which is not among "
            f"the allowed {list(allowed_algs)}"
        ) from None
    except JoseError as exc:
        raise OidcError(f"the ID token was refused: {_describe(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise OidcError(f"the ID token cannot be read: {exc}") from None
    try:
        claims.validate(now=now, leeway=leeway)
    except ExpiredTokenError:
        raise OidcError("the ID token has expired") from None
    except InvalidClaimError as exc:
        name = getattr(exc, "claim_name", "")
        expected = {"iss": issuer, "aud": client_id}.get(name)
        wanted = f", expected {expected!r}" if expected else ""
        raise OidcError(
            f"the ID token's {name} claim {claims.get(name)!r} is not accepted{wanted}"
        ) from None
    except JoseError as exc:
        raise OidcError(f"the ID token was refused: {_describe(exc)}") from None

    found = dict(claims)
    # Core 3.1.3.7 (2): "The Issuer Identifier for the OpenID Provider [...] MUST exactly
    # match the value of the iss (issuer) Claim." authlib compares with != already; kept
    # here so the rule does not depend on an option's spelling.
    if found.get("iss") != issuer:
        raise OidcError(f"the ID token was issued by {found.get('iss')!r}, not {issuer!r}")
    audience = found.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    # Core 3.1.3.7 (3): "The Client MUST validate that the aud (audience) Claim contains its
    # client_id value [...] The ID Token MUST be rejected if the ID Token does not list the
    # Client as a valid audience". Holds even when azp names this client.
    if client_id not in audiences:
        raise OidcError(f"the ID token is for audience {audience!r}, not client {client_id!r}")
    azp = found.get("azp")
    # Core 3.1.3.7 (4)-(5): "If the ID Token contains multiple audiences, the Client SHOULD
    # verify that an azp Claim is present. If an azp (authorized party) Claim is present,
    # the Client SHOULD verify that its client_id is the Claim Value."
    if len(audiences) > 1 and azp is None:
        raise OidcError("the ID token has several audiences and no azp claim")
    if azp is not None and azp != client_id:
        raise OidcError(f"the ID token was issued to {azp!r} (azp), not client {client_id!r}")
    # RFC 7519 4.1.4: "the current date/time MUST be before the expiration date/time";
    # authlib still accepts a token at exactly exp + leeway.
    if found["exp"] + leeway <= now:
        raise OidcError("the ID token has expired")
    token_nonce = found.get("nonce")
    # Core 3.1.3.7 (11): "The value of the nonce Claim MUST be checked to verify that it is
    # the same value as the one that was sent in the Authentication Request."
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise OidcError("the ID token's nonce is not the one sent with this login")
    subject = found.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT:
        raise OidcError("the ID token's sub is not a string of 1 to 255 characters")
    return ExternalClaims(subject=subject, issuer=issuer, claims=found)


def _signing_key(jwks: Mapping[str, Any], header: Mapping[str, Any]) -> Any:
    """The key of `jwks` that the JWS header names, imported for verification."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise OidcError("the JWKS is not a JSON object with a 'keys' list")
    alg = header.get("alg")
    kty = _KEY_TYPES.get(alg) if isinstance(alg, str) else None
    # RFC 7517 4.2 / 4.4: a key marked for encryption, or for another algorithm, is not
    # a key for this signature.
    usable = [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("use", "sig") == "sig"
        and key.get("alg", alg) == alg
        and key.get("kty") == kty
    ]
    kid = header.get("kid")
    if kid is not None:
        named = [key for key in usable if key.get("kid") == kid]
        if not named:
            raise UnknownKeyError(f"the JWKS has no {alg} signing key with kid {kid!r}")
        found = named[0]
    # Core 10.1: "If there are multiple keys in the referenced JWK Set document, a kid value
    # MUST be provided in the JOSE Header."
    elif len(usable) == 1:
        found = usable[0]
    elif not usable:
        raise UnknownKeyError(f"the JWKS has no {alg} signing key")
    else:
        raise OidcError("the ID token names no kid and the JWKS holds several keys")
    try:
        return JsonWebKey.import_key(found)
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcError(f"the JWKS key {kid!r} cannot be read: {exc}") from None


def _header(id_token: str) -> dict[str, Any]:
    """The JOSE header, read without verification, for error messages only."""
    segment = id_token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


def _describe(exc: JoseError) -> str:
    description = getattr(exc, "description", None)
    return f"{exc.error}: {description}" if description else str(exc.error)


def _check_url(url: Any, what: str) -> str:
    if not isinstance(url, str):
        raise OidcError(f"the discovery document has no {what}")
    parts = urlsplit(url)
    local = parts.hostname in _LOCAL_HOSTS
    if not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        raise OidcError(f"the {what} must be an https URL (http only for localhost): {url!r}")
    if not parts.hostname or parts.fragment:
        raise OidcError(f"the {what} must be an absolute URL without a fragment: {url!r}")
    return url


def _add_query(url: str, params: Mapping[str, str]) -> str:
    # RFC 6749 3.1: the endpoint URI "MAY include an application/x-www-form-urlencoded
    # formatted query component [...] which MUST be retained when adding additional query
    # parameters."
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))

"""sso.oidc against a real OpenID provider (tests/oidc_provider.py, authlib's server classes):
discovery, the authorization code flow with PKCE, the token call and ID token validation,
and the id_tokens and documents a relying party must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from sso import oidc
from tests.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SCOPES,
    Knobs,
    OidcProvider,
    User,
    new_key,
    public_pem,
)

NOW = 1_773_500_966  # 2026-03-14T15:09:26Z
USER = User(subject="user-42", email="ada@corp.example", name="Ada Lovelace")
KEY = new_key("key-1")  # one RSA key per run
OTHER_KEY = new_key("key-2")
WRONG_AUD = r"aud claim \['another-client'\] is not accepted, expected 'idgate-test-client'"


@pytest.fixture
async def provider(aiohttp_server: Any) -> OidcProvider:
    provider = OidcProvider(USER, key=KEY, clock=lambda: NOW)
    server = await aiohttp_server(provider.app())
    provider.issuer = f"http://127.0.0.1:{server.port}"
    return provider


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def discover(session: aiohttp.ClientSession, issuer: str) -> oidc.ProviderMetadata:
    async with session.get(f"{issuer}/.well-known/openid-configuration") as response:
        assert response.status == 200
        document = await response.json()
    return oidc.provider_metadata(document, issuer)


async def authorize(
    session: aiohttp.ClientSession, metadata: oidc.ProviderMetadata
) -> tuple[oidc.AuthorizationRequest, str, str]:
    """The request sent, and the code and state the provider's redirect carries."""
    request = oidc.authorization_request(metadata, CLIENT_ID, REDIRECT_URI, SCOPES)
    async with session.get(request.url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith(f"{REDIRECT_URI}?")
    query = parse_qs(urlsplit(location).query)
    return request, query["code"][0], query["state"][0]


async def exchange(
    session: aiohttp.ClientSession,
    metadata: oidc.ProviderMetadata,
    code: str,
    code_verifier: str,
    auth_method: str = oidc.CLIENT_SECRET_BASIC,
) -> tuple[int, dict[str, Any]]:
    url, form, headers = oidc.token_request(
        metadata,
        CLIENT_ID,
        CLIENT_SECRET,
        code,
        REDIRECT_URI,
        code_verifier,
        auth_method=auth_method,
    )
    async with session.post(url, data=form, headers=headers) as response:
        return response.status, await response.json()


async def jwks(session: aiohttp.ClientSession, metadata: oidc.ProviderMetadata) -> Any:
    async with session.get(metadata.jwks_uri) as response:
        return await response.json()


async def id_token(
    session: aiohttp.ClientSession, provider: OidcProvider
) -> tuple[oidc.AuthorizationRequest, str, Any]:
    """A whole login up to the token response: the request, its id_token and the JWKS."""
    metadata = await discover(session, provider.issuer)
    request, code, _ = await authorize(session, metadata)
    status, body = await exchange(session, metadata, code, request.code_verifier)
    assert status == 200, body
    return request, body["id_token"], await jwks(session, metadata)


def validate(
    provider: OidcProvider, request: oidc.AuthorizationRequest, token: str, keys: Any, **kw: Any
) -> oidc.ExternalClaims:
    options: dict[str, Any] = {"issuer": provider.issuer, "client_id": CLIENT_ID, "now": NOW}
    options.update(kw)
    return oidc.validate_id_token(token, keys, nonce=request.nonce, **options)


# The flow


@pytest.mark.parametrize("auth_method", [oidc.CLIENT_SECRET_BASIC, oidc.CLIENT_SECRET_POST])
async def test_login_yields_the_users_claims(
    provider: OidcProvider, session: aiohttp.ClientSession, auth_method: str
) -> None:
    metadata = await discover(session, provider.issuer)
    assert metadata.token_endpoint == f"{provider.issuer}/token"
    assert metadata.id_token_signing_alg_values_supported == ("RS256",)
    request, code, state = await authorize(session, metadata)
    status, body = await exchange(session, metadata, code, request.code_verifier, auth_method)
    assert status == 200, body

    claims = validate(provider, request, body["id_token"], await jwks(session, metadata))

    assert state == request.state
    assert claims.subject == "user-42"
    assert claims.issuer == provider.issuer
    assert claims.claims["email"] == "ada@corp.example"
    assert claims.claims["nonce"] == request.nonce
    assert claims.claims["aud"] == [CLIENT_ID]


async def test_state_comes_back_unchanged_and_each_login_has_its_own_secrets(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    metadata = await discover(session, provider.issuer)
    first, _, first_state = await authorize(session, metadata)
    second, _, second_state = await authorize(session, metadata)
    assert (first_state, second_state) == (first.state, second.state)
    assert first.state != second.state
    assert first.nonce != second.nonce
    assert first.code_verifier != second.code_verifier


async def test_a_code_is_exchanged_once(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    metadata = await discover(session, provider.issuer)
    request, code, _ = await authorize(session, metadata)
    assert (await exchange(session, metadata, code, request.code_verifier))[0] == 200
    status, body = await exchange(session, metadata, code, request.code_verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


# PKCE and the authorization request


def test_authorization_request_sends_an_s256_challenge_and_keeps_the_endpoints_query() -> None:
    metadata = oidc.ProviderMetadata(
        issuer="https://idp.example.org",
        authorization_endpoint="https://idp.example.org/authorize?tenant=acme",
        token_endpoint="https://idp.example.org/token",
        jwks_uri="https://idp.example.org/jwks",
        id_token_signing_alg_values_supported=("RS256",),
    )
    request = oidc.authorization_request(metadata, CLIENT_ID, REDIRECT_URI, SCOPES)
    query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
    digest = hashlib.sha256(request.code_verifier.encode()).digest()
    assert query == {
        "tenant": "acme",
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": request.state,
        "nonce": request.nonce,
        "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    assert 43 <= len(request.code_verifier) <= 128
    with pytest.raises(oidc.OidcError, match="openid"):
        oidc.authorization_request(metadata, CLIENT_ID, REDIRECT_URI, ("email",))


async def test_the_provider_refuses_a_code_verifier_that_does_not_match(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    metadata = await discover(session, provider.issuer)
    _, code, _ = await authorize(session, metadata)
    wrong = oidc.authorization_request(metadata, CLIENT_ID, REDIRECT_URI, SCOPES).code_verifier
    status, body = await exchange(session, metadata, code, wrong)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "id_token" not in body


def test_token_request_authenticates_the_client_as_asked() -> None:
    metadata = oidc.ProviderMetadata(
        "https://idp.example.org",
        "https://idp.example.org/a",
        "https://idp.example.org/token",
        "https://idp.example.org/jwks",
        ("RS256",),
    )
    args = (metadata, "client 1", "p@ss:w+rd", "the-code", REDIRECT_URI, "verifier")
    url, form, headers = oidc.token_request(*args)
    assert url == "https://idp.example.org/token"
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "verifier",
    }
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")) == (
        b"client%201:p%40ss%3Aw%2Brd"
    )
    _, form, headers = oidc.token_request(*args, auth_method=oidc.CLIENT_SECRET_POST)
    assert (form["client_id"], form["client_secret"]) == ("client 1", "p@ss:w+rd")
    assert "Authorization" not in headers
    with pytest.raises(oidc.OidcError, match="private_key_jwt"):
        oidc.token_request(*args, auth_method="private_key_jwt")


# Discovery


async def test_a_discovery_document_naming_another_issuer_is_refused(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    provider.knobs = Knobs(discovery_issuer="https://attacker.example")
    with pytest.raises(oidc.OidcError, match=r"names issuer 'https://attacker\.example'"):
        await discover(session, provider.issuer)


def _document(**changes: Any) -> dict[str, Any]:
    document = {
        "issuer": "https://idp.example.org",
        "authorization_endpoint": "https://idp.example.org/authorize",
        "token_endpoint": "https://idp.example.org/token",
        "jwks_uri": "https://idp.example.org/jwks",
        "response_types_supported": ["code", "id_token"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }
    document.update(changes)
    return {key: value for key, value in document.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": "https://idp.example.org/"}, "names issuer"),
        ({"token_endpoint": "http://idp.example.org/token"}, "token_endpoint must be an https"),
        ({"jwks_uri": None}, "no jwks_uri"),
        ({"authorization_endpoint": "ftp://idp.example.org/a"}, "authorization_endpoint"),
        ({"response_types_supported": ["id_token"]}, "authorization code flow"),
        ({"code_challenge_methods_supported": ["plain"]}, "S256"),
        ({"id_token_signing_alg_values_supported": []}, "id_token_signing_alg"),
    ],
)
def test_discovery_documents_that_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(oidc.OidcError, match=message):
        oidc.provider_metadata(_document(**changes), "https://idp.example.org")


def test_discovery_allows_http_on_localhost_only() -> None:
    local = "http://localhost:8080"
    document = {
        **_document(),
        "issuer": local,
        "authorization_endpoint": f"{local}/authorize",
        "token_endpoint": "http://127.0.0.1:8080/token",
        "jwks_uri": f"{local}/jwks",
    }
    metadata = oidc.provider_metadata(document, local)
    assert metadata.token_endpoint == "http://127.0.0.1:8080/token"
    assert metadata.id_token_signing_alg_values_supported == ("RS256", "ES256")
    with pytest.raises(oidc.OidcError, match="issuer must be an https"):
        oidc.provider_metadata({**document, "issuer": "http://idp"}, "http://idp")


# ID tokens that are refused


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (Knobs(audience=["another-client"]), WRONG_AUD),
        # azp names this client, yet aud does not: still refused.
        (Knobs(audience=["another-client"], azp=CLIENT_ID), WRONG_AUD),
        (Knobs(audience=[CLIENT_ID, "another-client"]), "several audiences and no azp"),
        (Knobs(audience=[CLIENT_ID, "another-client"], azp="another-client"), "azp"),
        (Knobs(azp="another-client"), "azp"),
        (Knobs(nonce="a-nonce-from-another-login"), "nonce is not the one sent"),
        (Knobs(id_token_issuer="https://attacker.example"), "iss claim 'https://attacker.example'"),
        (Knobs(issued_at_offset=-3600), "expired"),
        (Knobs(issued_at_offset=3600), "future"),
        (Knobs(forge="none"), "signed with 'none', which is not among"),
        (Knobs(forge="HS256"), "signed with 'HS256', which is not among"),
    ],
    ids=[
        "wrong-aud",
        "wrong-aud-with-our-azp",
        "two-audiences-without-azp",
        "two-audiences-other-azp",
        "other-azp",
        "wrong-nonce",
        "wrong-iss",
        "expired",
        "issued-in-the-future",
        "alg-none",
        "hs256-with-public-key",
    ],
)
async def test_id_tokens_that_are_refused(
    provider: OidcProvider, session: aiohttp.ClientSession, knobs: Knobs, message: str
) -> None:
    provider.knobs = knobs
    request, token, keys = await id_token(session, provider)
    with pytest.raises(oidc.OidcError, match=message):
        validate(provider, request, token, keys)


async def test_several_audiences_are_accepted_when_azp_is_this_client(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    provider.knobs = Knobs(audience=["another-client", CLIENT_ID], azp=CLIENT_ID)
    request, token, keys = await id_token(session, provider)
    assert validate(provider, request, token, keys).claims["azp"] == CLIENT_ID


async def test_a_nonce_from_another_login_is_refused(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    _, token, keys = await id_token(session, provider)
    with pytest.raises(oidc.OidcError, match="nonce is not the one sent"):
        oidc.validate_id_token(
            token, keys, issuer=provider.issuer, client_id=CLIENT_ID, nonce="other", now=NOW
        )


async def test_the_hs256_forgery_is_a_real_one(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    """The refused HS256 token verifies as HMAC-SHA256 keyed with the public key PEM, so a
    verifier that let the token pick HMAC would accept it; HMAC cannot be allowed at all."""
    provider.knobs = Knobs(forge="HS256")
    request, token, keys = await id_token(session, provider)
    signing_input, _, signature = token.rpartition(".")
    mac = hmac.new(public_pem(KEY), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature
    with pytest.raises(oidc.OidcError, match="HS256"):
        validate(provider, request, token, keys, allowed_algs=("RS256", "HS256"))


async def test_the_leeway_bounds_expiry_and_issue_time(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    request, token, keys = await id_token(session, provider)
    exp = NOW + Knobs().lifetime
    assert validate(provider, request, token, keys, now=exp + 59).subject == "user-42"
    with pytest.raises(oidc.OidcError, match="expired"):
        validate(provider, request, token, keys, now=exp + 60)
    assert validate(provider, request, token, keys, now=NOW - 60).subject == "user-42"
    with pytest.raises(oidc.OidcError, match="future"):
        validate(provider, request, token, keys, now=NOW - 61)
    assert validate(provider, request, token, keys, now=exp + 200, leeway=300)


async def test_a_token_signed_by_another_key_under_the_published_kid_is_refused(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    provider.knobs = Knobs(signing_key={**OTHER_KEY, "kid": KEY["kid"]})
    request, token, keys = await id_token(session, provider)
    with pytest.raises(oidc.OidcError, match="bad_signature"):
        validate(provider, request, token, keys)


async def test_an_unknown_kid_asks_for_the_jwks_again(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    """The provider signs with a new key before the JWKS we hold lists it (a rotation)."""
    provider.knobs = Knobs(signing_key=OTHER_KEY)
    request, token, stale = await id_token(session, provider)
    with pytest.raises(oidc.UnknownKeyError, match="key-2"):
        validate(provider, request, token, stale)

    provider.extra_keys.append(OTHER_KEY)
    metadata = await discover(session, provider.issuer)
    fresh = await jwks(session, metadata)
    assert validate(provider, request, token, fresh).subject == "user-42"


async def test_keys_for_encryption_or_another_algorithm_do_not_verify(
    provider: OidcProvider, session: aiohttp.ClientSession
) -> None:
    request, token, keys = await id_token(session, provider)
    for change in ({"use": "enc"}, {"alg": "PS256"}):
        altered = {"keys": [{**key, **change} for key in keys["keys"]]}
        with pytest.raises(oidc.UnknownKeyError):
            validate(provider, request, token, altered)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("a.b.c.d.e", "not a signed JWT"),
        ("not-a-jwt", "not a signed JWT"),
        ("e30.e30.", "refused|cannot be read"),
    ],
)
def test_malformed_tokens_are_refused(token: str, message: str) -> None:
    with pytest.raises(oidc.OidcError, match=message):
        oidc.validate_id_token(
            token, {"keys": []}, issuer="https://idp", client_id=CLIENT_ID, nonce="n", now=NOW
        )


@pytest.mark.parametrize("algs", [(), ("none",), ("RS256", "HS512")])
def test_symmetric_or_no_algorithms_cannot_be_allowed(algs: tuple[str, ...]) -> None:
    with pytest.raises(oidc.OidcError, match="cannot be allowed"):
        oidc.validate_id_token(
            "a.b.c",
            {"keys": []},
            issuer="https://idp",
            client_id=CLIENT_ID,
            nonce="n",
            now=NOW,
            allowed_algs=algs,
        )

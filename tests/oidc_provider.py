"""An OpenID provider for tests, from authlib's server classes (a real OAuth 2.0 / OpenID
Connect implementation): the authorization code grant with PKCE and the OpenID Connect code
flow extension, id_tokens signed with an RSA key made per run, served as an aiohttp app.

authlib's servers are framework-agnostic: `_Server` below is the adapter authlib asks a
framework to write (`create_oauth2_request`, `create_json_request`, `handle_response`), over
requests read by aiohttp. Clients and authorization codes live in memory.

`/authorize` approves at once for the configured user and redirects with code and state (no
login page). `Knobs` make it issue the id_tokens a relying party must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo
from authlib.oidc.core.grants import OpenIDCode

with warnings.catch_warnings():
    # authlib 1.7 deprecates authlib.jose in favour of joserfc, and says so at import.
    warnings.filterwarnings("ignore", "authlib.jose", AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey

CLIENT_ID = "idgate-test-client"
CLIENT_SECRET = "s3cret with spaces/and+signs"
REDIRECT_URI = "http://127.0.0.1:9/sso/acme/oidc/callback"
SCOPES = ("openid", "email", "profile")
FORGED_ALGS = ("none", "HS256")


def new_key(kid: str) -> dict[str, Any]:
    """A new RSA 2048 private key as a JWK, with `kid`."""
    key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
    jwk: dict[str, Any] = key.as_dict(is_private=True)
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


def public_jwk(private: Mapping[str, Any]) -> dict[str, Any]:
    public: dict[str, Any] = JsonWebKey.import_key(dict(private)).as_dict(is_private=False)
    public.update(kid=private["kid"], use="sig", alg="RS256")
    return public


def public_pem(private: Mapping[str, Any]) -> bytes:
    pem: bytes = JsonWebKey.import_key(public_jwk(private)).as_pem(is_private=False)
    return pem


@dataclass(frozen=True)
class User:
    subject: str
    email: str
    name: str


@dataclass
class Knobs:
    """What the next id_tokens get wrong; the defaults issue correct ones."""

    discovery_issuer: str | None = None  # the issuer the discovery document names
    id_token_issuer: str | None = None  # iss
    audience: list[str] | None = None  # aud, instead of [client_id]
    azp: str | None = None  # azp, none by default
    nonce: str | None = None  # nonce, instead of the one the request sent
    issued_at_offset: int = 0  # iat = provider clock + offset
    lifetime: int = 600  # exp = iat + lifetime
    signing_key: dict[str, Any] | None = None  # a private JWK to sign with instead
    forge: str | None = None  # "none": unsigned; "HS256": MACed with the public key PEM


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass(frozen=True)
class _Incoming:
    """An HTTP request as aiohttp has read it (the body already awaited)."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    form: Mapping[str, str]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, data: Mapping[str, str], datalist: Mapping[str, list[str]]) -> None:
        self._data = dict(data)
        self._datalist = dict(datalist)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: _Incoming, datalist: Mapping[str, list[str]]) -> None:
        super().__init__(incoming.method, incoming.url, headers=incoming.headers)
        self._args = dict(incoming.query)
        self._form = dict(incoming.form)
        self.payload = _Payload({**self._args, **self._form}, datalist)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.provider = provider
        self.register_token_generator("default", BearerTokenGenerator(_opaque_token))
        self.register_grant(
            _CodeGrant, [CodeChallenge(required=True), _OpenIDCode(provider, require_nonce=True)]
        )

    def query_client(self, client_id: str) -> _Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.provider.tokens.append(token)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: _Incoming | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        datalist: dict[str, list[str]] = {}
        for source in (request.query, request.form):
            getall = getattr(source, "getall", None)
            for key in source:
                datalist[key] = list(getall(key)) if getall else [source[key]]
        return _Request(request, datalist)

    def create_json_request(self, request: _Incoming) -> JsonRequest:
        json_request = JsonRequest(request.method, request.url, request.headers)
        json_request.payload = _JsonPayload(request.form)
        return json_request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> web.Response:
        text = json.dumps(body) if isinstance(body, dict) else (body or "")
        return web.Response(status=status, text=text, headers=dict(headers))


class _CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    @property
    def provider(self) -> OidcProvider:
        return self.server.provider  # type: ignore[no-any-return]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.provider.codes[code] = _Code(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=data["redirect_uri"],
            scope=request.payload.scope or "",
            user=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=self.provider.clock(),
        )

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        found = self.provider.codes.get(code)
        return found if found and found.client_id == client.get_client_id() else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> User:
        return authorization_code.user


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: OidcProvider, require_nonce: bool) -> None:
        super().__init__(require_nonce=require_nonce)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return any(code.nonce == nonce for code in self.provider.codes.values())

    def resolve_client_private_key(self, client: _Client) -> dict[str, Any]:
        return self.provider.knobs.signing_key or self.provider.key

    def get_client_algorithm(self, client: _Client) -> str:
        return "RS256"

    def get_encode_header(self, client: _Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.resolve_client_private_key(client)["kid"]}

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        knobs = self.provider.knobs
        issued_at = self.provider.clock() + knobs.issued_at_offset
        claims: dict[str, Any] = {
            "iss": knobs.id_token_issuer or self.provider.issuer,
            "aud": knobs.audience or [client.get_client_id()],
            "iat": issued_at,
            "exp": issued_at + knobs.lifetime,
        }
        if knobs.azp is not None:
            claims["azp"] = knobs.azp
        return claims

    def get_authorization_code_claims(self, authorization_code: _Code) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if self.provider.knobs.nonce is not None:
            claims["nonce"] = self.provider.knobs.nonce
        return claims

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        info = UserInfo(sub=user.subject)
        if "email" in scope.split():
            info.update(email=user.email, email_verified=True)
        if "profile" in scope.split():
            info["name"] = user.name
        return info

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        signed: str = super().encode_id_token(token, request)
        forge = self.provider.knobs.forge
        if forge is None:
            return signed
        if forge not in FORGED_ALGS:
            raise ValueError(f"cannot forge {forge!r}")
        payload = signed.split(".")[1]
        header = {"alg": forge, "typ": "JWT", "kid": self.provider.key["kid"]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{payload}"
        if forge == "none":
            return f"{signing_input}."
        # The classic confusion: an HMAC whose secret is the provider's published public key.
        mac = hmac.new(public_pem(self.provider.key), signing_input.encode(), hashlib.sha256)
        return f"{signing_input}.{_b64(mac.digest())}"


@dataclass
class OidcProvider:
    """The provider's state; `app()` serves it. Set `issuer` once the server has a port."""

    user: User
    key: dict[str, Any] = field(default_factory=lambda: new_key("key-1"))
    issuer: str = ""
    clock: Callable[[], int] = lambda: int(time.time())
    knobs: Knobs = field(default_factory=Knobs)
    extra_keys: list[dict[str, Any]] = field(default_factory=list)  # published besides `key`
    clients: dict[str, _Client] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clients.setdefault(
            CLIENT_ID, _Client(CLIENT_ID, CLIENT_SECRET, redirect_uris=(REDIRECT_URI,))
        )
        self.server = _Server(self)

    def register(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        """A relying party the provider knows, besides the default one."""
        self.clients[client_id] = _Client(client_id, client_secret, redirect_uris=(redirect_uri,))

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.knobs.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": list(SCOPES),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key) for key in (self.key, *self.extra_keys)]}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(self.discovery())

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _authorize(self, request: web.Request) -> web.Response:
        incoming = await _incoming(request)
        try:
            grant = self.server.get_consent_grant(request=incoming, end_user=self.user)
        except OAuth2Error as error:
            response: web.Response = self.server.handle_error_response(incoming, error)
            return response
        answer: web.Response = self.server.create_authorization_response(
            request=grant.request, grant_user=self.user, grant=grant
        )
        return answer

    async def _token(self, request: web.Request) -> web.Response:
        answer: web.Response = self.server.create_token_response(await _incoming(request))
        return answer


async def _incoming(request: web.Request) -> _Incoming:
    form = await request.post() if request.method == "POST" else {}
    return _Incoming(
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        query=request.query,
        form={key: value for key, value in form.items() if isinstance(value, str)},
    )


def _opaque_token(*args: Any, **kwargs: Any) -> str:
    return secrets.token_urlsafe(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

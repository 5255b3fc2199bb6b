"""The HTTP side of OpenID Connect logins: discovery documents and JWKS fetched with aiohttp
and kept for a while in the process (they are public documents, re-fetched when stale), and
the token call. The checks themselves are `sso.oidc`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from sso import oidc

DOCUMENT_SECONDS = 3600.0  # discovery documents and JWKS are re-fetched after an hour
REFETCH_SECONDS = 30.0  # an unknown `kid` re-fetches a JWKS at most this often
_TIMEOUT = aiohttp.ClientTimeout(total=10)
_LIMIT = 1 << 20  # bytes of a discovery document, JWKS or token response


class OidcDirectory:
    def __init__(
        self, session: aiohttp.ClientSession, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.session = session
        self.clock = clock
        self._providers: dict[str, tuple[float, oidc.ProviderMetadata]] = {}
        self._jwks: dict[str, tuple[float, dict[str, Any]]] = {}

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self.session.request(method, url, timeout=_TIMEOUT, **kwargs) as response:
                body = await response.content.read(_LIMIT + 1)
                if len(body) > _LIMIT:
                    raise oidc.OidcError(f"{url} answered more than {_LIMIT} bytes")
                if response.status != 200:
                    raise oidc.OidcError(f"{url} answered {response.status}: {body[:200]!r}")
                return json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise oidc.OidcError(f"could not use {url}: {exc}") from None

    async def provider(self, issuer: str) -> oidc.ProviderMetadata:
        cached = self._providers.get(issuer)
        if cached is not None and self.clock() - cached[0] < DOCUMENT_SECONDS:
            return cached[1]
        document = await self._json("GET", f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        provider = oidc.provider_metadata(document, issuer)
        self._providers[issuer] = (self.clock(), provider)
        return provider

    async def jwks(self, provider: oidc.ProviderMetadata, *, refresh: bool = False) -> Any:
        """The provider's keys; `refresh` fetches them again unless that was just done."""
        cached = self._jwks.get(provider.jwks_uri)
        age = self.clock() - cached[0] if cached else None
        if cached is not None and age is not None:
            fresh = age < DOCUMENT_SECONDS and not (refresh and age >= REFETCH_SECONDS)
            if fresh:
                return cached[1]
        keys = await self._json("GET", provider.jwks_uri)
        self._jwks[provider.jwks_uri] = (self.clock(), keys)
        return keys

    async def exchange(
        self,
        provider: oidc.ProviderMetadata,
        client_id: str,
        client_secret: str,
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> str:
        """The id_token the token endpoint gives for `code`."""
        url, form, headers = oidc.token_request(
            provider, client_id, client_secret, code, redirect_uri, code_verifier
        )
        answer = await self._json("POST", url, data=form, headers=headers)
        id_token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(id_token, str):
            raise oidc.OidcError("the token endpoint gave no id_token")
        return id_token

    async def identity(
        self,
        provider: oidc.ProviderMetadata,
        id_token: str,
        *,
        client_id: str,
        nonce: str,
        now: int,
    ) -> oidc.ExternalClaims:
        """The checked id_token; an unknown key re-fetches the JWKS once (rate-limited)."""
        for refresh in (False, True):
            keys = await self.jwks(provider, refresh=refresh)
            try:
                return oidc.validate_id_token(
                    id_token,
                    keys,
                    issuer=provider.issuer,
                    client_id=client_id,
                    nonce=nonce,
                    now=now,
                )
            except oidc.UnknownKeyError:
                if refresh:
                    raise
        raise AssertionError("unreachable")

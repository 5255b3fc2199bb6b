"""OpenID Connect login through the app on Postgres, against an OpenID provider built from
authlib's server classes: discovery, authorization code with PKCE, the callback, the
id_token checks, just-in-time provisioning and the session; replays and bad tokens refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.auth_api import SESSION_COOKIE
from gateway.sso_api import LOGIN_COOKIE
from tests.conftest import Scim, TenantAccess
from tests.oidc_provider import Knobs, OidcProvider, User, new_key
from tests.test_cli import _cli

HOME = "https://app.corp.example/home"
ADA = User(subject="user-42", email="ada@corp.example", name="Ada Lovelace")
KEY = new_key("key-1")


@dataclass
class Flow:
    client: TestClient[Any, Any]
    provider: OidcProvider
    browser: aiohttp.ClientSession  # talks to the provider
    root: str

    browser_cookie: str = ""  # what the login start left in the browser

    async def callback_url(self) -> str:
        """Start a login and let the provider answer: our callback path with code and state."""
        start = await self.client.get(
            f"{self.root}/login", params={"return_to": HOME}, allow_redirects=False
        )
        assert start.status == 302, await start.text()
        cookie = start.cookies[LOGIN_COOKIE]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
        self.browser_cookie = f"{LOGIN_COOKIE}={cookie.value}"
        async with self.browser.get(start.headers["Location"], allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            back = urlsplit(answer.headers["Location"])
        assert back.path == f"{self.root}/callback"
        return f"{back.path}?{back.query}"

    async def finish(self, url: str, *, same_browser: bool = True) -> Any:
        headers = {"Cookie": self.browser_cookie} if same_browser else {}
        return await self.client.get(url, headers=headers, allow_redirects=False)


@pytest.fixture
async def flow(
    aiohttp_server: Any, database_url: str, client: TestClient[Any, Any], tenant: TenantAccess
) -> AsyncIterator[Flow]:
    provider = OidcProvider(ADA, key=KEY)
    server = await aiohttp_server(provider.app())
    provider.issuer = f"http://127.0.0.1:{server.port}"
    root = f"/sso/{tenant.slug}/ada-idp"
    # The app's public URL in the tests is http://scim.test.
    provider.register("idgate-app", "app secret", f"http://scim.test{root}/callback")
    assert (await _cli(database_url, "return-url", "add", tenant.slug, HOME)).exit_code == 0
    added = await _cli(
        database_url, "connection", "add", tenant.slug, "ada-idp", "--type", "oidc",
        "--issuer", provider.issuer, "--client-id", "idgate-app",
        "--client-secret", "app secret",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    async with aiohttp.ClientSession() as browser:
        yield Flow(client, provider, browser, root)


async def test_login_creates_the_user_and_a_session(flow: Flow, scim: Scim) -> None:
    done = await flow.finish(await flow.callback_url())
    assert done.status == 302, await done.text()
    assert done.headers["Location"] == HOME
    cookie = done.cookies[SESSION_COOKIE]
    verified = await flow.client.get(
        "/auth/verify", headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}"}
    )
    assert verified.status == 200
    assert verified.headers["X-Idgate-Email"] == "ada@corp.example"
    _, page, _ = await scim.get("/Users", params={"filter": 'userName eq "ada@corp.example"'})
    (ada,) = page["Resources"]
    assert verified.headers["X-Idgate-User"] == ada["id"]
    assert ada["displayName"] == "Ada Lovelace"
    # A second login is the same user.
    again = await flow.finish(await flow.callback_url())
    assert again.status == 302
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 1


async def test_a_callback_is_used_once(flow: Flow) -> None:
    url = await flow.callback_url()
    elsewhere = await flow.finish(url, same_browser=False)  # login CSRF: not this browser's
    assert elsewhere.status == 400 and "another browser" in await elsewhere.text()
    assert (await flow.finish(url)).status == 302
    replayed = await flow.finish(url)
    assert replayed.status == 400 and SESSION_COOKIE not in replayed.cookies
    forged = await flow.client.get(f"{flow.root}/callback?code=x&state=made-up")
    assert forged.status == 400


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        (Knobs(audience=["another-client"]), "aud claim"),
        (Knobs(audience=["another-client"], azp="idgate-app"), "aud claim"),
        (Knobs(nonce="not-the-one-sent"), "nonce"),
        (Knobs(id_token_issuer="https://evil.example"), "iss claim"),
        (Knobs(signing_key=new_key("key-1")), "bad_signature"),  # the published kid, other key
        (Knobs(forge="none"), "signed with &#x27;none&#x27;"),
        (Knobs(forge="HS256"), "signed with &#x27;HS256&#x27;"),
    ],
    ids=["aud", "aud-with-azp", "nonce", "iss", "signature", "alg-none", "hs256"],
)
async def test_bad_id_tokens_are_refused(flow: Flow, scim: Scim, knobs: Knobs, reason: str) -> None:
    flow.provider.knobs = knobs
    refused = await flow.finish(await flow.callback_url())
    assert refused.status == 403 and SESSION_COOKIE not in refused.cookies
    assert reason in await refused.text()
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 0

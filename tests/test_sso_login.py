"""SAML login through the app on Postgres, answered by a real IdP (pysaml2, signing through
xmlsec1): the redirect, the ACS, just-in-time provisioning, the session seen by
`/auth/verify`, and the refusals (replay, deactivated user, foreign return_to, no JIT)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text as sql

from gateway.app import utc_now
from gateway.auth_api import SESSION_COOKIE
from gateway.sso_api import LOGIN_COOKIE, _adoption_refusal, _vouched_email
from sso.profile import DEFAULT_FIELDS
from storage.sso_store import Account, Connection
from tests.conftest import Scim, TenantAccess, user
from tests.saml_idp import SSO_REDIRECT, KeyPair, TestIdp, idp_xml, key_pair
from tests.test_cli import _cli

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
HOME = "https://app.corp.example/home"


@dataclass
class Login:
    """A tenant's SAML connection and the pysaml2 IdP behind it."""

    client: TestClient[Any, Any]
    tenant: TenantAccess
    name: str
    idp: TestIdp

    @property
    def root(self) -> str:
        return f"/sso/{self.tenant.slug}/{self.name}"

    browser_cookie: str = ""  # what the login start left in the browser

    async def start(self, return_to: str | None = HOME) -> tuple[str, str]:
        """(the IdP redirect URL, its RelayState)."""
        params = {"return_to": return_to} if return_to else {}
        resp = await self.client.get(f"{self.root}/login", params=params, allow_redirects=False)
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
        assert location.startswith(SSO_REDIRECT + "?")
        cookie = resp.cookies[LOGIN_COOKIE]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "None"
        self.browser_cookie = f"{LOGIN_COOKIE}={cookie.value}"
        return location, parse_qs(urlsplit(location).query)["RelayState"][0]

    async def post(
        self, saml_response: str, relay_state: str | None, *, same_browser: bool = True
    ) -> Any:
        form = {"SAMLResponse": saml_response}
        if relay_state is not None:
            form["RelayState"] = relay_state
        headers = {"Cookie": self.browser_cookie} if same_browser and self.browser_cookie else {}
        return await self.client.post(
            f"{self.root}/acs", data=form, headers=headers, allow_redirects=False
        )

    def answer(
        self, location: str, name_id: str, identity: dict[str, list[str]], **kwargs: Any
    ) -> str:
        """The IdP's signed answer to the request in `location` (kwargs: pysaml2's)."""
        return self.idp.answer(
            location, sign_assertion=True, name_id=name_id, identity=identity, **kwargs
        )

    async def login(
        self, name_id: str, identity: dict[str, list[str]], *, return_to: str | None = HOME
    ) -> Any:
        location, relay_state = await self.start(return_to)
        return await self.post(self.answer(location, name_id, identity), relay_state)


async def _connection(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    signing: KeyPair,
    folder: Path,
    name: str,
    *options: str,
) -> Login:
    metadata = folder / f"{name}-idp.xml"
    metadata.write_bytes(idp_xml(signing=(signing,)))
    added = await _cli(
        database_url, "connection", "add", tenant.slug, name, "--type", "saml",
        "--metadata-file", str(metadata), *options,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    # The IdP administrator loads our SP metadata.
    sp = await client.get(f"/sso/{tenant.slug}/{name}/metadata")
    return Login(client, tenant, name, TestIdp(signing, [await sp.text()]))


@pytest.fixture
async def okta(
    database_url: str, client: TestClient[Any, Any], tenant: TenantAccess, tmp_path: Path
) -> Login:
    assert (await _cli(database_url, "return-url", "add", tenant.slug, HOME)).exit_code == 0
    return await _connection(
        database_url, client, tenant, key_pair(tmp_path, "okta"), tmp_path, "okta"
    )


async def _verify(client: TestClient[Any, Any], resp: Any) -> Any:
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    return await client.get("/auth/verify", headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}"})


JANE = {
    f"{CLAIMS}emailaddress": ["jane@corp.example"],
    "firstName": ["Jane"],
    "lastName": ["Doe"],
}


async def test_first_login_creates_the_user_and_a_session(okta: Login, scim: Scim) -> None:
    resp = await okta.login("00u-jane", JANE)
    assert resp.status == 302, await resp.text()
    assert resp.headers["Location"] == HOME
    verified = await _verify(okta.client, resp)
    assert verified.status == 200
    assert verified.headers["X-Idgate-Email"] == "jane@corp.example"
    _, page, _ = await scim.get("/Users", params={"filter": 'userName eq "jane@corp.example"'})
    (jane,) = page["Resources"]
    assert verified.headers["X-Idgate-User"] == jane["id"]
    assert jane["name"] == {"givenName": "Jane", "familyName": "Doe"}
    assert jane["displayName"] == "Jane Doe" and jane["active"] is True

    # The next login finds the same user by (connection, NameID), whatever the e-mail says.
    again = await okta.login("00u-jane", {f"{CLAIMS}emailaddress": ["jane.doe@corp.example"]})
    assert again.status == 302
    assert (await _verify(okta.client, again)).headers["X-Idgate-User"] == jane["id"]
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 1
    # The user this connection created follows the IdP: the new e-mail replaced the old,
    # the name it did not send again was kept.
    (updated,) = page["Resources"]
    assert [e["value"] for e in updated["emails"]] == ["jane.doe@corp.example"]
    assert updated["name"] == {"givenName": "Jane", "familyName": "Doe"}
    assert updated["userName"] == "jane@corp.example"


async def test_keep_profile_leaves_the_user_as_created(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    kept = await _connection(
        database_url, client, tenant, key_pair(tmp_path, "kept"), tmp_path, "kept",
        "--keep-profile",
    )  # fmt: skip
    for email in ("mo@corp.example", "mo.new@corp.example"):
        resp = await kept.login("00u-mo", {"email": [email]}, return_to=None)
        assert resp.status == 200
    _, page, _ = await scim.get("/Users")
    (mo,) = page["Resources"]
    assert [e["value"] for e in mo["emails"]] == ["mo@corp.example"]


async def test_a_login_finishes_only_in_the_browser_that_started_it(okta: Login) -> None:
    location, relay_state = await okta.start()
    answer = okta.answer(location, "00u-nia", {"email": ["nia@corp.example"]})
    # Posted from another browser (login CSRF): refused, and the login is not used up.
    elsewhere = await okta.post(answer, relay_state, same_browser=False)
    assert elsewhere.status == 400 and "another browser" in await elsewhere.text()
    assert (await okta.post(answer, relay_state)).status == 302


async def test_a_used_answer_and_a_used_request_are_refused(okta: Login) -> None:
    location, relay_state = await okta.start()
    answer = okta.answer(location, "00u-bob", {"email": ["bob@corp.example"]})
    assert (await okta.post(answer, relay_state)).status == 302
    replayed = await okta.post(answer, relay_state)
    assert replayed.status == 400 and "already used" in await replayed.text()
    assert SESSION_COOKIE not in replayed.cookies


async def test_a_deactivated_user_is_refused_and_loses_the_session(
    okta: Login, scim: Scim, database_url: str
) -> None:
    first = await okta.login("00u-carl", {"email": ["carl@corp.example"]})
    assert (await _verify(okta.client, first)).status == 200
    _, page, _ = await scim.get("/Users", params={"filter": 'userName eq "carl@corp.example"'})
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    await scim.request("PATCH", f"/Users/{page['Resources'][0]['id']}", off)
    assert (await _verify(okta.client, first)).status == 401
    refused = await okta.login("00u-carl", {"email": ["carl@corp.example"]})
    assert refused.status == 403 and SESSION_COOKIE not in refused.cookies
    # The refusal is in the audit log, about carl, with the reason.
    logged = await _audit(database_url, okta.tenant, "--action", "login.failed")
    assert [(e["actor"], e["target"], e["details"]) for e in logged] == [
        (
            "sso:okta",
            f"user:{page['Resources'][0]['id']}",
            {"connection": "okta", "reason": "user deactivated or blocked", "subject": "00u-carl"},
        )
    ]


async def _audit(database_url: str, tenant: TenantAccess, *args: str) -> list[dict[str, Any]]:
    shown = await _cli(database_url, "audit", tenant.slug, "--json", *args)
    assert shown.exit_code == 0, shown.output
    entries: list[dict[str, Any]] = json.loads(shown.output)
    return entries


async def test_return_to_must_be_one_of_the_tenant_addresses(okta: Login) -> None:
    resp = await okta.client.get(
        f"{okta.root}/login", params={"return_to": "https://evil.example/"}, allow_redirects=False
    )
    assert resp.status == 400
    # Without return_to the login ends on a page of its own.
    done = await okta.login("00u-dee", {"email": ["dee@corp.example"]}, return_to=None)
    assert done.status == 200 and SESSION_COOKIE in done.cookies


async def test_an_invalid_answer_is_refused(okta: Login, tmp_path: Path, database_url: str) -> None:
    location, relay_state = await okta.start()
    # Signed by a key the connection does not know.
    stranger = TestIdp(
        key_pair(tmp_path, "stranger"),
        [await (await okta.client.get(f"{okta.root}/metadata")).text()],
    )
    answer = stranger.answer(
        location, sign_assertion=True, name_id="00u-eve", identity={"email": ["eve@corp.example"]}
    )
    refused = await okta.post(answer, relay_state)
    assert refused.status == 403 and "not valid" in await refused.text()
    (logged,) = await _audit(database_url, okta.tenant)
    assert (logged["action"], logged["target"]) == ("login.failed", "subject:okta/?")
    assert logged["details"]["reason"].startswith("invalid answer: ")


async def test_without_jit_an_unknown_user_is_refused(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    strict = await _connection(
        database_url, client, tenant, key_pair(tmp_path, "strict"), tmp_path, "strict", "--no-jit"
    )
    refused = await strict.login("00u-frank", {"email": ["frank@corp.example"]}, return_to=None)
    assert refused.status == 403
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 0


async def test_an_existing_account_is_not_adopted_by_its_name(okta: Login, scim: Scim) -> None:
    await scim.post("/Users", user("gina@corp.example"))
    refused = await okta.login("00u-gina", {"email": ["gina@corp.example"]})
    assert refused.status == 403
    _, page, _ = await scim.get("/Users")
    assert page["totalResults"] == 1


async def test_idp_initiated_login_only_where_enabled(
    database_url: str, client: TestClient[Any, Any], tenant: TenantAccess, tmp_path: Path
) -> None:
    signing = key_pair(tmp_path, "portal")
    portal = await _connection(
        database_url, client, tenant, signing, tmp_path, "portal", "--idp-initiated"
    )
    # An IdP-initiated answer: no request of ours, no InResponseTo.
    location, _ = await portal.start(return_to=None)
    answer = portal.answer(
        location, "00u-hal", {"email": ["hal@corp.example"]}, in_response_to=None
    )
    accepted = await portal.post(answer, None)
    assert accepted.status == 200 and SESSION_COOKIE in accepted.cookies
    replay = await portal.post(answer, None)
    assert replay.status == 403 and "used before" in await replay.text()
    # The same kind of answer to a connection that does not allow it.
    closed = await _connection(
        database_url, client, tenant, key_pair(tmp_path, "closed"), tmp_path, "closed"
    )
    location, _ = await closed.start(return_to=None)
    unsolicited = closed.answer(
        location, "00u-ivy", {"email": ["ivy@corp.example"]}, in_response_to=None
    )
    refused = await closed.post(unsolicited, None)
    assert refused.status == 400 and "start here" in await refused.text()
    shown = json.loads(
        (await _cli(database_url, "connection", "show", tenant.slug, "portal", "--json")).output
    )
    assert shown["idp_initiated"] is True


async def test_home_realm_discovery_by_email_domain(
    database_url: str, okta: Login, tmp_path: Path
) -> None:
    client, slug = okta.client, okta.tenant.slug
    unknown = await client.get("/sso/login", params={"email": "x@nowhere.example"})
    assert unknown.status == 404
    # Domains are unique across tenants (and tests share a database): one of this test's own.
    domain = f"{slug}.example"
    assert (await _cli(database_url, "domain", "add", slug, domain)).exit_code == 0
    one = await client.get(
        "/sso/login",
        params={"email": f"Jane@{domain.upper()}", "return_to": HOME},
        allow_redirects=False,
    )
    assert one.status == 302
    target = urlsplit(one.headers["Location"])
    assert target.path == f"/sso/{slug}/okta/login"
    assert parse_qs(target.query) == {"return_to": [HOME]}
    # Following it starts the login at the IdP.
    started = await client.get(one.headers["Location"], allow_redirects=False)
    assert started.status == 302 and started.headers["Location"].startswith(SSO_REDIRECT)

    await _connection(
        database_url, client, okta.tenant, key_pair(tmp_path, "second"), tmp_path, "second"
    )
    several = await client.get("/sso/login", params={"email": f"jane@{domain}"})
    page = await several.text()
    assert several.status == 200
    assert f'href="/sso/{slug}/okta/login"' in page and f'href="/sso/{slug}/second/login"' in page


async def test_the_tenant_sets_its_own_session_limits(
    database_url: str, okta: Login, engine: Any
) -> None:
    slug = okta.tenant.slug
    set_ = await _cli(
        database_url, "tenant", "set", slug,
        "--session-idle-minutes", "15", "--session-lifetime-hours", "2",
    )  # fmt: skip
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output) == {"session_idle_minutes": 15, "session_lifetime_hours": 2}
    resp = await okta.login("00u-kim", {"email": ["kim@corp.example"]})
    assert resp.status == 302
    assert resp.cookies[SESSION_COOKIE]["max-age"] == str(2 * 3600)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sql(
                    "SELECT idle_seconds, expires_at - created_at AS lifetime FROM sessions"
                    " WHERE tenant_id = :t"
                ),
                {"t": okta.tenant.tenant.id},
            )
        ).one()
    assert row.idle_seconds == 15 * 60 and row.lifetime == timedelta(hours=2)
    # 0 goes back to the gateway's defaults.
    reset = await _cli(database_url, "tenant", "set", slug, "--session-idle-minutes", "0")
    assert json.loads(reset.output) == {"session_lifetime_hours": 2}


async def test_an_encrypted_assertion_logs_in(okta: Login, scim: Scim) -> None:
    """The IdP encrypts to the key in our SP metadata; the ACS decrypts with the connection's
    private key."""
    location, relay_state = await okta.start()
    answer = okta.answer(
        location, "00u-lea", {"email": ["lea@corp.example"]}, encrypt_assertion=True
    )
    assert b"EncryptedAssertion" in base64.b64decode(answer)
    resp = await okta.post(answer, relay_state)
    assert resp.status == 302, await resp.text()
    assert (await _verify(okta.client, resp)).headers["X-Idgate-Email"] == "lea@corp.example"


ROLE_RULES = {
    # Okta sends the groups in an attribute this tenant named `teams`.
    "fields": {"okta": {"preset": "okta", "groups": "teams"}},
    "rules": [
        {
            "name": "support",
            "when": [{"group": "Support Team"}],
            "grant": {"roles": ["chat-operator"], "projects": {"Helpdesk": ["member"]}},
        },
        {"name": "admins", "when": [{"group": "Admins"}], "grant": {"roles": ["admin"]}},
    ],
}


async def test_mapped_roles_reach_the_product_and_follow_scim_at_once(
    okta: Login, scim: Scim, database_url: str, tmp_path: Path
) -> None:
    slug = okta.tenant.slug
    for args in (("role", "add", slug, "chat-operator"), ("project", "add", slug, "Helpdesk")):
        assert (await _cli(database_url, *args)).exit_code == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps(ROLE_RULES))  # JSON is YAML
    assert (await _cli(database_url, "mapping", "set", slug, str(rules))).exit_code == 0

    resp = await okta.login("00u-jane", {**JANE, "teams": ["Support Team", "Everyone"]})
    assert resp.status == 302, await resp.text()
    cookie = {"Cookie": f"{SESSION_COOKIE}={resp.cookies[SESSION_COOKIE].value}"}

    async def verified() -> Any:
        answer = await okta.client.get("/auth/verify", headers=cookie)
        assert answer.status == 200
        return answer.headers

    headers = await verified()
    assert headers["X-Idgate-Roles"] == "chat-operator"
    assert headers["X-Idgate-Project-Roles"] == "Helpdesk:member"
    token = await (await okta.client.get("/auth/token", headers=cookie)).json()
    payload = token["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["roles"], claims["projects"]) == (["chat-operator"], {"Helpdesk": ["member"]})

    # IT puts jane in the SCIM group Admins: the same session sees admin on its next check.
    jane_id = headers["X-Idgate-User"]
    status, admins, _ = await scim.post(
        "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Admins", "members": [{"value": jane_id}]},
    )  # fmt: skip
    assert status == 201
    assert (await verified())["X-Idgate-Roles"] == "admin,chat-operator"
    # ... and takes her out: gone at once.
    remove = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "remove", "path": f'members[value eq "{jane_id}"]'}],
    }
    assert (await scim.request("PATCH", f"/Groups/{admins['id']}", remove))[0] == 204
    assert (await verified())["X-Idgate-Roles"] == "chat-operator"

    # A role given by hand stays when the next login no longer brings the group.
    granted = await _cli(database_url, "role", "grant", slug, jane_id, "member")
    assert granted.exit_code == 0, granted.output
    again = await okta.login("00u-jane", {**JANE, "teams": ["Everyone"]})
    cookie = {"Cookie": f"{SESSION_COOKIE}={again.cookies[SESSION_COOKIE].value}"}
    headers = await verified()
    assert headers["X-Idgate-Roles"] == "member"
    assert headers["X-Idgate-Project-Roles"] == ""


async def test_a_connection_trusting_the_email_links_the_account_no_other_manages(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    slug = tenant.slug
    assert (await _cli(database_url, "return-url", "add", slug, HOME)).exit_code == 0
    trusting = await _connection(
        database_url, client, tenant, key_pair(tmp_path, "trusting"), tmp_path, "trusting",
        "--trust-email", "--no-jit",
    )  # fmt: skip
    await _connection(database_url, client, tenant, key_pair(tmp_path, "entra"), tmp_path, "entra")
    # Accounts a SCIM client pushed with a token of no connection, and one pushed for entra.
    _, kim, _ = await scim.post("/Users", user("kim@corp.example"))
    _, lee, _ = await scim.post("/Users", user("lee@corp.example"))
    made = await _cli(database_url, "token", "create", slug, "--connection", "entra", "--json")
    assert made.exit_code == 0, made.output
    entra_scim = Scim(client, TenantAccess(tenant.tenant, json.loads(made.output)["token"], ""))
    _, max_, _ = await entra_scim.post("/Users", user("max@corp.example"))

    # kim: linked by e-mail (case aside), then found by subject like any linked user.
    first = await trusting.login("00u-kim", {"email": ["Kim@Corp.Example"]})
    assert first.status == 302, await first.text()
    assert (await _verify(client, first)).headers["X-Idgate-User"] == kim["id"]
    again = await trusting.login("00u-kim", {"email": ["kim.new@corp.example"]})
    assert (await _verify(client, again)).headers["X-Idgate-User"] == kim["id"]
    # Another subject of the same connection with kim's e-mail does not get kim.
    assert (await trusting.login("00u-kim-2", {"email": ["kim@corp.example"]})).status == 403
    # max belongs to entra's directory: refused.
    assert (await trusting.login("00u-max", {"email": ["max@corp.example"]})).status == 403
    # A deactivated account is not taken over.
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    await scim.request("PATCH", f"/Users/{lee['id']}", off)
    assert (await trusting.login("00u-lee", {"email": ["lee@corp.example"]})).status == 403

    linked = await _audit(database_url, tenant, "--action", "identity.linked")
    assert [(e["target"], e["details"]["by"]) for e in linked] == [(f"user:{kim['id']}", "email")]
    reasons = [
        e["details"]["reason"] for e in await _audit(database_url, tenant, "--action", "login")
    ]
    assert reasons == [
        "user deactivated or blocked",
        "the account is managed by connection 'entra'",
        "the account is linked to another identity of this connection",
    ]
    assert max_["id"] != kim["id"]


def test_adoption_needs_one_account_and_an_email_the_provider_vouches_for() -> None:
    okta = Connection(uuid.uuid4(), uuid.uuid4(), "okta", "oidc", {}, {}, True, False, utc_now())
    free = Account(uuid.uuid4(), True, False, None, None)
    assert _adoption_refusal([free], okta) is None
    assert "several" in str(_adoption_refusal([free, free], okta))
    own = Account(uuid.uuid4(), True, False, None, "okta")  # pushed with okta's own token
    assert _adoption_refusal([own], okta) is None
    # OIDC: only an `email` the provider says it verified.
    mail = "kim@corp.example"
    assert _vouched_email(okta, {"email": mail, "email_verified": True}, DEFAULT_FIELDS) == mail
    for claims in (
        {"email": mail},
        {"email": mail, "email_verified": False},
        {"email": mail, "email_verified": "false"},
        {"preferred_username": mail, "email_verified": True},
    ):
        assert _vouched_email(okta, claims, DEFAULT_FIELDS) is None
    # SAML: an e-mail attribute, never a UPN or user name.
    saml = Connection(uuid.uuid4(), uuid.uuid4(), "s", "saml", {}, {}, True, False, utc_now())
    assert _vouched_email(saml, {"mail": [mail]}, DEFAULT_FIELDS) == mail
    upn = {f"{CLAIMS}upn": [mail], "preferred_username": [mail]}
    assert _vouched_email(saml, upn, DEFAULT_FIELDS) is None

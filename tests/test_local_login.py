"""The bootstrap owner and the local login, through the app on PostgreSQL: `idgate owner
create` prints a link, the link's pages set a password and enrol an authenticator, the
session is the owner's; then the login page (e-mail, password, TOTP code): refusals that
all look alike, the lockout after five and the admin unlock, replayed codes, deactivated
users, and forms without their token."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import passwords
from gateway.app import utc_now
from gateway.auth_api import SESSION_COOKIE
from gateway.credentials import new_invitation
from gateway.forms import CSP, CSRF_COOKIE
from sso import totp
from storage.invitation_store import Access, InvitationStore, Invitee
from tests.admin_support import audit_entries, call, key_headers, person
from tests.conftest import Scim, TenantAccess, table_snapshot
from tests.test_cli import _cli

Client = TestClient[Any, Any]
PASSWORD = "correct horse battery staple"
REFUSED = "The e-mail address, password or code is not right"


@dataclass
class Browser:
    """Cookies kept as a browser keeps them (the test client does not send Secure cookies
    over plain HTTP), sent with every request."""

    client: Client
    cookies: dict[str, str] = field(default_factory=dict)

    def _keep(self, resp: Any) -> None:
        for name, morsel in resp.cookies.items():
            if morsel.value and morsel["max-age"] != "0":
                self.cookies[name] = morsel.value
            else:
                self.cookies.pop(name, None)

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, path: str, **kwargs: Any) -> tuple[Any, str]:
        resp = await self.client.get(path, headers=self.headers, allow_redirects=False, **kwargs)
        self._keep(resp)
        return resp, await resp.text()

    async def post(self, path: str, data: dict[str, str]) -> tuple[Any, str]:
        resp = await self.client.post(path, data=data, headers=self.headers, allow_redirects=False)
        self._keep(resp)
        return resp, await resp.text()

    def token(self) -> str:
        return self.cookies[CSRF_COOKIE]

    @property
    def session(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.cookies[SESSION_COOKIE]}"}


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def totp_secret(page: str) -> str:
    found = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page)
    assert found, page
    return found.group(1).replace(" ", "")


def code(secret: str, steps_ahead: int = 0) -> str:
    return totp.code_at(totp.secret_key(secret), time.time() + 30 * steps_ahead)


async def fresh_code(engine: AsyncEngine, user_id: uuid.UUID, secret: str) -> str:
    """A code of a step after the last one the user's login accepted (waiting for the
    clock when the next usable step is still ahead of the window)."""
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                text("SELECT totp_last_step FROM local_credentials WHERE user_id = :u"),
                {"u": user_id},
            )
        ).scalar_one()
    while True:
        now = totp.time_step(time.time())
        step = max(now - 1, (last or 0) + 1)
        if step <= now + 1:
            return totp.hotp(totp.secret_key(secret), step)
        await asyncio.sleep(1)


def labelled(page: str) -> bool:
    """Whether every visible input has a label naming its id."""
    inputs = re.findall(r"<input ([^>]*)>", page)
    visible = [i for i in inputs if 'type="hidden"' not in i]
    ids = [re.search(r'id="([^"]+)"', i) for i in visible]
    return bool(visible) and all(m and f'<label for="{m.group(1)}">' in page for m in ids)


def link_path(output: str) -> str:
    found = re.search(r"https://idgate\.example(/invite/idgi_[\w-]+)", output)
    assert found, output
    return found.group(1)


@dataclass
class Enrolled:
    user_id: uuid.UUID
    email: str
    secret: str
    browser: Browser


async def enrol(
    client: Client, path: str, email: str, engine: AsyncEngine, tenant: TenantAccess
) -> Enrolled:
    """Follow an invitation link in a tenant without SSO: password, then the code."""
    browser = Browser(client)
    resp, page = await browser.get(path)
    assert resp.status == 200, page
    data = {"csrf": form_token(page), "step": "password", "password": PASSWORD}
    resp, page = await browser.post(path, data | {"confirm": PASSWORD})
    assert resp.status == 200, page
    secret = totp_secret(page)
    resp, page = await browser.post(path, {"csrf": browser.token(), "step": "code",
                                           "code": code(secret)})  # fmt: skip
    assert resp.status == 200, page
    assert SESSION_COOKIE in browser.cookies
    return Enrolled(await stored_user(engine, tenant, email), email, secret, browser)


async def owner(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> Enrolled:
    made = await _cli(database_url, "owner", "create", tenant.slug, "olga@corp.example")
    assert made.exit_code == 0, made.output
    return await enrol(client, link_path(made.output), "olga@corp.example", engine, tenant)


async def login(
    client: Client, slug: str, email: str, password: str, code: str, browser: Browser | None = None
) -> tuple[Any, str, Browser]:
    browser = browser or Browser(client)
    resp, page = await browser.get(f"/login/{slug}")
    assert resp.status == 200, page
    data = {"csrf": form_token(page), "email": email, "password": password, "code": code}
    resp, page = await browser.post(f"/login/{slug}", data)
    return resp, page, browser


async def credentials(engine: AsyncEngine, user_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT failures, locked_at, totp_last_step, password_hash, totp_confirmed "
                     "FROM local_credentials WHERE user_id = :u"),
                {"u": user_id},
            )
        ).one_or_none()  # fmt: skip


# --- the bootstrap owner ------------------------------------------------------------------------


async def test_bootstrap_owner_from_the_cli_to_an_owner_session(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    made = await _cli(
        database_url, "owner", "create", tenant.slug, "Olga@Corp.example", "--name", "Olga O"
    )
    assert made.exit_code == 0, made.output
    path = link_path(made.output)
    assert "shown only now" in made.output
    browser = Browser(client)

    # The link: a password form, with the e-mail invited, under a strict policy.
    resp, page = await browser.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Security-Policy"] == CSP
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "olga@corp.example" in page and labelled(page)
    cookie = resp.cookies[CSRF_COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    assert form_token(page) == cookie.value

    # The password, then the authenticator: the secret and its otpauth URI.
    data = {"csrf": form_token(page), "step": "password", "password": PASSWORD}
    resp, page = await browser.post(path, data | {"confirm": PASSWORD})
    assert resp.status == 200, page
    secret = totp_secret(page)
    uri = re.search(r'<code id="otpauth">([^<]+)</code>', page)
    assert uri and f"secret={secret}" in uri.group(1) and uri.group(1).startswith("otpauth://")
    assert labelled(page)
    stored = await stored_user(engine, tenant, "olga@corp.example")
    row = await credentials(engine, stored)
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    assert row.totp_confirmed is False
    assert await _status(client, engine, tenant) == "pending"

    # The code accepts the invitation and starts a session.
    resp, page = await browser.post(path, {"csrf": browser.token(), "step": "code",
                                           "code": code(secret)})  # fmt: skip
    assert resp.status == 200, page
    verified = await client.get("/auth/verify", headers=browser.session)
    assert verified.status == 200
    assert verified.headers["X-Idgate-Roles"] == "owner"
    assert verified.headers["X-Idgate-Email"] == "olga@corp.example"
    assert verified.headers["X-Idgate-User"] == str(stored)
    me = await client.get("/api/v1/me", headers=browser.session)
    body = await me.json()
    assert [(o["slug"], o["level"]) for o in body["organisations"]] == [(tenant.slug, "owner")]
    assert await _status(client, engine, tenant) == "accepted"
    (accepted,) = await audit_entries(engine, f"user:{stored}", "invitation.accepted")
    assert accepted.details["method"] == "password"

    # The link is used up: 410, and nothing changes.
    before = await table_snapshot(engine, tenant.tenant.id)
    resp, page = await Browser(client).get(path)
    assert resp.status == 410 and "no longer valid" in page
    assert await table_snapshot(engine, tenant.tenant.id) == before

    # And the owner signs in again with the login page.
    fresh = await fresh_code(engine, stored, secret)
    resp, page, again = await login(client, tenant.slug, "OLGA@corp.example", PASSWORD, fresh)
    assert resp.status == 200, page
    assert (await client.get("/auth/verify", headers=again.session)).status == 200


async def stored_user(engine: AsyncEngine, tenant: TenantAccess, email: str) -> uuid.UUID:
    async with engine.connect() as conn:
        user_id: uuid.UUID = (
            await conn.execute(
                text("SELECT id FROM users WHERE tenant_id = :t AND user_name = :e"),
                {"t": tenant.tenant.id, "e": email},
            )
        ).scalar_one()
        return user_id


async def _status(client: Client, engine: AsyncEngine, tenant: TenantAccess) -> str:
    headers = await key_headers(engine, tenant, "admin:read")
    status, body = await call(client, "GET", f"/orgs/{tenant.slug}/invitations", headers)
    assert status == 200, body
    (invitation,) = body["data"]
    return str(invitation["status"])


async def test_owner_create_refuses_a_taken_address_and_a_bad_one(
    database_url: str, tenant: TenantAccess
) -> None:
    first = await _cli(database_url, "owner", "create", tenant.slug, "a@corp.example")
    assert first.exit_code == 0, first.output
    again = await _cli(database_url, "owner", "create", tenant.slug, "A@corp.example")
    assert again.exit_code == 1 and "already a user" in again.output
    bad = await _cli(database_url, "owner", "create", tenant.slug, "not-an-address")
    assert bad.exit_code == 1 and "not an e-mail address" in bad.output
    unknown = await _cli(database_url, "owner", "create", "no-such-tenant", "b@corp.example")
    assert unknown.exit_code == 1 and "no tenant" in unknown.output


@pytest.mark.parametrize(
    ("password", "confirm", "problem"),
    [
        ("short pass", "short pass", "at least 12 characters"),
        ("Olga@Corp.Example", "Olga@Corp.Example", "not be your e-mail address"),
        (PASSWORD, PASSWORD + "!", "differ"),
    ],
    ids=["too-short", "the-email", "mismatch"],
)
async def test_a_weak_or_mistyped_password_is_refused_and_nothing_is_stored(
    database_url: str,
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    password: str,
    confirm: str,
    problem: str,
) -> None:
    made = await _cli(database_url, "owner", "create", tenant.slug, "olga@corp.example")
    path = link_path(made.output)
    browser = Browser(client)
    _, page = await browser.get(path)
    data = {"csrf": form_token(page), "step": "password", "password": password, "confirm": confirm}
    resp, page = await browser.post(path, data)
    assert resp.status == 400 and problem in page
    assert await credentials(engine, await stored_user(engine, tenant, "olga@corp.example")) is None


async def test_a_wrong_enrolment_code_leaves_the_invitation_pending(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    made = await _cli(database_url, "owner", "create", tenant.slug, "olga@corp.example")
    path = link_path(made.output)
    browser = Browser(client)
    _, page = await browser.get(path)
    data = {"csrf": form_token(page), "step": "password", "password": PASSWORD}
    _, page = await browser.post(path, data | {"confirm": PASSWORD})
    secret = totp_secret(page)
    wrong = code(secret, 5)  # a real code of the secret, far outside the window
    resp, page = await browser.post(path, {"csrf": browser.token(), "step": "code", "code": wrong})
    assert resp.status == 400 and "not right" in page and totp_secret(page) == secret
    assert SESSION_COOKIE not in browser.cookies
    assert await _status(client, engine, tenant) == "pending"
    # The same enrolment still works with the right code.
    resp, _ = await browser.post(path, {"csrf": browser.token(), "step": "code",
                                        "code": code(secret)})  # fmt: skip
    assert resp.status == 200 and SESSION_COOKIE in browser.cookies


# --- invitations that cannot be accepted ------------------------------------------------------


async def test_an_expired_or_unknown_link_changes_nothing(
    client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    invitation_id, secret, secret_hash = new_invitation()
    now = utc_now()
    person_ = Invitee("late@corp.example", None, Access(), invitation_id, secret_hash)
    await InvitationStore(engine).invite(
        tenant.tenant.id, [person_], now - timedelta(days=8), now - timedelta(days=1), "test"
    )
    before = await table_snapshot(engine, tenant.tenant.id)
    browser = Browser(client)
    resp, page = await browser.get(f"/invite/{secret}")
    assert resp.status == 410 and "expired" in page
    assert resp.headers["Content-Security-Policy"] == CSP
    # A post with a valid form token is refused the same way.
    browser.cookies[CSRF_COOKIE] = "t" * 32
    data = {"csrf": "t" * 32, "step": "password", "password": PASSWORD, "confirm": PASSWORD}
    resp, _ = await browser.post(f"/invite/{secret}", data)
    assert resp.status == 410
    resp, page = await browser.get("/invite/idgi_no-such-link")
    assert resp.status == 404 and "not valid" in page
    assert await table_snapshot(engine, tenant.tenant.id) == before
    assert await credentials(engine, await stored_user(engine, tenant, "late@corp.example")) is None


async def test_a_form_without_its_token_is_refused_and_changes_nothing(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    made = await _cli(database_url, "owner", "create", tenant.slug, "olga@corp.example")
    path = link_path(made.output)
    browser = Browser(client)
    _, page = await browser.get(path)
    token = form_token(page)
    before = await table_snapshot(engine, tenant.tenant.id)
    password = {"step": "password", "password": PASSWORD, "confirm": PASSWORD}
    # No token in the form; a token that is not the cookie's; the cookie missing.
    resp, page = await browser.post(path, password)
    assert resp.status == 403 and "expired" in page
    resp, _ = await browser.post(path, password | {"csrf": "x" * len(token)})
    assert resp.status == 403
    cookieless = Browser(client)
    resp, _ = await cookieless.post(path, password | {"csrf": token})
    assert resp.status == 403
    # The login form too.
    resp, page = await Browser(client).post(
        f"/login/{tenant.slug}", {"email": "olga@corp.example", "password": PASSWORD, "code": "1"}
    )
    assert resp.status == 403 and REFUSED not in page
    assert await table_snapshot(engine, tenant.tenant.id) == before
    assert await credentials(engine, await stored_user(engine, tenant, "olga@corp.example")) is None


# --- the login page ----------------------------------------------------------------------------


async def test_wrong_code_wrong_password_and_unknown_user_look_the_same(
    database_url: str,
    client: Client,
    engine: AsyncEngine,
    tenant: TenantAccess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    olga = await owner(database_url, client, engine, tenant)
    browser = Browser(client)
    resp, page = await browser.get(f"/login/{tenant.slug}")
    assert resp.status == 200 and labelled(page)
    assert resp.headers["Content-Security-Policy"] == CSP
    token = form_token(page)
    wrong_code = code(olga.secret, 6)
    hashed: list[str] = []
    real_verify = passwords._verify

    def counting(stored: str, password: str) -> bool:
        hashed.append(password)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "_verify", counting)
    answers = []
    for email, password, code_ in (
        ("olga@corp.example", PASSWORD, wrong_code),
        ("olga@corp.example", "not the password", code(olga.secret)),
        ("nobody@corp.example", PASSWORD, code(olga.secret)),
    ):
        data = {"csrf": token, "email": email, "password": password, "code": code_}
        resp, page = await browser.post(f"/login/{tenant.slug}", data)
        varying = ("x-request-id", "date")
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in varying}
        answers.append((resp.status, page, headers))
    assert answers[0][0] == 403 and REFUSED in answers[0][1]
    assert answers[0] == answers[1] == answers[2]
    assert "Set-Cookie" not in answers[0][2]
    # Every attempt checked a password, the unknown user's against a dummy hash.
    assert hashed == [PASSWORD, "not the password", PASSWORD]
    # The audit log knows the reasons; the two about Olga count in her activity.
    failed = await audit_entries(engine, f"user:{olga.user_id}", "login.failed")
    assert [(e.actor, e.details["reason"]) for e in failed] == [
        ("local", "wrong_code"),
        ("local", "wrong_password"),
    ]
    (unknown,) = await audit_entries(engine, "local:nobody@corp.example", "login.failed")
    assert unknown.details["reason"] == "unknown_user" and unknown.details["request_id"]
    async with engine.connect() as conn:
        activity = (
            await conn.execute(
                text("SELECT failed_logins FROM user_activity WHERE user_id = :u"),
                {"u": olga.user_id},
            )
        ).scalar_one()
    assert activity == 2
    assert (await credentials(engine, olga.user_id)).failures == 2


async def test_five_failures_lock_until_an_admin_unlocks(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    admin_id, admin = await person(engine, scim, tenant, "adam@corp.example", "admin")
    invite = {"email": "mia@corp.example", "roles": ["member"]}
    status, sent = await call(client, "POST", f"/orgs/{tenant.slug}/invitations", admin, invite)
    assert status == 201, sent
    mia = await enrol(client, urlsplit(sent["link"]).path, "mia@corp.example", engine, tenant)
    for attempt in range(1, 6):
        resp, page, _ = await login(client, tenant.slug, mia.email, "wrong password!", "000000")
        assert resp.status == 403 and REFUSED in page
        row = await credentials(engine, mia.user_id)
        assert row.failures == attempt
        assert (row.locked_at is not None) is (attempt == 5)
    (locked,) = await audit_entries(engine, f"user:{mia.user_id}", "local_login.locked")
    assert locked.details == {"failures": 5}
    # Locked: the right password and a right code are refused, with the same page, and the
    # code is not used up.
    good = await fresh_code(engine, mia.user_id, mia.secret)
    last_step = (await credentials(engine, mia.user_id)).totp_last_step
    resp, page, _ = await login(client, tenant.slug, mia.email, PASSWORD, good)
    assert resp.status == 403 and REFUSED in page
    failed = await audit_entries(engine, f"user:{mia.user_id}", "login.failed")
    reasons = [e.details["reason"] for e in failed]
    assert reasons == ["wrong_password"] * 5 + ["locked"]
    assert (await credentials(engine, mia.user_id)).totp_last_step == last_step

    # A member cannot unlock; an admin can.
    _, member = await person(engine, scim, tenant, "max@corp.example", "member")
    unlock = f"/orgs/{tenant.slug}/users/{mia.user_id}/unlock"
    status, body = await call(client, "POST", unlock, member)
    assert status == 403, body
    status, body = await call(client, "POST", unlock, admin)
    assert status == 200, body
    assert body == {"user_id": str(mia.user_id), "was_locked": True}
    row = await credentials(engine, mia.user_id)
    assert (row.failures, row.locked_at) == (0, None)
    (unlocked,) = await audit_entries(engine, f"user:{mia.user_id}", "local_login.unlocked")
    assert unlocked.actor == f"user:{admin_id}" and unlocked.details["was_locked"] is True

    resp, page, browser = await login(client, tenant.slug, mia.email, PASSWORD, good)
    assert resp.status == 200, page
    assert (await client.get("/auth/verify", headers=browser.session)).status == 200
    # A user with no local login has nothing to unlock.
    nothing = f"/orgs/{tenant.slug}/users/{admin_id}/unlock"
    status, body = await call(client, "POST", nothing, admin)
    assert status == 404 and "local login" in body["detail"]


async def test_only_an_owner_unlocks_an_owner(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    olga = await owner(database_url, client, engine, tenant)
    for _ in range(5):
        await login(client, tenant.slug, olga.email, "wrong password!", "000000")
    assert (await credentials(engine, olga.user_id)).locked_at is not None
    unlock = f"/orgs/{tenant.slug}/users/{olga.user_id}/unlock"
    status, body = await call(client, "POST", unlock, await key_headers(engine, tenant, "admin"))
    assert status == 403 and "owner" in body["detail"]
    assert (await credentials(engine, olga.user_id)).locked_at is not None
    status, body = await call(client, "POST", unlock, await key_headers(engine, tenant, "owner"))
    assert status == 200 and body["was_locked"] is True
    assert (await credentials(engine, olga.user_id)).locked_at is None


async def test_a_success_resets_the_count_of_failures(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    olga = await owner(database_url, client, engine, tenant)
    for _ in range(4):
        await login(client, tenant.slug, olga.email, "wrong password!", "000000")
    fresh = await fresh_code(engine, olga.user_id, olga.secret)
    resp, _, _ = await login(client, tenant.slug, olga.email, PASSWORD, fresh)
    assert resp.status == 200
    assert (await credentials(engine, olga.user_id)).failures == 0
    resp, _, _ = await login(client, tenant.slug, olga.email, "wrong password!", "000000")
    row = await credentials(engine, olga.user_id)
    assert (row.failures, row.locked_at) == (1, None)


async def test_a_code_once_accepted_is_refused_after(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    olga = await owner(database_url, client, engine, tenant)
    fresh = await fresh_code(engine, olga.user_id, olga.secret)
    resp, _, browser = await login(client, tenant.slug, olga.email, PASSWORD, fresh)
    assert resp.status == 200
    await client.post("/auth/logout", headers=browser.session)
    assert (await client.get("/auth/verify", headers=browser.session)).status == 401
    resp, page, again = await login(client, tenant.slug, olga.email, PASSWORD, fresh)
    assert resp.status == 403 and REFUSED in page and SESSION_COOKIE not in again.cookies
    # The enrolment's code is older still: refused too.
    enrolment = code(olga.secret)
    resp, _, _ = await login(client, tenant.slug, olga.email, PASSWORD, enrolment)
    assert resp.status == 403
    failed = await audit_entries(engine, f"user:{olga.user_id}", "login.failed")
    reasons = [e.details["reason"] for e in failed]
    assert reasons[0] == "code_replayed"


async def test_a_blocked_or_deactivated_user_is_refused(
    database_url: str, client: Client, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    olga = await owner(database_url, client, engine, tenant)
    blocked = await _cli(database_url, "user", "block", tenant.slug, olga.email, "--reason", "left")
    assert blocked.exit_code == 0, blocked.output
    assert (await client.get("/auth/verify", headers=olga.browser.session)).status == 401
    fresh = await fresh_code(engine, olga.user_id, olga.secret)
    resp, page, browser = await login(client, tenant.slug, olga.email, PASSWORD, fresh)
    assert resp.status == 403 and REFUSED in page and SESSION_COOKIE not in browser.cookies
    (refused,) = await audit_entries(engine, f"user:{olga.user_id}", "login.failed")
    assert refused.details["reason"] == "user_inactive"
    assert (await _cli(database_url, "user", "unblock", tenant.slug, olga.email)).exit_code == 0
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE users SET active = false WHERE id = :u"),
                           {"u": olga.user_id})  # fmt: skip
    fresh = await fresh_code(engine, olga.user_id, olga.secret)
    resp, _, _ = await login(client, tenant.slug, olga.email, PASSWORD, fresh)
    assert resp.status == 403


async def test_the_login_page_of_an_unknown_tenant_is_404(client: Client) -> None:
    resp = await client.get("/login/no-such-tenant")
    assert resp.status == 404 and "Unknown organisation" in await resp.text()

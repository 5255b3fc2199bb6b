"""How people get in without SSO, or before it: accepting an invitation, and the local
login (e-mail, password and a TOTP code) of a tenant that has no identity provider yet.

`GET/POST /invite/SECRET` answers an open invitation (404 for a link that never existed,
410 for one accepted, revoked or expired; neither changes anything):

- in a tenant with SSO connections, the page offers to sign in with each; that login
  carries the invitation (`gateway.sso_api`), and `accept_through_sso` accepts it when the
  e-mail the IdP vouches for is the one invited;
- in a tenant without, the person chooses a password (argon2id, `gateway.passwords`), then
  adds the TOTP secret shown to an authenticator app and confirms it with a code. The
  invitation is accepted with that code, and a session starts.

`GET/POST /login/TENANT` is the local login. Every refusal, whatever its reason (no such
user, wrong password or code, a code used before, a locked or deactivated account), is the
same page: the reason goes only to the audit log (`login.failed`, about the user when there
is one, which counts in their activity). Five refusals in a row lock the local login until
an admin unlocks it (`POST /api/v1/orgs/ORG/users/USER/unlock`). A login with no account
still checks the password against a dummy hash, so its answer takes as long.

Every form is protected by the token of `gateway.forms`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from yarl import URL

from gateway.auth_api import start_session
from gateway.credentials import hash_token
from gateway.forms import (
    CSRF_COOKIE,
    error,
    escape,
    expired_form,
    field,
    form,
    form_token,
    form_token_ok,
    message,
    page,
    set_form_token,
)
from gateway.keys import AUDIT, CLOCK, INVITATIONS, LOCAL_LOGINS, SSO_STORE, STORE
from gateway.passwords import (
    MIN_LENGTH,
    hash_password,
    password_problem,
    verify_nothing,
    verify_password,
)
from gateway.scim_api import request_context
from sso import totp
from storage.audit_store import AuditEntry
from storage.local_login_store import ACCEPTED, INACTIVE, LINKED, FoundInvitation
from storage.sso_store import Connection

log = logging.getLogger(__name__)

INVITE_PATH = "/invite/"
LOGIN_PATH = "/login/"
ACTOR = "local"  # the audit log's name for refusals of the local login
REFUSED = "The e-mail address, password or code is not right, or this account cannot sign in."
_OUTCOME_REASONS = {
    INACTIVE: "user_inactive",
    LINKED: "identity_already_linked",
}


# --- invitations -----------------------------------------------------------------------------


class InvitationRefusedError(Exception):
    """A login that may not accept the invitation it carries; `reason` goes to the audit."""

    def __init__(self, reason: str, user_id: uuid.UUID | None) -> None:
        super().__init__(reason)
        self.reason, self.user_id = reason, user_id


def _open(found: FoundInvitation, now: datetime) -> bool:
    return found.invitation.user_id is not None and found.invitation.state(now) == "pending"


async def open_invitation(request: web.Request, secret: str) -> FoundInvitation | None:
    """The invitation a link's secret names, if it can still be accepted."""
    found = await request.config_dict[LOCAL_LOGINS].invitation(hash_token(secret))
    return found if found is not None and _open(found, request.config_dict[CLOCK]()) else None


async def accept_through_sso(
    request: web.Request,
    tenant: Any,
    invitation_id: str,
    connection: Connection,
    subject: str,
    email: str | None,
    claims: Mapping[str, Any],
) -> uuid.UUID:
    """Accept the invitation a login carried, linking the login's identity to the invited
    user, when `email` (the one the IdP vouches for) is the invited one, in any case.
    Answers the user; raises `InvitationRefusedError` otherwise."""
    now = request.config_dict[CLOCK]()
    invitation = await request.config_dict[INVITATIONS].get(tenant.id, invitation_id)
    if invitation is None or invitation.user_id is None or invitation.state(now) != "pending":
        user_id = invitation.user_id if invitation else None
        raise InvitationRefusedError("invitation_closed", user_id)
    if email is None or email.strip().lower() != invitation.email.strip().lower():
        raise InvitationRefusedError("invitation_email_mismatch", invitation.user_id)
    outcome = await request.config_dict[LOCAL_LOGINS].accept_with_identity(
        tenant.id, invitation.id, connection.id, subject, claims, now, f"sso:{connection.name}"
    )
    if outcome != ACCEPTED:
        reason = _OUTCOME_REASONS.get(outcome, "invitation_closed")
        raise InvitationRefusedError(reason, invitation.user_id)
    return invitation.user_id


async def _invitation(request: web.Request) -> tuple[FoundInvitation, Any] | web.Response:
    """The open invitation of the page's link and its tenant, or the page saying why not."""
    found = await request.config_dict[LOCAL_LOGINS].invitation(
        hash_token(request.match_info["secret"])
    )
    if found is None:
        return message(404, "Unknown invitation", "This invitation link is not valid.")
    opened = _open(found, request.config_dict[CLOCK]())
    tenant = await request.config_dict[STORE].get_tenant(found.tenant_slug) if opened else None
    if tenant is None:
        return message(
            410,
            "Invitation no longer valid",
            "This invitation has expired, was revoked or was already used. "
            "Ask your administrator for a new one.",
        )
    return found, tenant


async def invite_page(request: web.Request) -> web.Response:
    answer = await _invitation(request)
    if isinstance(answer, web.Response):
        return answer
    found, tenant = answer
    token = form_token(request)
    connections = await request.config_dict[SSO_STORE].list_connections(tenant.id)
    if connections:
        response = _sso_choice(request, found, tenant, connections)
    else:
        response = _password_step(found, tenant, token)
    set_form_token(response, token, INVITE_PATH)
    return response


async def invite_post(request: web.Request) -> web.Response:
    posted = await request.post()
    if not form_token_ok(request, posted):
        return expired_form()
    answer = await _invitation(request)
    if isinstance(answer, web.Response):
        return answer
    found, tenant = answer
    if await request.config_dict[SSO_STORE].list_connections(tenant.id):
        return message(
            409,
            "Sign in with your organisation",
            f"{tenant.name} signs in through its identity provider: open the invitation "
            "link again and choose it.",
        )
    token = request.cookies[CSRF_COOKIE]
    step = _text(posted, "step")
    if step == "password":
        return await _set_password(request, found, tenant, posted, token)
    if step == "code":
        return await _confirm_code(request, found, tenant, posted, token)
    return message(400, "Unknown step", "Open the invitation link again.")


def _sso_choice(
    request: web.Request, found: FoundInvitation, tenant: Any, connections: list[Connection]
) -> web.Response:
    secret = request.match_info["secret"]
    links = "".join(
        f'<li><a href="{escape(_sso_link(tenant.slug, c.name, secret))}">'
        f"Sign in with {escape(c.name)}</a></li>"
        for c in connections
    )
    body = (
        f"<p>You were invited to {escape(tenant.name)} as "
        f"<strong>{escape(found.invitation.email)}</strong>. Sign in with your "
        "organisation's account of that address to accept.</p>"
        f"<ul>{links}</ul>"
    )
    return page(200, f"Join {tenant.name}", body)


def _sso_link(slug: str, connection: str, secret: str) -> str:
    return str(URL.build(path=f"/sso/{slug}/{connection}/login", query={"invitation": secret}))


def _password_step(
    found: FoundInvitation, tenant: Any, token: str, problem: str | None = None, status: int = 200
) -> web.Response:
    email = found.invitation.email
    inner = (
        field("username", "E-mail address", kind="email", autocomplete="username",
              value=email, extra="readonly")
        + field("password", f"Password (at least {MIN_LENGTH} characters)",
                kind="password", autocomplete="new-password", extra="required")
        + field("confirm", "The same password again", kind="password",
                autocomplete="new-password", extra="required")
    )  # fmt: skip
    body = (
        f"<p>You were invited to {escape(tenant.name)} as <strong>{escape(email)}</strong>. "
        "Choose a password; next you will add a second factor to an authenticator app.</p>"
        f"{error(problem)}{form(token, inner, 'Continue', {'step': 'password'})}"
    )
    return page(status, f"Join {tenant.name}", body)


async def _set_password(
    request: web.Request,
    found: FoundInvitation,
    tenant: Any,
    posted: Mapping[str, Any],
    token: str,
) -> web.Response:
    password, confirm = _text(posted, "password"), _text(posted, "confirm")
    problem = password_problem(password, found.invitation.email)
    if problem is None and password != confirm:
        problem = "The two passwords differ."
    if problem is not None:
        return _password_step(found, tenant, token, problem, 400)
    secret = totp.new_secret()
    user_id = found.invitation.user_id
    assert user_id is not None  # an open invitation has its user
    stored = await request.config_dict[LOCAL_LOGINS].enrol(
        tenant.id, user_id, await hash_password(password), secret, request.config_dict[CLOCK]()
    )
    if not stored:
        return message(409, "Already set up", "This account has a password already.")
    return _code_step(found.invitation.email, tenant, token, secret)


def _code_step(
    email: str, tenant: Any, token: str, secret: str, problem: str | None = None
) -> web.Response:
    """Enrolment: the secret to add to an authenticator app (typed, or the otpauth link
    opened on the phone), confirmed by a code from it."""
    uri = totp.provisioning_uri(secret, email, _issuer(tenant))
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    inner = field("code", "Code from the app", autocomplete="one-time-code",
                  extra='inputmode="numeric" required')  # fmt: skip
    body = (
        "<p>Add this account to an authenticator app (any TOTP app) with this key:</p>"
        f'<p><code id="totp-secret">{escape(grouped)}</code></p>'
        f'<p>or, on the phone, open <a href="{escape(uri)}">this link</a>:'
        f' <code id="otpauth">{escape(uri)}</code></p>'
        "<p>Then type the code the app shows.</p>"
        f"{error(problem)}{form(token, inner, 'Confirm', {'step': 'code'})}"
    )
    return page(400 if problem else 200, "Set up your second factor", body)


def _issuer(tenant: Any) -> str:
    """What the app names the account after: the organisation (no colon: it separates the
    issuer from the account in the URI's label)."""
    return str(tenant.name).replace(":", " ").strip() or str(tenant.slug)


async def _confirm_code(
    request: web.Request,
    found: FoundInvitation,
    tenant: Any,
    posted: Mapping[str, Any],
    token: str,
) -> web.Response:
    store = request.config_dict[LOCAL_LOGINS]
    user_id = found.invitation.user_id
    assert user_id is not None
    secret = await store.enrolment(tenant.id, user_id)
    if secret is None:
        return _password_step(found, tenant, token, "Choose a password first.", 400)
    now = request.config_dict[CLOCK]()
    step = totp.verify(secret, _text(posted, "code"), now.timestamp(), None)
    if step is None:
        problem = "That code is not right. Check the app's clock and type the current code."
        return _code_step(found.invitation.email, tenant, token, secret, problem)
    outcome = await store.accept_with_enrolment(tenant.id, found.invitation.id, user_id, step, now)
    if outcome != ACCEPTED:
        return message(410, "Invitation no longer valid", "Ask your administrator for a new one.")
    response = message(200, f"Welcome to {tenant.name}", "You are signed in.")
    await start_session(request, tenant, user_id, None, response)
    response.del_cookie(CSRF_COOKIE, path=INVITE_PATH)
    return response


# --- the local login ------------------------------------------------------------------------


class _RefusedError(Exception):
    def __init__(self, reason: str, user_id: uuid.UUID | None = None) -> None:
        super().__init__(reason)
        self.reason, self.user_id = reason, user_id


def _unknown_tenant() -> web.Response:
    return message(404, "Unknown organisation", "There is no organisation at this address.")


def _login_form(
    tenant: Any, token: str, problem: str | None = None, status: int = 200
) -> web.Response:
    inner = (
        field("email", "E-mail address", kind="email", autocomplete="username",
              extra="required")
        + field("password", "Password", kind="password", autocomplete="current-password",
                extra="required")
        + field("code", "Code from your authenticator app", autocomplete="one-time-code",
                extra='inputmode="numeric" required')
    )  # fmt: skip
    return page(status, f"Sign in to {tenant.name}", error(problem) + form(token, inner, "Sign in"))


async def _tenant(request: web.Request) -> Any:
    """The tenant the path names, or None (a name with a NUL names none)."""
    slug = request.match_info["tenant"]
    return None if "\x00" in slug else await request.config_dict[STORE].get_tenant(slug)


async def login_page(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    if tenant is None:
        return _unknown_tenant()
    token = form_token(request)
    response = _login_form(tenant, token)
    set_form_token(response, token, LOGIN_PATH)
    return response


async def login_post(request: web.Request) -> web.Response:
    posted = await request.post()
    if not form_token_ok(request, posted):
        return expired_form()
    tenant = await _tenant(request)
    if tenant is None:
        return _unknown_tenant()
    email = _text(posted, "email").strip()
    try:
        user_id = await _authenticate(
            request, tenant, email, _text(posted, "password"), _text(posted, "code")
        )
    except _RefusedError as refusal:
        await _refused(request, tenant, email, refusal)
        return _login_form(tenant, request.cookies[CSRF_COOKIE], REFUSED, 403)
    response = message(200, "Signed in", f"You are signed in to {tenant.name}.")
    await start_session(request, tenant, user_id, None, response)
    return response


async def _authenticate(
    request: web.Request, tenant: Any, email: str, password: str, code: str
) -> uuid.UUID:
    """The user these credentials log in, or `_RefusedError` with the reason. Both factors are
    checked before the account's state, so that the state tells nothing to a guesser."""
    store = request.config_dict[LOCAL_LOGINS]
    plausible = 0 < len(email) <= 254 and "\x00" not in email
    account = await store.account(tenant.id, email) if plausible else None
    if account is None:
        await verify_nothing(password)
        raise _RefusedError("unknown_user")
    password_ok = await verify_password(account.password_hash, password)
    if account.locked:
        raise _RefusedError("locked", account.user_id)
    if not password_ok:
        raise _RefusedError("wrong_password", account.user_id)
    now = request.config_dict[CLOCK]().timestamp()
    step = totp.verify(account.totp_secret, code, now, account.totp_last_step)
    if step is None:
        replayed = totp.verify(account.totp_secret, code, now, None) is not None
        raise _RefusedError("code_replayed" if replayed else "wrong_code", account.user_id)
    if not account.active:
        raise _RefusedError("user_inactive", account.user_id)
    # Checked again where it is recorded: of two logins with one code, one wins.
    if not await store.succeeded(tenant.id, account.user_id, step):
        raise _RefusedError("code_replayed", account.user_id)
    return account.user_id


async def _refused(request: web.Request, tenant: Any, email: str, refusal: _RefusedError) -> None:
    """Audit the refusal; count it against the account, if there is one."""
    log.warning("local login refused on %s: %s", tenant.slug, refusal.reason)
    now = request.config_dict[CLOCK]()
    details = {"reason": refusal.reason, "method": "password", **request_context(request)}
    if refusal.user_id is not None:
        failure = await request.config_dict[LOCAL_LOGINS].failed(
            tenant.id, refusal.user_id, now, details
        )
        if failure.newly_locked:
            log.warning("local login of user %s on %s locked", refusal.user_id, tenant.slug)
        return
    target = "local:" + email.replace("\x00", "").lower()[:254]
    await request.config_dict[AUDIT].record(
        tenant.id, now, ACTOR, AuditEntry("login.failed", target, details)
    )


def _text(posted: Mapping[str, Any], name: str) -> str:
    value = posted.get(name)
    return value if isinstance(value, str) else ""


def add_routes(app: web.Application) -> None:
    app.router.add_get(INVITE_PATH + "{secret}", invite_page)
    app.router.add_post(INVITE_PATH + "{secret}", invite_post)
    app.router.add_get(LOGIN_PATH + "{tenant}", login_page)
    app.router.add_post(LOGIN_PATH + "{tenant}", login_post)


__all__ = ["InvitationRefusedError", "accept_through_sso", "add_routes", "open_invitation"]

"""The SSO endpoints under /sso/: home-realm discovery, a SAML connection's SP metadata, and
logins through SAML (SP-initiated, and IdP-initiated where the connection allows it) and
OpenID Connect, each ending in a session.

A login through connection NAME of tenant SLUG:

1. `GET /sso/SLUG/NAME/login?return_to=URL` checks `return_to` against the tenant's allowed
   URLs and saves what the answer will be checked against (SAML: the AuthnRequest's ID; OIDC:
   nonce and PKCE verifier) in the database for ten minutes, under a random key that the
   IdP sends back (SAML RelayState, OIDC state) and that is also set as a cookie: only the
   browser that started a login can finish it. The browser goes to the IdP. A login
   started from an invitation link (`&invitation=SECRET`) saves the invitation with it.
2. `POST /sso/SLUG/NAME/acs` (SAML) or `GET /sso/SLUG/NAME/callback` (OIDC) takes the saved
   request (a second answer finds nothing), has `sso.saml` / `sso.oidc` check the answer
   against it (SAML assertion IDs are also kept until they expire: a replay is refused on
   every replica), finds the user linked to (connection, subject) or creates one (just in
   time, when the connection allows it), refuses a deactivated user, starts a session and
   redirects to `return_to`. A login that carries an invitation instead accepts it for the
   person invited (`gateway.local_login.accept_through_sso`).

Refusals are plain pages with a reason for the person and the status for the machine.
"""

from __future__ import annotations

import html
import logging
import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NoReturn

from aiohttp import web
from yarl import URL

from gateway.auth_api import start_session
from gateway.keys import (
    ACCESS,
    AUDIT,
    CLOCK,
    IDENTITIES,
    LOGIN_STATE,
    OIDC_DIRECTORY,
    PROVISIONING,
    SETTINGS,
    SSO_STORE,
    STORE,
)
from gateway.local_login import InvitationRefusedError, accept_through_sso, open_invitation
from gateway.provisioning import Provisioning
from gateway.scim_api import request_context
from scim.errors import ScimError
from scim.schema import USER
from sso import oidc, saml
from sso.connections import OIDC, SAML, connection_urls
from sso.profile import (
    DEFAULT_FIELDS,
    FieldMap,
    addresses_only,
    profile,
    profile_update,
    scim_user,
)
from storage.audit_store import AuditEntry
from storage.sso_store import Account, Connection

log = logging.getLogger(__name__)

METADATA_TYPE = "application/samlmetadata+xml"
LOGIN_COOKIE = "idgate_login"  # binds a login in progress to the browser that started it
REQUEST_LIFETIME = timedelta(minutes=10)
# How long an assertion is remembered when it states no NotOnOrAfter.
ASSERTION_MEMORY = timedelta(minutes=10)


def _page(status: int, title: str, text: str) -> web.Response:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    )
    return web.Response(
        status=status, text=body, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


async def _connection(request: web.Request, kind: str | None = None) -> tuple[Any, Connection]:
    slug, name = request.match_info["tenant"], request.match_info["connection"]
    tenant = await request.config_dict[STORE].get_tenant(slug)
    found = await request.config_dict[SSO_STORE].get_connection(tenant.id, name) if tenant else None
    if found is None or (kind is not None and found.type != kind):
        what = f"{kind.upper()} connection" if kind else "connection"
        raise web.HTTPNotFound(text=f"no {what} {name!r} in tenant {slug!r}")
    return tenant, found


def _sides(request: web.Request, connection: Connection) -> tuple[saml.SamlSp, saml.IdpMetadata]:
    slug = request.match_info["tenant"]
    urls = connection_urls(request.config_dict[SETTINGS].base_url, slug, connection.name)
    sp = saml.SamlSp(
        entity_id=urls.entity_id,
        acs_url=urls.acs_url,
        certificate_pem=connection.settings["sp_certificate"],
        private_key_pem=connection.secrets["sp_private_key"],
    )
    stored = dict(connection.settings["idp"])
    stored["certificates"] = tuple(stored["certificates"])
    return sp, saml.IdpMetadata(**stored)


async def sp_metadata(request: web.Request) -> web.Response:
    _tenant, connection = await _connection(request, SAML)
    sp, _idp = _sides(request, connection)
    xml = saml.sp_metadata(
        entity_id=sp.entity_id, acs_url=sp.acs_url, certificate_pem=sp.certificate_pem
    )
    return web.Response(text=xml, content_type=METADATA_TYPE, charset="utf-8")


def _allowed(return_to: str, allowed: list[str]) -> bool:
    """`return_to` is one of the tenant's URLs, or below one that ends with '/'."""
    return any(
        return_to == url or (url.endswith("/") and return_to.startswith(url)) for url in allowed
    )


def _to_idp(request: web.Request, location: str, key: str, *, cross_site_post: bool) -> NoReturn:
    """Send the browser to the IdP, binding the login to it: the answer must come back with
    this cookie, so a login started by someone else (login CSRF) is refused. A SAML answer is
    a cross-site POST, which only SameSite=None cookies accompany."""
    response = web.HTTPFound(location, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        LOGIN_COOKIE,
        key,
        path=f"/sso/{request.match_info['tenant']}/{request.match_info['connection']}/",
        max_age=int(REQUEST_LIFETIME.total_seconds()),
        secure=True,
        httponly=True,
        samesite="None" if cross_site_post else "Lax",
    )
    raise response


def _bound(request: web.Request, key: str) -> bool:
    """Whether this browser started the login saved under `key`."""
    return secrets.compare_digest(request.cookies.get(LOGIN_COOKIE, ""), key)


async def login(request: web.Request) -> web.Response:
    tenant, connection = await _connection(request)
    return_to = request.query.get("return_to")
    if return_to is not None:
        allowed = await request.config_dict[SSO_STORE].return_urls.list(tenant.id)
        if not _allowed(return_to, allowed):
            return _page(400, "Login refused", "return_to is not an address of this tenant.")
    carried = await _invitation(request, tenant)
    if carried is None:
        return _page(410, "Invitation not valid", "This invitation has expired or was used.")
    if connection.type == OIDC:
        return await _oidc_login(request, connection, return_to, carried)
    sp, idp = _sides(request, connection)
    # RelayState is a random key of the saved request: the answer names what it answers.
    key = secrets.token_urlsafe(24)
    request_id, location = saml.authn_request(sp, idp, relay_state=key)
    now = request.config_dict[CLOCK]()
    await request.config_dict[LOGIN_STATE].save_request(
        key,
        connection.id,
        {"request_id": request_id, "return_to": return_to, **carried},
        now + REQUEST_LIFETIME,
    )
    _to_idp(request, location, key, cross_site_post=True)


async def _invitation(request: web.Request, tenant: Any) -> dict[str, str] | None:
    """What a login started from an invitation link carries: the invitation's id, kept in
    the login's saved state (never in memory: the answer may reach another replica).
    {} for other logins; None for a link that is not open in this tenant."""
    secret = request.query.get("invitation")
    if secret is None:
        return {}
    found = await open_invitation(request, secret)
    if found is None or found.tenant_slug != tenant.slug:
        return None
    return {"invitation": found.invitation.id}


async def acs(request: web.Request) -> web.Response:
    tenant, connection = await _connection(request, SAML)
    form = await request.post()
    saml_response, relay_state = form.get("SAMLResponse"), form.get("RelayState")
    if not isinstance(saml_response, str):
        return _page(400, "Login refused", "The identity provider sent no SAMLResponse.")
    now, state = request.config_dict[CLOCK](), request.config_dict[LOGIN_STATE]
    return_to: str | None = None
    request_id: str | None = None
    invitation: str | None = None
    relay_state = relay_state if isinstance(relay_state, str) else ""
    # Only the browser that started a login can finish it (and use up its saved request).
    saved = (
        await state.take_request(relay_state, connection.id, now)
        if relay_state and _bound(request, relay_state)
        else None
    )
    if saved is not None:
        request_id, return_to = saved["request_id"], saved.get("return_to")
        invitation = saved.get("invitation")
    elif not connection.idp_initiated:
        if not relay_state:
            return _page(
                400, "Login refused", "Logins to this application start here, not at the IdP."
            )
        return _page(
            400,
            "Login refused",
            "This login has expired, was already used, or was started in another browser.",
        )
    elif relay_state:
        # IdP-initiated: RelayState, if any, is where to go; only to the tenant's addresses.
        allowed = await request.config_dict[SSO_STORE].return_urls.list(tenant.id)
        return_to = relay_state if _allowed(relay_state, allowed) else None
    sp, idp = _sides(request, connection)
    try:
        identity = saml.process_response(
            sp,
            idp,
            saml_response,
            request_id=request_id,
            allow_unsolicited=connection.idp_initiated and request_id is None,
        )
    except saml.SamlLoginError as exc:
        await _refused(request, tenant, connection, LoginRefusedError(f"invalid answer: {exc}"))
        return _page(403, "Login refused", f"The identity provider's answer is not valid: {exc}")
    expires = identity.not_on_or_after or now + ASSERTION_MEMORY
    if not await state.first_use(connection.id, identity.assertion_id, expires):
        refusal = LoginRefusedError("answer replayed", subject=identity.subject)
        await _refused(request, tenant, connection, refusal)
        return _page(403, "Login refused", "This answer of the identity provider was used before.")
    return await _login(
        request, tenant, connection, identity.subject, identity.attributes, return_to, invitation
    )


class LoginRefusedError(Exception):
    """A login that ends without a session; `reason` goes to the log and the audit log."""

    def __init__(
        self, reason: str, *, subject: str | None = None, user_id: uuid.UUID | None = None
    ) -> None:
        super().__init__(reason)
        self.reason, self.subject, self.user_id = reason, subject, user_id


async def _refused(
    request: web.Request, tenant: Any, connection: Connection, refusal: LoginRefusedError
) -> None:
    log.warning(
        "SSO login refused on %s/%s for %r: %s",
        tenant.slug,
        connection.name,
        refusal.subject,
        refusal.reason,
    )
    if refusal.user_id is not None:
        target = f"user:{refusal.user_id}"
    else:
        target = f"subject:{connection.name}/{refusal.subject or '?'}"
    details = {"connection": connection.name, "reason": refusal.reason}
    if refusal.subject is not None:
        details["subject"] = refusal.subject
    await request.config_dict[AUDIT].record(
        tenant.id,
        request.config_dict[CLOCK](),
        f"sso:{connection.name}",
        AuditEntry("login.failed", target, details),
    )


async def _login(
    request: web.Request,
    tenant: Any,
    connection: Connection,
    subject: str,
    attributes: Mapping[str, Any],
    return_to: str | None,
    invitation: str | None = None,
) -> web.Response:
    """A checked answer of the IdP becomes a session, or a refusal page. Whatever the
    login wrote (a just-in-time user, a profile update) is followed once, at the end, by
    the recomputation of the user's grants from the claims it brought, and the audit."""
    provisioning = request.config_dict[PROVISIONING].acting(
        f"sso:{connection.name}", context=request_context(request), deferred=True
    )
    try:
        if invitation is not None:
            user_id = await _invited(request, tenant, connection, subject, attributes, invitation)
        else:
            user_id = await _user(request, provisioning, tenant, connection, subject, attributes)
    except LoginRefusedError as refusal:
        await _refused(request, tenant, connection, refusal)
        return _page(
            403, "Login refused", "You have no active account here; ask your administrator."
        )
    await provisioning.changed(tenant.id, [user_id])
    await provisioning.flush()
    return await _start_session(request, tenant, connection, user_id, return_to)


async def _invited(
    request: web.Request,
    tenant: Any,
    connection: Connection,
    subject: str,
    attributes: Mapping[str, Any],
    invitation_id: str,
) -> uuid.UUID:
    """The invited user, for a login started from their invitation: the e-mail the IdP
    vouches for must be the one invited. Raises `LoginRefusedError` otherwise."""
    email = _vouched_email(connection, attributes, await _fields(request, tenant, connection))
    try:
        return await accept_through_sso(
            request, tenant, invitation_id, connection, subject, email, attributes
        )
    except InvitationRefusedError as exc:
        raise LoginRefusedError(exc.reason, subject=subject, user_id=exc.user_id) from None


async def _user(
    request: web.Request,
    provisioning: Provisioning,
    tenant: Any,
    connection: Connection,
    subject: str,
    attributes: Mapping[str, Any],
) -> uuid.UUID:
    """The user linked to (connection, subject), or a new one (just-in-time); raises
    `LoginRefusedError` when there is none allowed."""
    now, identities = request.config_dict[CLOCK](), request.config_dict[IDENTITIES]
    linked = await identities.find(connection.id, subject, now, attributes)
    if linked is not None:
        if not linked.active:
            raise LoginRefusedError(
                "user deactivated or blocked", subject=subject, user_id=linked.user_id
            )
        if linked.created_by_login and connection.settings.get("update_profile", True):
            await _update_profile(
                request, provisioning, tenant, connection, linked.user_id, attributes, subject
            )
        return linked.user_id
    fields = await _fields(request, tenant, connection)
    found = profile(attributes, subject, fields)
    email = _vouched_email(connection, attributes, fields)
    if connection.settings.get("trust_email") and email:
        adopted = await _adopt(request, tenant, connection, subject, email, attributes)
        if adopted is not None:
            return adopted
    if not connection.jit:
        raise LoginRefusedError("no linked user, and just-in-time users are off", subject=subject)
    body = scim_user(found.email or subject, found)
    try:
        created = await provisioning.create(tenant.id, USER, body)
    except ScimError as exc:
        # An account of that name exists and is not linked: it is never adopted by name.
        raise LoginRefusedError(
            f"just-in-time user refused: {exc.detail}", subject=subject
        ) from None
    user_id = uuid.UUID(created["id"])
    await identities.link(
        connection.id, subject, user_id, now, created_user=True, claims=attributes
    )
    return user_id


def _vouched_email(
    connection: Connection, attributes: Mapping[str, Any], fields: FieldMap
) -> str | None:
    """The e-mail a first login may be matched to an account by: OIDC's `email` claim when
    the provider says it verified it; for SAML, an e-mail attribute of the assertion (never
    a UPN or user name, never the NameID)."""
    if connection.type == OIDC:
        email = attributes.get("email")
        verified = attributes.get("email_verified") is True
        return email.strip() or None if isinstance(email, str) and verified else None
    return profile(attributes, None, addresses_only(fields)).email


async def _adopt(
    request: web.Request,
    tenant: Any,
    connection: Connection,
    subject: str,
    email: str,
    attributes: Mapping[str, Any],
) -> uuid.UUID | None:
    """A connection that trusts its IdP's e-mail links a first login to the account with
    that e-mail, unless another connection manages the account; None if there is none."""
    identities = request.config_dict[IDENTITIES]
    accounts = await identities.accounts_with_email(tenant.id, connection.id, email)
    if not accounts:
        return None
    refusal = _adoption_refusal(accounts, connection)
    if refusal is not None:
        user_id = accounts[0].user_id if len(accounts) == 1 else None
        raise LoginRefusedError(refusal, subject=subject, user_id=user_id)
    (account,) = accounts
    now = request.config_dict[CLOCK]()
    await identities.link(connection.id, subject, account.user_id, now, claims=attributes)
    await request.config_dict[AUDIT].record(
        tenant.id,
        now,
        f"sso:{connection.name}",
        AuditEntry(
            "identity.linked",
            f"user:{account.user_id}",
            {"connection": connection.name, "subject": subject, "by": "email"},
        ),
    )
    return account.user_id


def _adoption_refusal(accounts: list[Account], connection: Connection) -> str | None:
    """Why a first login may not take over the account its e-mail names, if it may not."""
    if len(accounts) > 1:
        return "the e-mail names several accounts"
    (account,) = accounts
    if not account.active:
        return "user deactivated or blocked"
    if account.linked_here:
        return "the account is linked to another identity of this connection"
    other = account.created_by_connection or account.token_connection
    if other is not None and other != connection.name:
        return f"the account is managed by connection {other!r}"
    return None


async def _fields(request: web.Request, tenant: Any, connection: Connection) -> FieldMap:
    """Which attributes hold the e-mail, names and groups: the tenant's mapping document may
    say so per connection (presets for Okta, Entra ID, Google...)."""
    rules = await request.config_dict[ACCESS].rules(tenant.id)
    return rules.fields_for(connection.name) if rules is not None else DEFAULT_FIELDS


async def _update_profile(
    request: web.Request,
    provisioning: Provisioning,
    tenant: Any,
    connection: Connection,
    user_id: uuid.UUID,
    attributes: Mapping[str, Any],
    subject: str,
) -> None:
    """Bring a user this connection created up to date with the login's attributes (users a
    SCIM client pushed are its to change). A refused change does not stop the login."""
    fields = await _fields(request, tenant, connection)
    change = profile_update(profile(attributes, subject, fields))
    if change is None:
        return
    try:
        await provisioning.patch(tenant.id, USER, str(user_id), change, None)
    except ScimError as exc:
        log.warning("profile update refused on %s/%s: %s", tenant.slug, connection.name, exc)


async def _start_session(
    request: web.Request,
    tenant: Any,
    connection: Connection,
    user_id: uuid.UUID,
    return_to: str | None,
) -> web.Response:
    if return_to:
        response = web.Response(status=302, headers={"Location": return_to})
    else:
        response = _page(200, "Signed in", "You are signed in.")
    await start_session(request, tenant, user_id, connection.id, response)
    response.del_cookie(
        LOGIN_COOKIE, path=f"/sso/{request.match_info['tenant']}/{connection.name}/"
    )
    return response


# --- OpenID Connect ------------------------------------------------------------------------


async def _oidc_login(
    request: web.Request, connection: Connection, return_to: str | None, carried: dict[str, str]
) -> web.Response:
    """The authorization code flow with PKCE: state, nonce and verifier are saved for ten
    minutes, usable once, and the browser goes to the provider."""
    directory = request.config_dict[OIDC_DIRECTORY]
    try:
        provider = await directory.provider(connection.settings["issuer"])
    except oidc.OidcError as exc:
        log.warning("OIDC discovery failed for %s: %s", connection.settings["issuer"], exc)
        return _page(502, "Login unavailable", "The identity provider cannot be reached.")
    urls = connection_urls(
        request.config_dict[SETTINGS].base_url, request.match_info["tenant"], connection.name
    )
    started = oidc.authorization_request(
        provider,
        connection.settings["client_id"],
        urls.redirect_uri,
        tuple(connection.settings["scopes"]),
    )
    await request.config_dict[LOGIN_STATE].save_request(
        started.state,
        connection.id,
        {
            "nonce": started.nonce,
            "code_verifier": started.code_verifier,
            "return_to": return_to,
            **carried,
        },
        request.config_dict[CLOCK]() + REQUEST_LIFETIME,
    )
    _to_idp(request, started.url, started.state, cross_site_post=False)


async def callback(request: web.Request) -> web.Response:
    """`GET /sso/SLUG/NAME/callback?code=...&state=...`: the saved state is taken (used
    once), the code exchanged with its PKCE verifier, the id_token checked (issuer, audience,
    nonce, signature by the provider's published keys), and the login goes on as a SAML one."""
    tenant, connection = await _connection(request, OIDC)
    state, code = request.query.get("state"), request.query.get("code")
    now = request.config_dict[CLOCK]()
    saved = (
        await request.config_dict[LOGIN_STATE].take_request(state, connection.id, now)
        if state and _bound(request, state)
        else None
    )
    if saved is None:
        return _page(
            400,
            "Login refused",
            "This login has expired, was already used, or was started in another browser.",
        )
    if not code:
        reason = request.query.get("error_description") or request.query.get("error") or "no code"
        return _page(403, "Login refused", f"The identity provider refused: {reason}")
    directory = request.config_dict[OIDC_DIRECTORY]
    urls = connection_urls(
        request.config_dict[SETTINGS].base_url, request.match_info["tenant"], connection.name
    )
    client_id = connection.settings["client_id"]
    try:
        provider = await directory.provider(connection.settings["issuer"])
        id_token = await directory.exchange(
            provider,
            client_id,
            connection.secrets["client_secret"],
            code,
            urls.redirect_uri,
            saved["code_verifier"],
        )
        claims = await directory.identity(
            provider, id_token, client_id=client_id, nonce=saved["nonce"], now=int(now.timestamp())
        )
    except oidc.OidcError as exc:
        await _refused(request, tenant, connection, LoginRefusedError(f"invalid answer: {exc}"))
        return _page(403, "Login refused", f"The identity provider's answer is not valid: {exc}")
    return await _login(
        request,
        tenant,
        connection,
        claims.subject,
        claims.claims,
        saved.get("return_to"),
        saved.get("invitation"),
    )


async def discover(request: web.Request) -> web.Response:
    """`GET /sso/login?email=jane@corp.example[&return_to=URL]`: home-realm discovery. The
    e-mail's domain names the tenant; with one connection the login starts there, with
    several the person chooses."""
    email = request.query.get("email", "")
    domain = email.rpartition("@")[2].strip().lower()
    slug = await request.config_dict[SSO_STORE].tenant_for_domain(domain) if domain else None
    tenant = await request.config_dict[STORE].get_tenant(slug) if slug else None
    connections = await request.config_dict[SSO_STORE].list_connections(tenant.id) if tenant else []
    if tenant is None or not connections:
        return _page(404, "Unknown organisation", "No organisation signs in with this e-mail.")
    query = {k: v for k, v in request.query.items() if k == "return_to"}
    links = [
        str(URL.build(path=f"/sso/{tenant.slug}/{c.name}/login", query=query)) for c in connections
    ]
    if len(links) == 1:
        raise web.HTTPFound(links[0], headers={"Cache-Control": "no-store"})
    items = "".join(
        f'<li><a href="{html.escape(link)}">{html.escape(c.name)}</a></li>'
        for c, link in zip(connections, links, strict=True)
    )
    body = (
        "<!doctype html><meta charset=utf-8><title>Choose how to sign in</title>"
        f"<h1>Choose how to sign in</h1><ul>{items}</ul>"
    )
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


def create_sso_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/login", discover)
    app.router.add_get("/{tenant}/{connection}/metadata", sp_metadata)
    app.router.add_get("/{tenant}/{connection}/login", login)
    app.router.add_post("/{tenant}/{connection}/acs", acs)
    app.router.add_get("/{tenant}/{connection}/callback", callback)
    return app

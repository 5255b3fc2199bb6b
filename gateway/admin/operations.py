"""`/api/v1/orgs/{org}/...`: the operations views of an organisation. Its SSO connections
with what the IdP's administrator must enter, its SCIM tokens, its mapping rules (with a dry
run), its webhook endpoints and their deliveries, its audit log and its SCIM request log.

Each route does what the matching `idgate` command does, through the same store calls, so
that the console and the command line cannot disagree. A secret (a SCIM token, a webhook
signing secret) is answered once, when it is made, and stored hashed or never shown again:
no list carries one, nor a connection's private key or client secret. Writes are audited
under the caller, with the request id, the address and the reseller they act through.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from cryptography import x509
from pydantic import AfterValidator, BaseModel, Field, RootModel

from gateway.admin.api import Api, Call, Need
from gateway.admin.problems import ApiError, FieldError, conflict, invalid, not_found
from gateway.admin.users import IsoTime, Strict
from gateway.credentials import new_token
from gateway.keys import ACCESS, AUDIT, CLOCK, ENGINE, REQUEST_LOG, SETTINGS, SSO_STORE, STORE
from gateway.webhooks import new_endpoint_id, new_secret
from sso.connections import SAML, check_url, connection_urls
from sso.mapping import Assignment, MappingError
from storage.audit_store import AuditEntry
from storage.request_log import LoggedRequest, RequestLogStore
from storage.scim_store import Tenant, TokenRecord
from storage.sso_store import Connection
from storage.webhook_store import DeliveryRecord, Endpoint, WebhookStore

api = Api()
CONNECTIONS = "Connections"
TOKENS = "SCIM tokens"
MAPPING = "Mapping rules"
WEBHOOKS = "Webhooks"
AUDIT_LOG = "Audit log"
SCIM_LOG = "SCIM request log"
MAX_PAGE = 500

# Ids as the stores make them (tok_..., whk_..., evt_..., connection names). A path holding
# anything else names nothing, and never reaches the database (whose text cannot hold NUL).
_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _config(call: Call) -> Any:
    return call.request.config_dict


def _now(call: Call) -> datetime:
    return call.request.config_dict[CLOCK]()


def _path_id(call: Call, name: str, what: str) -> str:
    value = call.param(name)
    if not _ID.fullmatch(value):
        raise not_found(what)
    return value


async def _audit(call: Call, action: str, target: str, details: dict[str, Any]) -> None:
    """Record a write of this API: credentials and rules change who gets in and with what,
    so the audit log must say who changed them, from where, and through which reseller."""
    entry = AuditEntry(action, target, details | call.context)
    await _config(call)[AUDIT].record(call.org.id, _now(call), call.actor, entry)


def _utc(value: datetime) -> datetime:
    """A time as the database compares it: without an offset it is UTC; one that cannot be
    expressed in UTC is refused rather than failing the request."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date-time is out of range") from None


Instant = Annotated[IsoTime, AfterValidator(_utc)]


# --- SSO connections -------------------------------------------------------------------------


class IdpSetup(BaseModel):
    """What the IdP's administrator enters for this connection (SAML or OIDC fields)."""

    entity_id: str | None = Field(description="SAML: our SP entity ID (the metadata URL).")
    metadata_url: str | None = Field(description="SAML: our SP metadata, for IdPs importing it.")
    acs_url: str | None = Field(description="SAML: the Assertion Consumer Service (HTTP-POST).")
    redirect_uri: str | None = Field(description="OIDC: the redirect URI to register.")
    sp_certificate_not_after: datetime | None = Field(
        description="SAML: when our signing certificate expires; IdPs that check it refuse "
        "our requests after that."
    )


class ConnectionOut(BaseModel):
    id: uuid.UUID
    name: str
    type: Literal["saml", "oidc"]
    settings: dict[str, Any] = Field(
        description="The IdP's side as stored (issuer, client id, IdP certificates...); never "
        "a private key or client secret."
    )
    jit: bool = Field(description="A first login of an unknown person creates their user.")
    idp_initiated: bool = Field(description="SAML: logins started at the IdP are accepted.")
    setup: IdpSetup
    test_login_url: str = Field(description="Open it to try a login through this connection.")
    created_at: datetime
    updated_at: datetime | None


class ConnectionList(BaseModel):
    data: list[ConnectionOut]


_HIDDEN = ("secret", "private", "password")


def _shown(settings: dict[str, Any]) -> dict[str, Any]:
    """The stored settings without anything named like a secret: secrets are kept apart by
    design, and this keeps it so should a setting ever be misfiled."""
    return {k: v for k, v in settings.items() if not any(w in k.lower() for w in _HIDDEN)}


def _not_after(pem: Any) -> datetime | None:
    if not isinstance(pem, str):
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
    except ValueError:
        return None


def _connection_out(call: Call, found: Connection) -> ConnectionOut:
    """As `idgate connection show` shows it, with the URLs built the way the SSO endpoints
    build them (the public base URL), so that what the IdP is told is what it will meet."""
    urls = connection_urls(_config(call)[SETTINGS].base_url, call.org.slug, found.name)
    saml = found.type == SAML
    not_after = _not_after(found.settings.get("sp_certificate")) if saml else None
    return ConnectionOut(
        id=found.id,
        name=found.name,
        type=found.type,  # type: ignore[arg-type]  # the store holds saml or oidc
        settings=_shown(found.settings),
        jit=found.jit,
        idp_initiated=found.idp_initiated,
        setup=IdpSetup(
            entity_id=urls.entity_id if saml else None,
            metadata_url=urls.metadata_url if saml else None,
            acs_url=urls.acs_url if saml else None,
            redirect_uri=None if saml else urls.redirect_uri,
            sp_certificate_not_after=not_after,
        ),
        test_login_url=urls.login_url,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


@api.route(
    "GET", "/orgs/{org}/connections", "List SSO connections", Need.READ, CONNECTIONS,
    response=ConnectionList,
)  # fmt: skip
async def list_connections(call: Call) -> ConnectionList:
    found = await _config(call)[SSO_STORE].list_connections(call.org.id)
    return ConnectionList(data=[_connection_out(call, c) for c in found])


@api.route(
    "GET", "/orgs/{org}/connections/{connection}", "An SSO connection", Need.READ, CONNECTIONS,
    response=ConnectionOut,
    description="With the URLs the IdP's administrator enters, and a login URL to test it.",
)  # fmt: skip
async def get_connection(call: Call) -> ConnectionOut:
    name = _path_id(call, "connection", "connection")
    found = await _config(call)[SSO_STORE].get_connection(call.org.id, name)
    if found is None:
        raise not_found("connection")
    return _connection_out(call, found)


# --- SCIM tokens -----------------------------------------------------------------------------


class ScimTokenOut(BaseModel):
    id: str
    name: str
    connection: str | None = Field(
        description="The SSO connection whose IdP pushes through this token: no other "
        "connection trusting its IdP's e-mail may take over the users it creates."
    )
    active: bool = Field(description="False once revoked.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ScimTokenList(BaseModel):
    data: list[ScimTokenOut]


class NewScimToken(Strict):
    name: str = Field(
        "scim", min_length=1, max_length=128, pattern=r"\S", description="A label for it."
    )
    connection: str | None = Field(None, max_length=63, description="An SSO connection's name.")


class ScimTokenMade(BaseModel):
    token: ScimTokenOut
    secret: str = Field(
        description="The bearer token for the IdP's provisioning settings: shown only now, "
        "stored hashed."
    )
    scim_base_url: str = Field(description="The SCIM base URL for the IdP.")
    replaced: str | None = Field(description="The token this one replaced (now revoked).")


async def _tenant(call: Call) -> Tenant:
    """The organisation as the SCIM store's token calls take it."""
    tenant: Tenant | None = await _config(call)[STORE].get_tenant(call.org.slug)
    if tenant is None:
        raise not_found("organisation")
    return tenant


async def _connection_names(call: Call) -> dict[uuid.UUID | None, str | None]:
    found = await _config(call)[SSO_STORE].list_connections(call.org.id)
    return {None: None} | {c.id: c.name for c in found}


def _token_out(record: TokenRecord, names: dict[uuid.UUID | None, str | None]) -> ScimTokenOut:
    return ScimTokenOut(
        id=record.id,
        name=record.name,
        connection=names.get(record.connection_id),
        active=record.revoked_at is None,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


async def _live_token(call: Call) -> tuple[Tenant, TokenRecord]:
    """The token the path names, still active (a revoked one can be neither revoked nor
    rotated again)."""
    token_id = _path_id(call, "token", "SCIM token")
    tenant = await _tenant(call)
    records = await _config(call)[STORE].list_tokens(tenant)
    record = next((r for r in records if r.id == token_id), None)
    if record is None:
        raise not_found("SCIM token")
    if record.revoked_at is not None:
        raise conflict("this token is already revoked")
    return tenant, record


def _scim_base_url(call: Call) -> str:
    return f"{_config(call)[SETTINGS].base_url}/scim/v2/{call.org.slug}"


@api.route(
    "GET", "/orgs/{org}/scim-tokens", "List SCIM tokens", Need.READ, TOKENS,
    response=ScimTokenList, description="Active and revoked, oldest first; never a secret.",
)  # fmt: skip
async def list_scim_tokens(call: Call) -> ScimTokenList:
    records = await _config(call)[STORE].list_tokens(await _tenant(call))
    names = await _connection_names(call)
    return ScimTokenList(data=[_token_out(r, names) for r in records])


@api.route(
    "POST", "/orgs/{org}/scim-tokens", "Create a SCIM token", Need.ADMIN, TOKENS,
    body=NewScimToken, response=ScimTokenMade, status=201,
    description="Several tokens may be active at once. The secret is answered only now.",
)  # fmt: skip
async def create_scim_token(call: Call) -> ScimTokenMade:
    body: NewScimToken = call.body
    connection_id = None
    if body.connection is not None:
        found = await _config(call)[SSO_STORE].get_connection(call.org.id, body.connection)
        if found is None:
            raise invalid(f"no connection {body.connection!r}", "connection")
        connection_id = found.id
    tenant = await _tenant(call)
    token_id, secret, secret_hash = new_token()
    now = _now(call)
    await _config(call)[STORE].create_token(
        tenant, token_id, body.name, secret_hash, now, connection_id
    )
    await _audit(call, "scim_token.created", f"scim_token:{token_id}", {"name": body.name})
    record = TokenRecord(token_id, tenant.slug, body.name, now, None, None, connection_id)
    return ScimTokenMade(
        token=_token_out(record, {connection_id: body.connection}),
        secret=secret,
        scim_base_url=_scim_base_url(call),
        replaced=None,
    )


@api.route(
    "POST", "/orgs/{org}/scim-tokens/{token}/rotate", "Rotate a SCIM token", Need.ADMIN,
    TOKENS, response=ScimTokenMade, status=201, errors=(409,),
    description="A new token of the same name and connection, and the old one revoked, in "
    "one step: paste the new secret into the IdP at once.",
)  # fmt: skip
async def rotate_scim_token(call: Call) -> ScimTokenMade:
    tenant, old = await _live_token(call)
    token_id, secret, secret_hash = new_token()
    made = await _config(call)[STORE].rotate_token(
        tenant, old.id, token_id, secret_hash, _now(call)
    )
    if made is None:
        raise conflict("this token was revoked meanwhile")
    await _audit(call, "scim_token.rotated", f"scim_token:{old.id}", {"replaced_by": token_id})
    return ScimTokenMade(
        token=_token_out(made, await _connection_names(call)),
        secret=secret,
        scim_base_url=_scim_base_url(call),
        replaced=old.id,
    )


@api.route(
    "POST", "/orgs/{org}/scim-tokens/{token}/revoke", "Revoke a SCIM token", Need.ADMIN,
    TOKENS, response=ScimTokenOut, errors=(409,),
    description="SCIM requests with it are refused from now on (after `token_cache_seconds` "
    "on gateways that cache tokens). It stays listed, revoked.",
)  # fmt: skip
async def revoke_scim_token(call: Call) -> ScimTokenOut:
    tenant, old = await _live_token(call)
    now = _now(call)
    if not await _config(call)[STORE].revoke_token(tenant, old.id, now):
        raise conflict("this token is already revoked")
    await _audit(call, "scim_token.revoked", f"scim_token:{old.id}", {"name": old.name})
    return _token_out(replace(old, revoked_at=now), await _connection_names(call))


# --- mapping rules ---------------------------------------------------------------------------


class MappingDocument(RootModel[dict[str, Any]]):
    """A mapping document (docs/mapping.md): `default_role`, `scim_roles`, `fields` and
    `rules`, each optional. It must name only the organisation's roles, groups and projects."""


class MappingOut(BaseModel):
    document: dict[str, Any] | None = Field(
        description="As stored: canonical names, every default filled in. None: no rules, "
        "every user holds the default role (readonly) unless given one by hand."
    )


class MappingChanged(MappingOut):
    users_recomputed: int = Field(description="Users whose grants were computed again.")
    grants_changed: int = Field(description="Grants given or taken back.")


class DryRunBody(Strict):
    user_id: uuid.UUID | None = Field(None, description="What the rules give this user now.")
    claims: dict[str, Any] | None = Field(
        None, description="SAML attributes or OIDC claims: what a login with them would get."
    )
    connection: str | None = Field(
        None, max_length=63, description="With `claims`: the connection the login comes through."
    )


class MappedGrant(BaseModel):
    kind: Literal["role", "group", "project"]
    target: str = Field(description="The role, product group or project.")
    role: str | None = Field(description="For a project: the role held on it.")
    rules: list[str] = Field(description="The rules that give it, in rule order.")


class DryRun(BaseModel):
    grants: list[MappedGrant]
    default_role: str | None = Field(
        description="The organisation role held because no rule gives one."
    )
    scim_roles: list[str] = Field(
        description="Roles the SCIM client pushed on the user that the rules accept."
    )
    explanation: list[str] = Field(description="One line per grant and why.")


def _invalid_mapping(exc: MappingError, status: int = 400, prefix: str = "") -> ApiError:
    return ApiError(
        status,
        "invalid_mapping",
        prefix + str(exc),
        [FieldError(field=exc.path or "document", message=exc.message)],
    )


async def _stored_mapping(call: Call) -> dict[str, Any] | None:
    document: dict[str, Any] | None = await _config(call)[ACCESS].store.document(call.org.id)
    return document


@api.route(
    "GET", "/orgs/{org}/mapping", "The mapping rules", Need.READ, MAPPING, response=MappingOut,
    description="The rules that give roles, product groups and project roles from what the "
    "IdP says (SCIM attributes and groups, SSO claims).",
)  # fmt: skip
async def get_mapping(call: Call) -> MappingOut:
    return MappingOut(document=await _stored_mapping(call))


@api.route(
    "PUT", "/orgs/{org}/mapping", "Replace the mapping rules", Need.ADMIN, MAPPING,
    body=MappingDocument, response=MappingChanged,
    description="Checked as `idgate mapping set` checks a file: a document that does not "
    "validate is refused (the path at fault in `errors`) and changes nothing. Otherwise "
    "every user's grants are computed again.",
)  # fmt: skip
async def set_mapping(call: Call) -> MappingChanged:
    try:
        users, changes = await _config(call)[ACCESS].set_rules(
            call.org.id, call.body.root, call.actor
        )
    except MappingError as exc:
        raise _invalid_mapping(exc) from None
    counts = {"users_recomputed": users, "grants_changed": changes}
    await _audit(call, "mapping.replaced", "mapping", counts)
    return MappingChanged(document=await _stored_mapping(call), **counts)


@api.route(
    "DELETE", "/orgs/{org}/mapping", "Remove the mapping rules", Need.ADMIN, MAPPING,
    response=MappingChanged,
    description="Every grant the rules gave, and every role a SCIM client pushed, is taken "
    "back; grants given by hand stay.",
)  # fmt: skip
async def delete_mapping(call: Call) -> MappingChanged:
    users, changes = await _config(call)[ACCESS].set_rules(call.org.id, None, call.actor)
    counts = {"users_recomputed": users, "grants_changed": changes}
    await _audit(call, "mapping.removed", "mapping", counts)
    return MappingChanged(document=None, **counts)


def _dry_run(assignment: Assignment, scim_roles: list[str]) -> DryRun:
    """As `idgate mapping test` answers."""
    return DryRun(
        grants=[
            MappedGrant(kind=g.kind, target=g.target, role=g.role, rules=list(g.rules))  # type: ignore[arg-type]
            for g in assignment.grants
        ],
        default_role=assignment.default_role,
        scim_roles=scim_roles,
        explanation=assignment.explain()
        + [f"role {r}  ← pushed by SCIM (accepted by scim_roles)" for r in scim_roles],
    )


@api.route(
    "POST", "/orgs/{org}/mapping/dry-run", "Try the mapping rules", Need.READ, MAPPING,
    body=DryRunBody, response=DryRun, errors=(409,),
    description="What the rules give a user now, or a login with these claims, and why. "
    "Give exactly one of `user_id` and `claims`. Writes nothing.",
)  # fmt: skip
async def dry_run_mapping(call: Call) -> DryRun:
    body: DryRunBody = call.body
    if (body.user_id is None) == (body.claims is None):
        raise invalid("give exactly one of user_id and claims", "body")
    if body.connection is not None and body.claims is None:
        raise invalid("a connection goes with claims", "connection")
    access = _config(call)[ACCESS]
    try:
        if body.claims is not None:
            found = await access.explain_claims(call.org.id, body.claims, body.connection)
            return _dry_run(found, [])
        explained = await access.explain_user(call.org.id, body.user_id)
    except MappingError as exc:
        raise _invalid_mapping(exc, 409, "the stored rules no longer validate: ") from None
    if explained is None:
        raise not_found("user")
    return _dry_run(*explained)


# --- webhooks --------------------------------------------------------------------------------


class SigningSecret(BaseModel):
    created_at: datetime
    expires_at: datetime | None = Field(description="None: it signs until the next rotation.")


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str] = Field(description="The event types sent; empty: every type.")
    enabled: bool
    signing_secrets: list[SigningSecret] = Field(
        description="The secrets in use, newest first (never their values)."
    )
    last_event_queued: int = Field(description="The sequence of the last event queued for it.")
    created_at: datetime


class WebhookList(BaseModel):
    data: list[WebhookOut]


EventType = Annotated[str, Field(max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)+$")]


class NewWebhook(Strict):
    url: str = Field(max_length=2048, description="https (http only to this machine).")
    events: list[EventType] = Field(
        default_factory=list, max_length=50, description="Only these event types; none: all."
    )


class WebhookMade(BaseModel):
    endpoint: WebhookOut
    secret: str = Field(
        description="The signing secret (whsec_...) for the receiver: shown only now."
    )


class RotateQuery(BaseModel):
    overlap_hours: float = Field(
        24, ge=0, le=720, description="How long the secrets in use keep signing beside the new."
    )


class DeliveryQuery(BaseModel):
    status: Literal["pending", "delivered", "dead"] | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class DeliveryOut(BaseModel):
    sequence: int = Field(description="The event's sequence number.")
    event_id: str
    resource: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_status: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str | None
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


class Redelivered(BaseModel):
    queued: int = Field(description="Deliveries queued again, from now, with fresh retries.")


def _webhooks(call: Call) -> WebhookStore:
    return WebhookStore(_config(call)[ENGINE])


def _webhook_out(endpoint: Endpoint, now: datetime) -> WebhookOut:
    in_use = [
        SigningSecret(created_at=s["created_at"], expires_at=s.get("expires_at"))
        for s in endpoint.secrets
        if s.get("expires_at") is None or datetime.fromisoformat(s["expires_at"]) > now
    ]
    return WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.event_types),
        enabled=endpoint.enabled,
        signing_secrets=in_use,
        last_event_queued=endpoint.cursor,
        created_at=endpoint.created_at,
    )


async def _find_endpoint(call: Call, endpoint_id: str) -> Endpoint:
    found = await _webhooks(call).endpoints(call.org.id)
    endpoint = next((e for e in found if e.id == endpoint_id), None)
    if endpoint is None:
        raise not_found("webhook endpoint")
    return endpoint


async def _endpoint(call: Call) -> Endpoint:
    return await _find_endpoint(call, _path_id(call, "endpoint", "webhook endpoint"))


async def _fresh(call: Call, endpoint_id: str) -> WebhookOut:
    """The endpoint as a write left it (removed meanwhile: 404)."""
    return _webhook_out(await _find_endpoint(call, endpoint_id), _now(call))


@api.route(
    "GET", "/orgs/{org}/webhooks", "List webhook endpoints", Need.READ, WEBHOOKS,
    response=WebhookList, description="Never their secrets.",
)  # fmt: skip
async def list_webhooks(call: Call) -> WebhookList:
    found = await _webhooks(call).endpoints(call.org.id)
    now = _now(call)
    return WebhookList(data=[_webhook_out(e, now) for e in found])


@api.route(
    "GET", "/orgs/{org}/webhooks/{endpoint}", "A webhook endpoint", Need.READ, WEBHOOKS,
    response=WebhookOut,
)  # fmt: skip
async def get_webhook(call: Call) -> WebhookOut:
    return _webhook_out(await _endpoint(call), _now(call))


@api.route(
    "POST", "/orgs/{org}/webhooks", "Add a webhook endpoint", Need.ADMIN, WEBHOOKS,
    body=NewWebhook, response=WebhookMade, status=201,
    description="Events from now on are POSTed to it, signed the Standard Webhooks way with "
    "the secret answered only now.",
)  # fmt: skip
async def add_webhook(call: Call) -> WebhookMade:
    body: NewWebhook = call.body
    try:
        check_url(body.url, "the webhook URL")
    except ValueError as exc:
        raise invalid(str(exc), "url") from None
    secret = new_secret()
    added = await _webhooks(call).add_endpoint(
        call.org.id, new_endpoint_id(), body.url, body.events, secret, _now(call)
    )
    await _audit(call, "webhook.added", f"webhook:{added.id}", {"url": body.url})
    return WebhookMade(endpoint=_webhook_out(added, _now(call)), secret=secret)


async def _set_enabled(call: Call, enabled: bool) -> WebhookOut:
    endpoint = await _endpoint(call)
    if not await _webhooks(call).set_enabled(call.org.id, endpoint.id, enabled):
        raise not_found("webhook endpoint")
    action = "webhook.enabled" if enabled else "webhook.disabled"
    await _audit(call, action, f"webhook:{endpoint.id}", {})
    return await _fresh(call, endpoint.id)


@api.route(
    "POST", "/orgs/{org}/webhooks/{endpoint}/enable", "Enable a webhook endpoint", Need.ADMIN,
    WEBHOOKS, response=WebhookOut, description="What queued meanwhile is delivered.",
)  # fmt: skip
async def enable_webhook(call: Call) -> WebhookOut:
    return await _set_enabled(call, True)


@api.route(
    "POST", "/orgs/{org}/webhooks/{endpoint}/disable", "Disable a webhook endpoint",
    Need.ADMIN, WEBHOOKS, response=WebhookOut,
    description="Nothing is sent to it; its events keep queueing until it is enabled.",
)  # fmt: skip
async def disable_webhook(call: Call) -> WebhookOut:
    return await _set_enabled(call, False)


@api.route(
    "DELETE", "/orgs/{org}/webhooks/{endpoint}", "Remove a webhook endpoint", Need.ADMIN,
    WEBHOOKS, status=204, description="With its deliveries.",
)  # fmt: skip
async def remove_webhook(call: Call) -> None:
    endpoint_id = _path_id(call, "endpoint", "webhook endpoint")
    if not await _webhooks(call).remove_endpoint(call.org.id, endpoint_id):
        raise not_found("webhook endpoint")
    await _audit(call, "webhook.removed", f"webhook:{endpoint_id}", {})


@api.route(
    "POST", "/orgs/{org}/webhooks/{endpoint}/rotate-secret", "Rotate a signing secret",
    Need.ADMIN, WEBHOOKS, query=RotateQuery, response=WebhookMade,
    description="A new signing secret, answered only now. The secrets in use keep signing "
    "beside it for `overlap_hours`, so the receiver can switch over.",
)  # fmt: skip
async def rotate_webhook_secret(call: Call) -> WebhookMade:
    endpoint = await _endpoint(call)
    secret, now = new_secret(), _now(call)
    overlap = timedelta(hours=call.query.overlap_hours)
    if not await _webhooks(call).rotate_secret(
        call.org.id, endpoint.id, secret, now, now + overlap
    ):
        raise not_found("webhook endpoint")
    details = {"overlap_hours": call.query.overlap_hours}
    await _audit(call, "webhook.secret_rotated", f"webhook:{endpoint.id}", details)
    return WebhookMade(endpoint=await _fresh(call, endpoint.id), secret=secret)


def _delivery_out(record: DeliveryRecord) -> DeliveryOut:
    return DeliveryOut(
        sequence=record.seq,
        event_id=record.event_id,
        resource=record.resource,
        status=record.status,  # type: ignore[arg-type]  # the store's three statuses
        attempts=record.attempts,
        next_attempt_at=record.next_attempt_at,
        last_status=record.last_status,
        last_error=record.last_error,
        delivered_at=record.delivered_at,
    )


@api.route(
    "GET", "/orgs/{org}/webhooks/{endpoint}/deliveries", "An endpoint's deliveries",
    Need.READ, WEBHOOKS, query=DeliveryQuery, response=DeliveryList,
    description="The newest first: which event, how it went, when it is tried again.",
)  # fmt: skip
async def list_webhook_deliveries(call: Call) -> DeliveryList:
    endpoint = await _endpoint(call)
    query: DeliveryQuery = call.query
    found = await _webhooks(call).deliveries(
        call.org.id, endpoint_id=endpoint.id, status=query.status, limit=query.limit
    )
    return DeliveryList(data=[_delivery_out(d) for d in found])


@api.route(
    "POST", "/orgs/{org}/webhooks/{endpoint}/deliveries/{event}/redeliver",
    "Send a delivery again", Need.ADMIN, WEBHOOKS, response=Redelivered,
    description="The event is sent to the endpoint again from now, with a fresh retry "
    "schedule (whether it was delivered, pending or dead).",
)  # fmt: skip
async def redeliver_webhook_delivery(call: Call) -> Redelivered:
    endpoint = await _endpoint(call)
    event_id = _path_id(call, "event", "delivery")
    queued = await _webhooks(call).redeliver(
        call.org.id, endpoint.id, _now(call), event_ids=[event_id]
    )
    if not queued:
        raise not_found("delivery")
    await _audit(call, "webhook.redelivered", f"webhook:{endpoint.id}", {"event": event_id})
    return Redelivered(queued=queued)


# --- audit log -------------------------------------------------------------------------------


class AuditQuery(BaseModel):
    action: str | None = Field(
        None, max_length=128, description="Only actions starting with this (`role.`)."
    )
    user_id: uuid.UUID | None = Field(None, description="Only entries about this user.")
    since: Instant | None = Field(None, description="At or after this time.")
    until: Instant | None = Field(None, description="Before this time.")
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, max_length=64, description="`next_cursor` of a page.")
    before_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="Only entries older than this `id`."
    )


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="scim:<token>, sso:<connection>, apikey:<key>, user:<id>...")
    action: str
    target: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    data: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


_CURSOR = "audit:"


def _cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR}{entry_id}".encode()).decode()


def _before(query: AuditQuery) -> int | None:
    """Where a page starts: after the entry a cursor or `before_id` names."""
    if query.cursor is None:
        return query.before_id
    if query.before_id is not None:
        raise invalid("give cursor or before_id, not both", "cursor")
    try:
        text = base64.urlsafe_b64decode(query.cursor.encode()).decode()
        if text.startswith(_CURSOR) and text[len(_CURSOR) :].isdigit():
            return int(text[len(_CURSOR) :])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid("not a cursor this API gave", "cursor")


def _audit_out(entry: AuditEntry) -> AuditEntryOut:
    assert entry.at is not None  # read from the log: always stamped
    return AuditEntryOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        details=entry.details,
    )


@api.route(
    "GET", "/orgs/{org}/audit-log", "The audit log", Need.READ, AUDIT_LOG,
    query=AuditQuery, response=AuditPage,
    description="The newest first: who changed what (users, roles, groups, tokens, rules, "
    "webhooks) and which logins were refused, and why. Follow `next_cursor`, or pass the "
    "last `id` as `before_id`, for older entries.",
)  # fmt: skip
async def list_audit_log(call: Call) -> AuditPage:
    query: AuditQuery = call.query
    entries = await _config(call)[AUDIT].latest(
        call.org.id,
        limit=query.limit + 1,
        action=query.action,
        target=f"user:{query.user_id}" if query.user_id else None,
        since=query.since,
        until=query.until,
        before_id=_before(query),
    )
    page = entries[: query.limit]
    more = len(entries) > query.limit
    return AuditPage(
        data=[_audit_out(e) for e in page], next_cursor=_cursor(page[-1].id) if more else None
    )


# --- SCIM request log ------------------------------------------------------------------------


class ScimLogQuery(BaseModel):
    errors: bool = Field(False, description="Only requests answered with a status >= 400.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    bodies: bool = Field(False, description="Include the (redacted) bodies.")


class ScimRequestOut(BaseModel):
    id: int
    at: datetime
    token_id: str | None = Field(description="The SCIM token the request came with.")
    user_agent: str | None
    method: str
    path: str
    status: int
    duration_ms: float
    request_body: str | None = Field(description="Redacted and cut; only with `bodies`.")
    response_body: str | None = Field(description="Cut (an error's redacted); with `bodies`.")


class ScimLog(BaseModel):
    recording: bool = Field(description="Whether this gateway records SCIM requests now.")
    data: list[ScimRequestOut]


def _logged_out(entry: LoggedRequest, bodies: bool) -> ScimRequestOut:
    return ScimRequestOut(
        id=entry.id,
        at=entry.at,
        token_id=entry.token_id,
        user_agent=entry.user_agent,
        method=entry.method,
        path=entry.path,
        status=entry.status,
        duration_ms=entry.duration_ms,
        request_body=entry.request_body if bodies else None,
        response_body=entry.response_body if bodies else None,
    )


@api.route(
    "GET", "/orgs/{org}/scim-log", "The SCIM request log", Need.READ, SCIM_LOG,
    query=ScimLogQuery, response=ScimLog,
    description="The latest SCIM requests, newest first: what the IdP sent and what it was "
    "answered, as `idgate scim-log` shows them.",
)  # fmt: skip
async def list_scim_log(call: Call) -> ScimLog:
    query: ScimLogQuery = call.query
    config = _config(call)
    found = await RequestLogStore(config[ENGINE]).recent(
        call.org.id, query.limit, min_status=400 if query.errors else 0, method=query.method
    )
    return ScimLog(
        recording=REQUEST_LOG in config, data=[_logged_out(e, query.bodies) for e in found]
    )

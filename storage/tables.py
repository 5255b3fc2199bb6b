"""Table definitions (SQLAlchemy Core). Migrations in storage/migrations create them.

Users and Groups keep the SCIM resource body in `data` (JSONB) and copy the attributes that are
looked up or constrained into columns. Group membership is a table of its own so that it can be
changed set-wise (`INSERT ... ON CONFLICT DO NOTHING`, `DELETE ... WHERE member_id IN`), never
by rewriting a list.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("settings", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The reseller organisation this one depends on (migration 0017).
    Column("parent_id", Uuid, ForeignKey("tenants.id", ondelete="SET NULL")),
)

scim_tokens = Table(
    "scim_tokens",
    metadata,
    Column("id", Text, primary_key=True),  # tok_<hex>, shown to people
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),  # SHA-256 of the secret
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    # The connection whose IdP pushes through this token (migration 0012).
    Column("connection_id", Uuid, ForeignKey("sso_connections.id", ondelete="SET NULL")),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("user_name", Text, nullable=False),
    Column("external_id", Text),
    Column("display_name", Text),
    Column("active", Boolean, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("password_hash", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text),  # the actor: scim:<token id> | sso:<connection> (0012)
    # Blocked by an administrator (migration 0014): out like a deactivated user.
    Column("blocked_at", DateTime(timezone=True)),
    Column("blocked_reason", Text),
    Column("account_id", Uuid),  # the same person's users in other organisations (0020)
)

groups = Table(
    "groups",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("external_id", Text),
    Column("data", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # 'scim' (pushed by an IdP; the only groups SCIM sees) or 'product' (made by an admin).
    Column("origin", Text, nullable=False, server_default="scim"),
)

# Kept by triggers (migration 0002): the exact number of users / groups per tenant, in slots.
resource_counts = Table(
    "resource_counts",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", Text, primary_key=True),  # 'User' | 'Group'
    Column("slot", SmallInteger, primary_key=True),
    Column("n", BigInteger, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("member_type", Text, nullable=False),  # 'User' | 'Group'
    # 'scim' (a SCIM client), or for product groups 'mapped' (the rules) or 'manual'.
    Column("source", Text, nullable=False, server_default="scim"),  # migration 0011
)

# The SCIM request log (migration 0004): one row per request, bodies redacted and truncated.
scim_requests = Table(
    "scim_requests",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("token_id", Text),
    Column("user_agent", Text),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("request_body", Text),
    Column("response_body", Text),
)

# SSO (migration 0005): connections to a tenant's IdPs, its e-mail domains, its return URLs.
sso_connections = Table(
    "sso_connections",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("type", Text, nullable=False),  # 'saml' | 'oidc'
    Column("settings", JSONB, nullable=False),  # the IdP's side: shown
    Column("secrets", JSONB, nullable=False),  # our side's keys and client secret: never shown
    Column("jit", Boolean, nullable=False),
    Column("idp_initiated", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

tenant_domains = Table(
    "tenant_domains",
    metadata,
    Column("domain", Text, primary_key=True),  # lower case; one tenant per domain
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tenant_return_urls = Table(
    "tenant_return_urls",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("url", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# SSO login state (migration 0006).
sso_requests = Table(
    "sso_requests",
    metadata,
    Column("id", Text, primary_key=True),  # SAML request ID / OIDC state
    Column(
        "connection_id", Uuid, ForeignKey("sso_connections.id", ondelete="CASCADE"), nullable=False
    ),
    Column("data", JSONB, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

sso_assertions = Table(
    "sso_assertions",
    metadata,
    Column(
        "connection_id",
        Uuid,
        ForeignKey("sso_connections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("assertion_id", Text, primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Browser sessions after an SSO login (migration 0007).
sessions = Table(
    "sessions",
    metadata,
    Column("secret_hash", LargeBinary, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("connection_id", Uuid, ForeignKey("sso_connections.id", ondelete="SET NULL")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("idle_seconds", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# Links from an IdP's subject to a user (migration 0008).
sso_identities = Table(
    "sso_identities",
    metadata,
    Column(
        "connection_id",
        Uuid,
        ForeignKey("sso_connections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("subject", Text, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_login_at", DateTime(timezone=True), nullable=False),
    Column("created_user", Boolean, nullable=False, server_default="false"),  # migration 0010
    Column("claims", JSONB, nullable=False, server_default="{}"),  # the last login's; 0011
)

# Keys for the identity tokens handed to the product (migration 0009); the newest signs.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Access (migration 0011): custom roles, projects, grants, the mapping document, the audit log.
roles = Table(
    "roles",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", Text, primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE")),  # None: the org
    Column("role", Text, nullable=False),
    Column("source", Text, nullable=False),  # 'mapped' | 'scim' | 'manual'
    Column("rules", ARRAY(Text), nullable=False, server_default="{}"),
    Column("granted_at", DateTime(timezone=True), nullable=False),
)

mapping_documents = Table(
    "mapping_documents",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("document", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default="{}"),
)

# Events for the product, written by triggers (migration 0014), numbered per tenant after
# commit by idgate_sequence_events.
event_counters = Table(
    "event_counters",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("serial", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger),  # the tenant's number, given after commit (None until then)
    Column("id", Text, nullable=False, unique=True),  # evt_<hex>
    Column("type", Text, nullable=False),  # user.created, group.member_added, ...
    Column("resource_type", Text, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

# API keys, webhook endpoints and deliveries (migration 0015).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),  # key_<hex>, shown to people
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),  # whk_<hex>
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),  # empty: every type
    Column("secrets", JSONB, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("cursor", BigInteger, nullable=False),  # the last event fanned out
    Column("created_at", DateTime(timezone=True), nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column(
        "endpoint_id",
        Text,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", BigInteger, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("first_attempt_at", DateTime(timezone=True)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
)

# Users deleted under the soft-delete policy, kept until purged (migration 0014).
deleted_users = Table(
    "deleted_users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("user_name", Text, nullable=False),
    Column("external_id", Text),
    Column("data", JSONB, nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
    Column("deleted_by", Text),
)

# Logins and failed logins per user (migration 0017).
user_activity = Table(
    "user_activity",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("last_login_at", DateTime(timezone=True)),
    Column("logins", BigInteger, nullable=False, server_default="0"),
    Column("last_failed_login_at", DateTime(timezone=True)),
    Column("failed_logins", BigInteger, nullable=False, server_default="0"),
)

# What an admin sets for one user: its own session idle limit (migration 0021).
user_policies = Table(
    "user_policies",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("session_idle_seconds", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Users invited by an admin, pending until they accept (migration 0017).
invitations = Table(
    "invitations",
    metadata,
    Column("id", Text, primary_key=True),  # inv_<hex>
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="SET NULL")),
    Column("email", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("sends", Integer, nullable=False, server_default="1"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# Confirmed CSV imports by the digest of their rows (migration 0017).
csv_imports = Table(
    "csv_imports",
    metadata,
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", Text, primary_key=True),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("result", JSONB, nullable=False),
)

# Passwords and TOTP secrets of local logins (migration 0018).
local_credentials = Table(
    "local_credentials",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, in PHC string form
    Column("totp_secret", Text, nullable=False),  # base32
    Column("totp_confirmed", Boolean, nullable=False, server_default="false"),
    Column("totp_last_step", BigInteger),  # the last accepted code's time step
    Column("failures", Integer, nullable=False, server_default="0"),  # since the last success
    Column("locked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Partner organisations enabled on a client's projects, and the partner users working there
# (migration 0019).
partner_projects = Table(
    "partner_projects",
    metadata,
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("partner_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("enabled_by", Text, nullable=False),
    Column("enabled_at", DateTime(timezone=True), nullable=False),
)

partner_members = Table(
    "partner_members",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("partner_id", Uuid, nullable=False),
    Column("added_by", Text, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["project_id", "partner_id"],
        ["partner_projects.project_id", "partner_projects.partner_id"],
        ondelete="CASCADE",
    ),
)

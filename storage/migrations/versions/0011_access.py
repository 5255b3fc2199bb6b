"""Access: the tenant's custom roles and projects, role grants with their source, the
mapping document that drives them from the IdP, where a login's claims are kept, and the
audit log.

- `roles` holds a tenant's own roles; the built-in ones (owner, admin, member, readonly) are
  not stored. Names are unique per tenant whatever their case.
- `role_grants`: one row per (user, project or none, role, source). `source` is `mapped`
  (recomputed from the mapping rules), `scim` (pushed in the SCIM `roles` attribute and
  accepted by the rules) or `manual` (given by an administrator, never recomputed).
- `group_members.source`: how a member joined: `scim` (a SCIM client), `mapped` or `manual`
  (product groups only).
- `sso_identities.claims`: the attributes of the identity's last login, which the rules read
  again whenever the user's grants are recomputed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _tenant() -> sa.ForeignKey:
    return sa.ForeignKey("tenants.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("tenant_id", sa.Uuid, _tenant(), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("CREATE UNIQUE INDEX roles_name_idx ON roles (tenant_id, lower(name))")
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, _tenant(), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("CREATE UNIQUE INDEX projects_name_idx ON projects (tenant_id, lower(name))")
    op.create_table(
        "role_grants",
        sa.Column("tenant_id", sa.Uuid, _tenant(), nullable=False),
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("project_id", sa.Uuid, sa.ForeignKey("projects.id", ondelete="CASCADE")),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("rules", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('mapped', 'scim', 'manual')", name="role_grants_source"),
    )
    op.execute(
        "CREATE UNIQUE INDEX role_grants_key ON role_grants "
        "(user_id, project_id, role, source) NULLS NOT DISTINCT"
    )
    op.execute("CREATE INDEX role_grants_tenant_role_idx ON role_grants (tenant_id, lower(role))")
    op.add_column(
        "group_members", sa.Column("source", sa.Text, nullable=False, server_default="scim")
    )
    op.create_table(
        "mapping_documents",
        sa.Column("tenant_id", sa.Uuid, _tenant(), primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column(
        "sso_identities",
        sa.Column("claims", JSONB, nullable=False, server_default="{}"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, _tenant(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),  # e.g. scim:tok_..., sso:okta, cli, system
        sa.Column("action", sa.Text, nullable=False),  # e.g. role.granted
        sa.Column("target", sa.Text, nullable=False),  # e.g. user:<uuid>
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index("audit_log_tenant_idx", "audit_log", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_column("sso_identities", "claims")
    op.drop_table("mapping_documents")
    op.drop_column("group_members", "source")
    op.drop_table("role_grants")
    op.drop_table("projects")
    op.drop_table("roles")

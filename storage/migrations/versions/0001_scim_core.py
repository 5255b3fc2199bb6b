"""Tenants, SCIM tokens, users, groups and memberships.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("slug", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("settings", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS),
        sa.Column("revoked_at", TS),
    )
    op.create_index("scim_tokens_tenant_idx", "scim_tokens", ["tenant_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("display_name", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    # userName is unique per tenant, case-insensitively (RFC 7643 §4.1.1: caseExact false,
    # uniqueness server).
    op.execute("CREATE UNIQUE INDEX users_user_name_uq ON users (tenant_id, lower(user_name))")
    op.execute("CREATE INDEX users_tenant_id_idx ON users (tenant_id, id)")
    op.execute("CREATE INDEX users_external_id_idx ON users (tenant_id, external_id)")
    # Lower-cased `value`s of a multi-valued attribute, so that `emails[value eq "x"]` and
    # `emails.value eq "x"` are answered from a GIN index instead of a scan.
    op.execute(
        """
        CREATE FUNCTION idgate_ci_values(jsonb) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
          SELECT coalesce(array_agg(lower(e ->> 'value')), '{}')
          FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof($1) = 'array' THEN $1 ELSE '[]'::jsonb END) AS e
        $$
        """
    )
    op.execute(
        "CREATE INDEX users_emails_idx ON users USING gin (idgate_ci_values(data -> 'emails'))"
        # Entries go straight into the index: lookups never scan a pending list.
        " WITH (fastupdate = off)"
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.execute("CREATE INDEX groups_tenant_id_idx ON groups (tenant_id, id)")
    op.execute("CREATE INDEX groups_display_name_idx ON groups (tenant_id, lower(display_name))")
    op.execute("CREATE INDEX groups_external_id_idx ON groups (tenant_id, external_id)")
    op.create_table(
        "group_members",
        sa.Column(
            "group_id",
            sa.Uuid,
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("member_id", sa.Uuid, primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("member_type", sa.Text, nullable=False),
    )
    op.create_index("group_members_member_idx", "group_members", ["member_id"])


def downgrade() -> None:
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_index("users_emails_idx")
    op.execute("DROP FUNCTION idgate_ci_values(jsonb)")
    op.drop_table("users")
    op.drop_table("scim_tokens")
    op.drop_table("tenants")

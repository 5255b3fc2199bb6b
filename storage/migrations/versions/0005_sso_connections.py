"""SSO connections of tenants, their e-mail domains and allowed return URLs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _tenant() -> sa.Column[object]:
    return sa.Column(
        "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "sso_connections",
        sa.Column("id", sa.Uuid, primary_key=True),
        _tenant(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        # What the IdP told us (metadata, issuer, client id): shown by `connection show`.
        sa.Column("settings", JSONB, nullable=False),
        # Our side's secrets (SP private key, OIDC client secret): never shown.
        sa.Column("secrets", JSONB, nullable=False),
        sa.Column("jit", sa.Boolean, nullable=False),
        sa.Column("idp_initiated", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("type IN ('saml', 'oidc')", name="sso_connections_type_ck"),
        sa.UniqueConstraint("tenant_id", "name", name="sso_connections_name_uq"),
    )
    # One tenant per e-mail domain: home-realm discovery must not be ambiguous.
    op.create_table(
        "tenant_domains",
        sa.Column("domain", sa.Text, primary_key=True),
        _tenant(),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("tenant_domains_tenant_idx", "tenant_domains", ["tenant_id"])
    op.create_table(
        "tenant_return_urls",
        _tenant(),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "url"),
    )


def downgrade() -> None:
    op.drop_table("tenant_return_urls")
    op.drop_table("tenant_domains")
    op.drop_table("sso_connections")

"""The per-tenant SCIM request log that operators read (`idgate scim-log`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scim_requests",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("token_id", sa.Text),
        sa.Column("user_agent", sa.Text),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("request_body", sa.Text),
        sa.Column("response_body", sa.Text),
    )
    # Reads are "this tenant's latest"; pruning is "everything before": rows arrive in time
    # order, so a BRIN index finds them at almost no cost per insert.
    op.execute("CREATE INDEX scim_requests_tenant_idx ON scim_requests (tenant_id, id DESC)")
    op.execute("CREATE INDEX scim_requests_at_idx ON scim_requests USING brin (at)")


def downgrade() -> None:
    op.drop_table("scim_requests")

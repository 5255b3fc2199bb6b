"""Browser sessions after an SSO login, in the database so that every replica sees them and
a logout or deprovisioning ends them everywhere at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("secret_hash", sa.LargeBinary, primary_key=True),  # SHA-256 of the cookie
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "connection_id",
            sa.Uuid,
            sa.ForeignKey("sso_connections.id", ondelete="SET NULL"),
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("idle_seconds", sa.Integer, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_index("sessions_user_idx", "sessions", ["user_id"])
    op.create_index("sessions_expires_idx", "sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sessions")

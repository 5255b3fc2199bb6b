"""Who an IdP's subject (SAML NameID, OIDC sub) is here: a link per connection to a user.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sso_identities",
        sa.Column(
            "connection_id",
            sa.Uuid,
            sa.ForeignKey("sso_connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "subject"),
    )
    op.create_index("sso_identities_user_idx", "sso_identities", ["user_id"])


def downgrade() -> None:
    op.drop_table("sso_identities")

"""Who manages an account, so that an SSO connection trusting its IdP's e-mail can tell an
account it may take over from one another connection's directory manages:
`users.created_by` (the actor that created the user: `scim:<token id>`, `sso:<connection>`)
and `scim_tokens.connection_id` (the connection whose IdP pushes through the token).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("created_by", sa.Text))
    op.add_column(
        "scim_tokens",
        sa.Column(
            "connection_id", sa.Uuid, sa.ForeignKey("sso_connections.id", ondelete="SET NULL")
        ),
    )


def downgrade() -> None:
    op.drop_column("scim_tokens", "connection_id")
    op.drop_column("users", "created_by")

"""Whether a login created the user it links to (just-in-time): such users are updated from
later logins' attributes; users a SCIM client pushed are left to it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sso_identities",
        sa.Column("created_user", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("sso_identities", "created_user")

"""Accounts: one person's users in several organisations.

A person who already has a user in one organisation and is invited to another may accept
the invitation with that user's session: both users then share `account_id`, and the person
switches between the organisations without logging in again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("account_id", sa.Uuid))
    op.create_index(
        "users_account_idx",
        "users",
        ["account_id"],
        postgresql_where=sa.text("account_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("users_account_idx", "users")
    op.drop_column("users", "account_id")

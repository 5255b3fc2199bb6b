"""The user search index takes new entries through a pending list.

Every user written re-inserts about 60 entries into `users_search_keys_idx` (migration 0016),
one posting tree each: a third of a SCIM Bulk's time. With `fastupdate` the entries are
appended to a pending list of at most 4 MB and merged into the trees in bulk, when the list
is full or by autovacuum; a search reads the pending list besides the trees, about a
millisecond when it is full.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER INDEX users_search_keys_idx SET (fastupdate = on, gin_pending_list_limit = 4096)"
    )


def downgrade() -> None:
    # Turning fastupdate off leaves the pending list in place until it is cleaned up.
    op.execute("ALTER INDEX users_search_keys_idx SET (fastupdate = off)")
    op.execute("ALTER INDEX users_search_keys_idx RESET (gin_pending_list_limit)")
    op.execute("SELECT gin_clean_pending_list('users_search_keys_idx'::regclass)")

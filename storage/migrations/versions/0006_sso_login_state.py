"""SSO login state that must outlive a request and be shared by every replica: the requests
we sent to IdPs (SAML AuthnRequest IDs, OIDC state) and the assertions already used (replay).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _connection() -> sa.Column[object]:
    return sa.Column(
        "connection_id",
        sa.Uuid,
        sa.ForeignKey("sso_connections.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    # One row per login sent to an IdP; taken (deleted) by the answer, so each is used once.
    op.create_table(
        "sso_requests",
        sa.Column("id", sa.Text, primary_key=True),  # SAML request ID / OIDC state
        _connection(),
        sa.Column("data", JSONB, nullable=False),  # return_to, OIDC nonce and PKCE verifier
        sa.Column("expires_at", TS, nullable=False),
    )
    op.execute("CREATE INDEX sso_requests_expires_idx ON sso_requests USING brin (expires_at)")
    # Assertions already accepted, until they expire: a replayed one is refused.
    op.create_table(
        "sso_assertions",
        _connection(),
        sa.Column("assertion_id", sa.Text, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "assertion_id"),
    )
    op.create_index("sso_assertions_expires_idx", "sso_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sso_assertions")
    op.drop_table("sso_requests")

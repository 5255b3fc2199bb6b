"""Local logins: a password and a TOTP second factor for people of a tenant without SSO (the
bootstrap owner, invited through `idgate owner create`).

- `local_credentials`: one row per user who has a local login. The password is an argon2id
  hash; the TOTP secret is kept as given to the authenticator app (it must be read to check
  a code), confirmed once the person has typed a code from it. `totp_last_step` is the time
  step of the last code accepted, so a code is never accepted twice. `failures` counts
  refused attempts since the last success; the fifth sets `locked_at`, which only an admin
  clears.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_credentials",
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("totp_secret", sa.Text, nullable=False),
        sa.Column("totp_confirmed", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("totp_last_step", sa.BigInteger),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("local_credentials_tenant_idx", "local_credentials", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("local_credentials")

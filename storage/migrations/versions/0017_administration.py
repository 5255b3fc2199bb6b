"""Organisation administration: resellers, activity, invitations and CSV imports.

- `tenants.parent_id`: the reseller organisation a tenant depends on; the reseller's admins
  see and manage the dependent's users.
- `user_activity`: logins, failed logins and the last of each, per user. Kept apart from
  `users` so that a login writes a small row and fires none of the user triggers (events,
  session-cache notifications).
  Triggers keep it: a session started is a login, an audited `login.failed` of a known user
  a failed one, whichever path wrote them.
- `invitations`: a user created by an admin waits (status pending) until they accept the
  link sent to them; the link is stored as the SHA-256 of its secret and expires.
- `csv_imports`: each confirmed CSV import by the digest of its rows, with its outcome, so
  that confirming the same file again changes nothing and answers the same.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _tenant() -> sa.Column[object]:
    return sa.Column(
        "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


_ACTIVITY = (
    """
CREATE FUNCTION idgate_activity_login() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO user_activity (user_id, tenant_id, last_login_at, logins)
  VALUES (NEW.user_id, NEW.tenant_id, NEW.created_at, 1)
  ON CONFLICT (user_id) DO UPDATE
    SET last_login_at = greatest(user_activity.last_login_at, EXCLUDED.last_login_at),
        logins = user_activity.logins + 1;
  RETURN NULL;
END $$""",
    """
CREATE TRIGGER idgate_activity_login AFTER INSERT ON sessions
  FOR EACH ROW EXECUTE FUNCTION idgate_activity_login()""",
    """
CREATE FUNCTION idgate_activity_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO user_activity (user_id, tenant_id, last_failed_login_at, failed_logins)
  SELECT u.id, u.tenant_id, NEW.at, 1 FROM users u
  WHERE u.id = substr(NEW.target, 6)::uuid AND u.tenant_id = NEW.tenant_id
  ON CONFLICT (user_id) DO UPDATE
    SET last_failed_login_at = greatest(user_activity.last_failed_login_at,
                                        EXCLUDED.last_failed_login_at),
        failed_logins = user_activity.failed_logins + 1;
  RETURN NULL;
END $$""",
    """
CREATE TRIGGER idgate_activity_failed AFTER INSERT ON audit_log
  FOR EACH ROW WHEN (NEW.action = 'login.failed' AND NEW.target LIKE 'user:%')
  EXECUTE FUNCTION idgate_activity_failed()""",
)


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("parent_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="SET NULL")),
    )
    op.create_index("tenants_parent_idx", "tenants", ["parent_id"])
    op.create_table(
        "user_activity",
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        _tenant(),
        sa.Column("last_login_at", sa.DateTime(timezone=True)),
        sa.Column("logins", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_failed_login_at", sa.DateTime(timezone=True)),
        sa.Column("failed_logins", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("user_activity_last_login_idx", "user_activity", ["tenant_id", "last_login_at"])
    for statement in _ACTIVITY:
        op.execute(statement)
    op.create_table(
        "invitations",
        sa.Column("id", sa.Text, primary_key=True),  # inv_<hex>
        _tenant(),
        # The pending user; gone (NULL) once a revoked invitation's user is deleted.
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sends", sa.Integer, nullable=False, server_default="1"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    # At most one open invitation per user; "pending" users are found through it.
    op.create_index(
        "invitations_open_idx",
        "invitations",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
    )
    op.create_index("invitations_tenant_idx", "invitations", ["tenant_id", "created_at"])
    op.create_table(
        "csv_imports",
        _tenant(),
        sa.Column("digest", sa.Text, nullable=False),  # SHA-256 of the normalised rows
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "digest"),
    )


def downgrade() -> None:
    op.drop_table("csv_imports")
    op.drop_table("invitations")
    op.execute("DROP TRIGGER idgate_activity_failed ON audit_log")
    op.execute("DROP TRIGGER idgate_activity_login ON sessions")
    op.execute("DROP FUNCTION idgate_activity_failed(), idgate_activity_login()")
    op.drop_table("user_activity")
    op.drop_index("tenants_parent_idx", "tenants")
    op.drop_column("tenants", "parent_id")

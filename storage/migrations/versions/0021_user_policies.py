"""Per-user session limits, and limits that apply to live sessions.

`user_policies` holds what an admin sets for one user: today an idle limit of its own
(a shorter one for a privileged user, say). A session's idle limit is, at each check, the
user's own, else its organisation's (`tenants.settings`), else the one it was started with:
a change applies to sessions already running. The triggers tell every replica's session
cache (`idgate_auth`, migration 0013) when either changes.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_policies",
        sa.Column(
            "user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("session_idle_seconds", sa.Integer),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("session_idle_seconds > 0", name="user_policies_idle_positive"),
    )
    op.execute(
        """
        CREATE FUNCTION idgate_notify_policy() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('idgate_auth',
                            'u:' || (CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id
                                     ELSE NEW.user_id END));
          RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER user_policies_notify AFTER INSERT OR UPDATE OR DELETE ON user_policies "
        "FOR EACH ROW EXECUTE FUNCTION idgate_notify_policy()"
    )
    op.execute(
        """
        CREATE FUNCTION idgate_notify_tenant_settings() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('idgate_auth', 't:' || NEW.id);
          RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER tenants_settings_notify AFTER UPDATE OF settings ON tenants "
        "FOR EACH ROW WHEN (OLD.settings IS DISTINCT FROM NEW.settings) "
        "EXECUTE FUNCTION idgate_notify_tenant_settings()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER tenants_settings_notify ON tenants")
    op.execute("DROP FUNCTION idgate_notify_tenant_settings()")
    op.execute("DROP TRIGGER user_policies_notify ON user_policies")
    op.execute("DROP FUNCTION idgate_notify_policy()")
    op.drop_table("user_policies")

"""Tell every gateway process at once when what `/auth/verify` answers for a user may have
changed, so that a process may keep checked sessions in memory: a NOTIFY on the channel
`idgate_auth` (sent when the transaction commits) with `u:<user id>` (the user's sessions,
row, grants or groups changed) or `t:<tenant id>` (something every session of the tenant
shows changed: a group renamed or deleted, the mapping rules' default role; or too many
users at once to name).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Changes of more users than this in one statement notify the tenant instead.
_MANY = 100

_FUNCTIONS = (
    """
    CREATE FUNCTION idgate_notify_user_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('idgate_auth',
                        'u:' || (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END));
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION idgate_notify_session() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('idgate_auth', 'u:' || NEW.user_id);
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION idgate_notify_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('idgate_auth', 't:' ||
                        (CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END));
      RETURN NULL;
    END $$
    """,
)

_ROW_TRIGGERS = (
    """
    CREATE TRIGGER sessions_revoked_notify AFTER UPDATE OF revoked_at ON sessions
      FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
      EXECUTE FUNCTION idgate_notify_session()
    """,
    """
    CREATE TRIGGER users_notify AFTER UPDATE OR DELETE ON users
      FOR EACH ROW EXECUTE FUNCTION idgate_notify_user_row()
    """,
    """
    CREATE TRIGGER groups_renamed_notify AFTER UPDATE OF display_name ON groups
      FOR EACH ROW WHEN (OLD.display_name IS DISTINCT FROM NEW.display_name)
      EXECUTE FUNCTION idgate_notify_tenant()
    """,
    """
    CREATE TRIGGER groups_deleted_notify AFTER DELETE ON groups
      FOR EACH ROW EXECUTE FUNCTION idgate_notify_tenant()
    """,
    """
    CREATE TRIGGER mapping_documents_notify AFTER INSERT OR UPDATE OR DELETE
      ON mapping_documents FOR EACH ROW EXECUTE FUNCTION idgate_notify_tenant()
    """,
)
# Tables changed many rows at a time: one statement-level trigger per event, over the rows
# it changed (a transition table serves one event only).
_SET_TABLES = (("role_grants", "user_id"), ("group_members", "member_id"))
_EVENTS = (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))


def _statement_function(table: str, column: str) -> str:
    """One NOTIFY per user the statement's rows name, or one per tenant when they are many."""
    return f"""
    CREATE FUNCTION idgate_notify_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      users_changed bigint;
    BEGIN
      SELECT count(DISTINCT {column}) INTO users_changed FROM changed;
      IF users_changed > {_MANY} THEN
        PERFORM pg_notify('idgate_auth', 't:' || tenant_id)
        FROM (SELECT DISTINCT tenant_id FROM changed) t;
      ELSE
        PERFORM pg_notify('idgate_auth', 'u:' || {column})
        FROM (SELECT DISTINCT {column} FROM changed) u;
      END IF;
      RETURN NULL;
    END $$
    """


def upgrade() -> None:
    for statement in (*_FUNCTIONS, *_ROW_TRIGGERS):
        op.execute(statement)
    for table, column in _SET_TABLES:
        op.execute(_statement_function(table, column))
        for event, rows in _EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_notify AFTER {event} ON {table} "
                f"REFERENCING {rows} TABLE AS changed "
                f"FOR EACH STATEMENT EXECUTE FUNCTION idgate_notify_{table}()"
            )


def downgrade() -> None:
    for table, _ in _SET_TABLES:
        for event, _ in _EVENTS:
            op.execute(f"DROP TRIGGER {table}_{event.lower()}_notify ON {table}")
        op.execute(f"DROP FUNCTION idgate_notify_{table}()")
    for table, trigger in (
        ("sessions", "sessions_revoked_notify"),
        ("users", "users_notify"),
        ("groups", "groups_renamed_notify"),
        ("groups", "groups_deleted_notify"),
        ("mapping_documents", "mapping_documents_notify"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute(
        "DROP FUNCTION idgate_notify_user_row(), idgate_notify_session(), idgate_notify_tenant()"
    )

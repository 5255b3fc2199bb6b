"""Events for the product, and the user lifecycle they announce.

Every change to users, groups, memberships, role grants and sessions, and every refused
login, is written to `events` by triggers, in the transaction of the change (so a change
that fails or rolls back has no event, and no write path can forget one).

Events are numbered per tenant (`seq`: 1, 2, 3, ... without gaps) after they commit, by
`idgate_sequence_events`, which readers call before reading: one run at a time, in the order
the events happened. A writer takes no lock for its events, and a reader that has seen
number N will never be shown a number at or below N again. Two changes of one resource are
serialised by their row locks, so the later one's events happen, and are numbered, after.

A user is out when deactivated (SCIM `active: false`) or blocked by an administrator
(`users.blocked_at`, with `blocked_reason`); the transaction that puts them out also revokes
their sessions (`session.revoked`). A user deleted under the soft-delete policy is moved to
`deleted_users` (kept until purged; the userName and externalId are free again).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_EMIT = """
CREATE FUNCTION idgate_emit(p_tenant uuid, p_types text[], p_resource_types text[],
                            p_resource_ids text[], p_data jsonb[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_types) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO events (tenant_id, id, type, resource_type, resource_id, data, occurred_at)
  SELECT p_tenant, 'evt_' || replace(gen_random_uuid()::text, '-', ''),
         t, rt, ri, d, clock_timestamp()
  FROM unnest(p_types, p_resource_types, p_resource_ids, p_data) WITH ORDINALITY
       AS x(t, rt, ri, d, i)
  ORDER BY i;
  -- Wakes the webhook workers when the transaction commits.
  PERFORM pg_notify('idgate_events', p_tenant::text);
END $$
"""

# Numbers the committed events that have none yet, per tenant, in the order they happened.
# One sequencer at a time (an advisory lock held to its commit): numbers only grow, and a
# run's numbers all become visible at its commit.
_SEQUENCE = """
CREATE FUNCTION idgate_sequence_events(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  numbered integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7152013);
  WITH ready AS (
    SELECT serial, tenant_id,
           row_number() OVER (PARTITION BY tenant_id ORDER BY occurred_at, serial) AS n
    FROM (SELECT serial, tenant_id, occurred_at FROM events WHERE seq IS NULL
          ORDER BY occurred_at, serial LIMIT p_limit) r
  ),
  counts AS (SELECT tenant_id, count(*) AS c FROM ready GROUP BY tenant_id),
  bumped AS (
    INSERT INTO event_counters AS ec (tenant_id, seq) SELECT tenant_id, c FROM counts
    ON CONFLICT (tenant_id) DO UPDATE SET seq = ec.seq + excluded.seq
    RETURNING tenant_id, seq
  )
  UPDATE events e SET seq = b.seq - c.c + r.n
  FROM ready r JOIN counts c USING (tenant_id) JOIN bumped b USING (tenant_id)
  WHERE e.serial = r.serial;
  GET DIAGNOSTICS numbered = ROW_COUNT;
  RETURN numbered;
END $$
"""


def _emitter(name: str, select: str) -> str:
    """A trigger function that emits the rows of `select` (columns: tenant_id, type,
    resource_type, resource_id, data, ord), grouped by tenant, in `ord` order."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM idgate_emit(tenant_id, array_agg(type ORDER BY ord),
                      array_agg(resource_type ORDER BY ord),
                      array_agg(resource_id ORDER BY ord), array_agg(data ORDER BY ord))
  FROM ({select}) e
  GROUP BY tenant_id;
  RETURN NULL;
END $$
"""


_USER = "n.data || jsonb_build_object('id', n.id)"
_GROUP = "n.data || jsonb_build_object('id', n.id, 'origin', n.origin)"
_EMITTERS = {
    "idgate_events_users_inserted": f"""
        SELECT n.tenant_id, 'user.created' AS type, 'User' AS resource_type,
               n.id::text AS resource_id, {_USER} AS data, n.id::text AS ord
        FROM new_rows n""",
    "idgate_events_users_updated": f"""
        SELECT n.tenant_id,
               CASE WHEN o.blocked_at IS NULL AND n.blocked_at IS NOT NULL THEN 'user.blocked'
                    WHEN o.blocked_at IS NOT NULL AND n.blocked_at IS NULL
                      THEN 'user.unblocked'
                    WHEN o.active AND NOT n.active THEN 'user.deactivated'
                    WHEN NOT o.active AND n.active THEN 'user.reactivated'
                    ELSE 'user.updated' END AS type,
               'User' AS resource_type, n.id::text AS resource_id,
               {_USER} || CASE WHEN n.blocked_at IS NULL THEN '{{}}'::jsonb
                               ELSE jsonb_build_object('blocked_at', n.blocked_at,
                                                       'blocked_reason', n.blocked_reason)
                          END AS data,
               n.id::text AS ord
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.data IS DISTINCT FROM n.data OR o.active IS DISTINCT FROM n.active
           OR o.blocked_at IS DISTINCT FROM n.blocked_at""",
    "idgate_events_users_deleted": """
        SELECT o.tenant_id, 'user.deleted' AS type, 'User' AS resource_type,
               o.id::text AS resource_id,
               jsonb_build_object('id', o.id, 'userName', o.user_name,
                                  'externalId', o.external_id) AS data,
               o.id::text AS ord
        FROM old_rows o""",
    "idgate_events_groups_inserted": f"""
        SELECT n.tenant_id, 'group.created' AS type, 'Group' AS resource_type,
               n.id::text AS resource_id, {_GROUP} AS data, n.id::text AS ord
        FROM new_rows n""",
    "idgate_events_groups_updated": f"""
        SELECT n.tenant_id, 'group.updated' AS type, 'Group' AS resource_type,
               n.id::text AS resource_id, {_GROUP} AS data, n.id::text AS ord
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.data IS DISTINCT FROM n.data""",
    "idgate_events_groups_deleted": """
        SELECT o.tenant_id, 'group.deleted' AS type, 'Group' AS resource_type,
               o.id::text AS resource_id,
               jsonb_build_object('id', o.id, 'displayName', o.display_name,
                                  'externalId', o.external_id, 'origin', o.origin) AS data,
               o.id::text AS ord
        FROM old_rows o""",
    "idgate_events_members_added": """
        SELECT n.tenant_id, 'group.member_added' AS type, 'Group' AS resource_type,
               n.group_id::text AS resource_id,
               jsonb_build_object('group_id', n.group_id, 'member_id', n.member_id,
                                  'member_type', n.member_type, 'source', n.source) AS data,
               n.group_id::text || n.member_id::text AS ord
        FROM new_rows n""",
    "idgate_events_members_removed": """
        SELECT o.tenant_id, 'group.member_removed' AS type, 'Group' AS resource_type,
               o.group_id::text AS resource_id,
               jsonb_build_object('group_id', o.group_id, 'member_id', o.member_id,
                                  'member_type', o.member_type, 'source', o.source) AS data,
               o.group_id::text || o.member_id::text AS ord
        FROM old_rows o""",
    "idgate_events_grants_added": """
        SELECT n.tenant_id, 'role.granted' AS type, 'User' AS resource_type,
               n.user_id::text AS resource_id,
               jsonb_build_object('user_id', n.user_id, 'role', n.role,
                                  'project_id', n.project_id, 'source', n.source,
                                  'rules', to_jsonb(n.rules)) AS data,
               n.user_id::text || coalesce(n.project_id::text, '') || n.role || n.source AS ord
        FROM new_rows n""",
    "idgate_events_grants_removed": """
        SELECT o.tenant_id, 'role.revoked' AS type, 'User' AS resource_type,
               o.user_id::text AS resource_id,
               jsonb_build_object('user_id', o.user_id, 'role', o.role,
                                  'project_id', o.project_id, 'source', o.source) AS data,
               o.user_id::text || coalesce(o.project_id::text, '') || o.role || o.source AS ord
        FROM old_rows o""",
    "idgate_events_sessions_started": """
        SELECT n.tenant_id, 'session.started' AS type, 'User' AS resource_type,
               n.user_id::text AS resource_id,
               jsonb_build_object('user_id', n.user_id, 'connection_id', n.connection_id,
                                  'expires_at', n.expires_at) AS data,
               n.user_id::text AS ord
        FROM new_rows n""",
    "idgate_events_sessions_revoked": """
        SELECT n.tenant_id, 'session.revoked' AS type, 'User' AS resource_type,
               n.user_id::text AS resource_id,
               jsonb_build_object('user_id', n.user_id, 'connection_id', n.connection_id)
                 AS data,
               n.user_id::text AS ord
        FROM new_rows n JOIN old_rows o ON o.secret_hash = n.secret_hash
        WHERE o.revoked_at IS NULL AND n.revoked_at IS NOT NULL""",
    "idgate_events_logins_failed": """
        SELECT n.tenant_id, 'login.failed' AS type, 'Login' AS resource_type,
               n.target AS resource_id,
               n.details || jsonb_build_object('target', n.target) AS data,
               lpad(n.id::text, 20, '0') AS ord
        FROM new_rows n WHERE n.action = 'login.failed'""",
}
_OLD, _NEW = "OLD TABLE AS old_rows", "NEW TABLE AS new_rows"
_BOTH = f"{_OLD} {_NEW}"
# (table, event, transition tables, function)
_TRIGGERS = (
    ("users", "INSERT", _NEW, "idgate_events_users_inserted"),
    ("users", "UPDATE", _BOTH, "idgate_events_users_updated"),
    ("users", "DELETE", _OLD, "idgate_events_users_deleted"),
    ("groups", "INSERT", _NEW, "idgate_events_groups_inserted"),
    ("groups", "UPDATE", _BOTH, "idgate_events_groups_updated"),
    ("groups", "DELETE", _OLD, "idgate_events_groups_deleted"),
    ("group_members", "INSERT", _NEW, "idgate_events_members_added"),
    ("group_members", "DELETE", _OLD, "idgate_events_members_removed"),
    ("role_grants", "INSERT", _NEW, "idgate_events_grants_added"),
    ("role_grants", "DELETE", _OLD, "idgate_events_grants_removed"),
    ("sessions", "INSERT", _NEW, "idgate_events_sessions_started"),
    ("sessions", "UPDATE", _BOTH, "idgate_events_sessions_revoked"),
    ("audit_log", "INSERT", _NEW, "idgate_events_logins_failed"),
)

_REVOKE_ON_DEACTIVATION = """
CREATE FUNCTION idgate_revoke_deactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE sessions s SET revoked_at = clock_timestamp()
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE s.user_id = n.id
    AND ((o.active AND NOT n.active) OR (o.blocked_at IS NULL AND n.blocked_at IS NOT NULL))
    AND s.revoked_at IS NULL AND s.expires_at > clock_timestamp();
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.add_column("users", sa.Column("blocked_at", sa.DateTime(timezone=True)))
    op.add_column("users", sa.Column("blocked_reason", sa.Text))
    op.create_table(
        "deleted_users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("data", JSONB, nullable=False),  # the user, its groups and grants
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_by", sa.Text),
    )
    op.create_index("deleted_users_purge_idx", "deleted_users", ["deleted_at"])
    op.create_table(
        "event_counters",
        sa.Column(
            "tenant_id",
            sa.Uuid,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("serial", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger),  # numbered after commit: idgate_sequence_events
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("resource_type", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("CREATE UNIQUE INDEX events_seq_idx ON events (tenant_id, seq)")
    op.execute("CREATE INDEX events_unnumbered_idx ON events (occurred_at) WHERE seq IS NULL")
    op.execute(_EMIT)
    op.execute(_SEQUENCE)
    for name, select in _EMITTERS.items():
        op.execute(_emitter(name, select))
    for table, event, transition, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {function} AFTER {event} ON {table} REFERENCING {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    op.execute(_REVOKE_ON_DEACTIVATION)
    # Triggers of one event fire in name order: this one after the users' event trigger,
    # so user.deactivated comes before the session.revoked events it causes.
    op.execute(
        "CREATE TRIGGER idgate_z_revoke_deactivated AFTER UPDATE ON users "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION idgate_revoke_deactivated()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER idgate_z_revoke_deactivated ON users")
    op.execute("DROP FUNCTION idgate_revoke_deactivated()")
    for table, _event, _transition, function in _TRIGGERS:
        op.execute(f"DROP TRIGGER {function} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.execute("DROP FUNCTION idgate_emit(uuid, text[], text[], text[], jsonb[])")
    op.execute("DROP FUNCTION idgate_sequence_events(integer)")
    op.drop_table("events")
    op.drop_table("event_counters")
    op.drop_table("deleted_users")
    op.drop_column("users", "blocked_reason")
    op.drop_column("users", "blocked_at")

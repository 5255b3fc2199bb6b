"""Exact per-tenant resource counts, kept by triggers in the writing transaction.

An unfiltered list's totalResults is then a sum over 16 small rows instead of a count over
every user of the tenant. The count is spread over 16 slots so that concurrent inserts in one
tenant rarely wait on the same row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SLOTS = 16


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE resource_counts (
          tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
          kind text NOT NULL,
          slot smallint NOT NULL,
          n bigint NOT NULL,
          PRIMARY KEY (tenant_id, kind, slot)
        )
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION idgate_count_resource() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          row_ record;
          delta integer;
        BEGIN
          IF TG_OP = 'INSERT' THEN row_ := NEW; delta := 1; ELSE row_ := OLD; delta := -1; END IF;
          INSERT INTO resource_counts AS c (tenant_id, kind, slot, n)
          VALUES (row_.tenant_id, TG_ARGV[0], (hashtext(row_.id::text) & {SLOTS - 1}), delta)
          ON CONFLICT (tenant_id, kind, slot) DO UPDATE SET n = c.n + excluded.n;
          RETURN NULL;
        END
        $$
        """
    )
    for table, kind in (("users", "User"), ("groups", "Group")):
        op.execute(
            f"CREATE TRIGGER {table}_count AFTER INSERT OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION idgate_count_resource('{kind}')"
        )
        op.execute(
            f"INSERT INTO resource_counts (tenant_id, kind, slot, n) "
            f"SELECT tenant_id, '{kind}', hashtext(id::text) & {SLOTS - 1}, count(*) "
            f"FROM {table} GROUP BY 1, 2, 3"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER users_count ON users")
    op.execute("DROP TRIGGER groups_count ON groups")
    op.execute("DROP FUNCTION idgate_count_resource()")
    op.execute("DROP TABLE resource_counts")

"""Where a group comes from: pushed by SCIM, or made in the product.

SCIM reads and writes only the groups it created. A product group's name is unique in its
tenant, and no SCIM group may take it (checked under a per-name advisory lock, see
storage.scim_store). Counts are kept apart, so that SCIM's totalResults stays exact.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SLOTS = 16


def upgrade() -> None:
    op.execute(
        "ALTER TABLE groups ADD COLUMN origin text NOT NULL DEFAULT 'scim'"
        " CONSTRAINT groups_origin_ck CHECK (origin IN ('scim', 'product'))"
    )
    op.execute(
        "CREATE UNIQUE INDEX groups_product_name_uq ON groups (tenant_id, lower(display_name))"
        " WHERE origin = 'product'"
    )
    op.execute(
        f"""
        CREATE FUNCTION idgate_count_group() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          row_ record;
          delta integer;
        BEGIN
          IF TG_OP = 'INSERT' THEN row_ := NEW; delta := 1; ELSE row_ := OLD; delta := -1; END IF;
          INSERT INTO resource_counts AS c (tenant_id, kind, slot, n)
          VALUES (row_.tenant_id,
                  CASE row_.origin WHEN 'scim' THEN 'Group' ELSE 'ProductGroup' END,
                  (hashtext(row_.id::text) & {SLOTS - 1}), delta)
          ON CONFLICT (tenant_id, kind, slot) DO UPDATE SET n = c.n + excluded.n;
          RETURN NULL;
        END
        $$
        """
    )
    op.execute("DROP TRIGGER groups_count ON groups")
    op.execute(
        "CREATE TRIGGER groups_count AFTER INSERT OR DELETE ON groups"
        " FOR EACH ROW EXECUTE FUNCTION idgate_count_group()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER groups_count ON groups")
    op.execute("DELETE FROM groups WHERE origin = 'product'")
    op.execute("DELETE FROM resource_counts WHERE kind = 'ProductGroup'")
    op.execute(
        "CREATE TRIGGER groups_count AFTER INSERT OR DELETE ON groups"
        " FOR EACH ROW EXECUTE FUNCTION idgate_count_resource('Group')"
    )
    op.execute("DROP FUNCTION idgate_count_group()")
    op.execute("DROP INDEX groups_product_name_uq")
    op.execute("ALTER TABLE groups DROP COLUMN origin")

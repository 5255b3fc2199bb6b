"""API keys (for the events API), webhook endpoints and their deliveries.

- `api_keys`: a tenant's keys for `/api/v1/...`, stored as the SHA-256 of the secret, with
  scopes and an optional expiry.
- `webhook_endpoints`: where a tenant's events are POSTed, which types, the signing secrets
  (the newest signs; older ones too until they expire: rotation), and `cursor`, the last
  event number fanned out to `webhook_deliveries`.
- `webhook_deliveries`: one row per (endpoint, event): pending until the receiver answers
  2xx (delivered) or the retries run out (dead).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _tenant() -> sa.Column[object]:
    return sa.Column(
        "tenant_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),  # key_<hex>
        _tenant(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Text, primary_key=True),  # whk_<hex>
        _tenant(),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", ARRAY(sa.Text), nullable=False),  # empty: every type
        sa.Column("secrets", JSONB, nullable=False),  # [{"secret", "created_at", "expires_at"}]
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "endpoint_id",
            sa.Text,
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        _tenant(),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),  # resource_type/resource_id: order key
        sa.Column("status", sa.Text, nullable=False),  # pending | delivered | dead
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name="webhook_deliveries_status"
        ),
    )
    # What the workers claim: due pending deliveries, and per (endpoint, resource) the
    # earliest pending one (a later event of a resource waits for the earlier).
    op.execute(
        "CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_resource_idx ON webhook_deliveries "
        "(endpoint_id, resource, seq) WHERE status = 'pending'"
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("api_keys")

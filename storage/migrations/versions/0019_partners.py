"""Partner organisations (agencies) working on a client's projects.

- `partner_projects`: a client's admin enables a partner organisation on one of its
  projects.
- `partner_members`: the partner's owner chooses which of the partner's users work there;
  the client's admins then give them project roles (`role_grants` rows of the client's
  tenant, on that project, for users of the partner's). Taking a member out, or the partner
  off the project, takes those roles back.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_projects",
        sa.Column(
            "project_id", sa.Uuid, sa.ForeignKey("projects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "partner_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "client_id", sa.Uuid, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("enabled_by", sa.Text, nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    op.create_index("partner_projects_partner_idx", "partner_projects", ["partner_id"])
    op.create_table(
        "partner_members",
        sa.Column("project_id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("partner_id", sa.Uuid, nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "partner_id"],
            ["partner_projects.project_id", "partner_projects.partner_id"],
            ondelete="CASCADE",
        ),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("partner_members")
    op.drop_table("partner_projects")

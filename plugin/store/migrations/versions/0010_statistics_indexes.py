"""Indexes for statistics: a team's incidents by start and by end.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incidents_team_create", "incidents", ["team_id", "create_at"])
    op.create_index("ix_incidents_team_end", "incidents", ["team_id", "end_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_team_end", "incidents")
    op.drop_index("ix_incidents_team_create", "incidents")

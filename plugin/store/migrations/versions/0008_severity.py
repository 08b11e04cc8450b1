"""Severity: incidents' level and playbooks' default level.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("severity", sa.String(32), nullable=False, server_default=""))
    op.create_index("ix_incidents_team_severity", "incidents", ["team_id", "severity"])
    with op.batch_alter_table("playbooks") as batch:
        batch.add_column(sa.Column("default_severity", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("playbooks") as batch:
        batch.drop_column("default_severity")
    op.drop_index("ix_incidents_team_severity", "incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("severity")

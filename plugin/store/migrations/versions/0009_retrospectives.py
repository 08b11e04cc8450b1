"""Retrospectives: their own table, the incident's publication time, the playbook's template and rule.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_retrospectives",
        sa.Column("incident_id", sa.String(26), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("update_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(26), nullable=False),
        sa.Column("allowed_before_end", sa.Boolean, nullable=False),
    )
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("retrospective_published_at", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("playbooks") as batch:
        batch.add_column(sa.Column("retrospective_template", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("retrospective_before_end", sa.Boolean, nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("playbooks") as batch:
        batch.drop_column("retrospective_before_end")
        batch.drop_column("retrospective_template")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("retrospective_published_at")
    op.drop_table("incident_retrospectives")

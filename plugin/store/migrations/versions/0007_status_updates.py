"""Status updates, reminders in their own table, broadcast channels and reminder periods.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.String(26)


def upgrade() -> None:
    for table in ("incidents", "playbooks"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("broadcast_channel_ids", sa.JSON, nullable=False, server_default="[]"))
            batch.add_column(sa.Column("reminder_seconds", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "status_updates",
        sa.Column("id", ID, primary_key=True),
        sa.Column("incident_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_status_updates_incident_create", "status_updates", ["incident_id", "create_at"])
    op.create_table(
        "incident_reminders",
        sa.Column("incident_id", ID, primary_key=True),
        sa.Column("due_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_incident_reminders_due", "incident_reminders", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_incident_reminders_due", "incident_reminders")
    op.drop_table("incident_reminders")
    op.drop_index("ix_status_updates_incident_create", "status_updates")
    op.drop_table("status_updates")
    for table in ("playbooks", "incidents"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("reminder_seconds")
            batch.drop_column("broadcast_channel_ids")

"""The settings version and the telemetry switch in the database; each event's epoch.

Every settings change raises ``settings_state.version``, so a process compares one
small row with the version it runs under instead of reloading on a timer. The
telemetry switch and its epoch live in the same row: events are stored only while
it is on, with the epoch, and a claim takes only events of the current epoch.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "settings_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("telemetry_on", sa.Boolean, nullable=False),
        sa.Column("telemetry_epoch", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0, "telemetry_on": True, "telemetry_epoch": 0}])
    with op.batch_alter_table("telemetry_outbox") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("telemetry_outbox") as batch:
        batch.drop_column("epoch")
    op.drop_table("settings_state")

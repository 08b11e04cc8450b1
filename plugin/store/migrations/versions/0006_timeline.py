"""Each incident's timeline: one row per change and per note, hidden rather than deleted.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "timeline_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(26), nullable=False, unique=True),
        sa.Column("incident_id", sa.String(26), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("event_at", sa.BigInteger, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
        sa.Column("subject_user_id", sa.String(26), nullable=False),
        sa.Column("creator_user_id", sa.String(26), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("post_id", sa.String(26), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_by", sa.String(26), nullable=False),
    )
    op.create_index("ix_timeline_events_incident_event_at", "timeline_events", ["incident_id", "event_at"])


def downgrade() -> None:
    op.drop_index("ix_timeline_events_incident_event_at", table_name="timeline_events")
    op.drop_table("timeline_events")

"""Telemetry outbox and counters; a key-value table for server facts.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plugin_kv",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "telemetry_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("message_id", sa.String(36), nullable=False, unique=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("recorded_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("lease_until", sa.BigInteger, nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.Column("sent_message", sa.Text, nullable=False),
    )
    op.create_index("ix_telemetry_outbox_state_seq", "telemetry_outbox", ["state", "seq"])
    op.create_table(
        "telemetry_counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("telemetry_counters", "telemetry_outbox", "plugin_kv"):
        op.drop_table(table)

"""Outgoing webhooks, their deliveries and attempts, and the record of what leaves the server.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.String(26)
SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("team_id", sa.String(26), nullable=False),
        sa.Column("creator_user_id", ID, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
        sa.Column("update_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", ID, nullable=False, unique=True),
        sa.Column("webhook_id", ID, nullable=False),
        sa.Column("incident_id", ID, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
        sa.Column("next_at", sa.BigInteger, nullable=False),
        sa.Column("lease_until", sa.BigInteger, nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=False),
        sa.Column("window_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhook_deliveries_status_next", "webhook_deliveries", ["status", "next_at"])
    op.create_index("ix_webhook_deliveries_order", "webhook_deliveries",
                    ["webhook_id", "incident_id", "status", "seq"])
    op.create_index("ix_webhook_deliveries_webhook_seq", "webhook_deliveries", ["webhook_id", "seq"])
    op.create_table(
        "webhook_attempts",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("response_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(300), nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "seq"])
    op.create_table(
        "egress",
        sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=False),
        sa.Column("last_error_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("egress")
    op.drop_index("ix_webhook_attempts_delivery", "webhook_attempts")
    op.drop_table("webhook_attempts")
    for name in ("ix_webhook_deliveries_webhook_seq", "ix_webhook_deliveries_order", "ix_webhook_deliveries_status_next"):
        op.drop_index(name, "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")

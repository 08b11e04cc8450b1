"""Incidents and the local chat host's channels, members, posts and users.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(26)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("commander_user_id", ID, nullable=False),
        sa.Column("team_id", ID, nullable=False),
        sa.Column("channel_id", ID, nullable=False, unique=True),
        sa.Column("post_id", sa.String(26), nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
        sa.Column("end_at", sa.BigInteger, nullable=False),
        sa.Column("active_stage", sa.Integer, nullable=False),
        sa.Column("checklists", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_incidents_team_active_create", "incidents", ["team_id", "is_active", "create_at"])
    op.create_index("ix_incidents_team_commander", "incidents", ["team_id", "commander_user_id"])
    op.create_table(
        "chat_channels",
        sa.Column("id", ID, primary_key=True),
        sa.Column("team_id", ID, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(1), nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("team_id", "name", name="uq_chat_channels_team_name"),
    )
    op.create_table(
        "chat_channel_members",
        sa.Column("channel_id", ID, primary_key=True),
        sa.Column("user_id", ID, primary_key=True),
    )
    op.create_index("ix_chat_channel_members_user", "chat_channel_members", ["user_id"])
    op.create_table(
        "chat_posts",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", ID, nullable=False, unique=True),
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chat_posts_channel", "chat_posts", ["channel_id"])
    op.create_table(
        "chat_users",
        sa.Column("id", ID, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("create_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("chat_users", "chat_posts", "chat_channel_members", "chat_channels", "incidents"):
        op.drop_table(table)

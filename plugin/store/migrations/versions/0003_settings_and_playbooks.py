"""Settings saved at run time, playbooks and their members, incidents' playbook_id.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(26)


def upgrade() -> None:
    op.create_table(
        "plugin_settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("update_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(26), nullable=False),
    )
    op.create_table(
        "playbooks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("team_id", ID, nullable=False),
        sa.Column("create_public_incident", sa.Boolean, nullable=False),
        sa.Column("checklists", sa.JSON, nullable=False),
        sa.Column("num_stages", sa.Integer, nullable=False),
        sa.Column("num_tasks", sa.Integer, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False),
        sa.Column("update_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_playbooks_team_title", "playbooks", ["team_id", "title"])
    op.create_table(
        "playbook_members",
        sa.Column("playbook_id", ID, sa.ForeignKey("playbooks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", ID, primary_key=True),
    )
    op.create_index("ix_playbook_members_user", "playbook_members", ["user_id"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("playbook_id", sa.String(26), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("playbook_id")
    op.drop_index("ix_playbook_members_user", "playbook_members")
    op.drop_table("playbook_members")
    op.drop_index("ix_playbooks_team_title", "playbooks")
    op.drop_table("playbooks")
    op.drop_table("plugin_settings")

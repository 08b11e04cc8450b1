"""The outbox holds only events still to be sent; what was sent moves to telemetry_audit; claims are ranges.

Delivered and refused events used to stay in the outbox, marked by a ``state``
column with a copy of the message as sent, and a claim updated every claimed row.
Now delivering an event deletes its row, the newest messages as sent are kept, a
batch per row, in ``telemetry_audit``, and a claim is one row in
``telemetry_leases`` naming a range of sequence numbers. The upgrade moves the
newest 200 sent and 200 refused messages to the audit, deletes the rest of them,
and drops ``state``, ``sent_at``, ``sent_message``, the lease columns and the
unique index on ``message_id`` (a random UUID; nothing looks events up by it).

Revision ID: 0004
Revises: 0003
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KEEP = 200
SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _outbox_columns() -> list[sa.Column]:
    return [
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("recorded_at", sa.BigInteger, nullable=False),
    ]


KEPT = "seq, message_id, event, properties, recorded_at"


def upgrade() -> None:
    audit = op.create_table(
        "telemetry_audit",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("messages", sa.Text, nullable=False),
    )
    op.create_index("ix_telemetry_audit_state_seq", "telemetry_audit", ["state", "seq"])
    op.create_table(
        "telemetry_leases",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("until", sa.BigInteger, nullable=False),
    )
    bind = op.get_bind()
    for state in ("sent", "rejected"):
        rows = bind.execute(sa.text(
            "SELECT sent_message, sent_at FROM telemetry_outbox WHERE state = :state ORDER BY seq DESC LIMIT :keep"),
            {"state": state, "keep": KEEP}).all()
        if rows:
            messages = [json.loads(row.sent_message) for row in reversed(rows)]
            bind.execute(audit.insert().values(state=state, at=max(row.sent_at for row in rows),
                                               count=len(messages), messages=json.dumps(messages)))
    bind.execute(sa.text("DELETE FROM telemetry_outbox WHERE state <> 'pending'"))
    op.drop_index("ix_telemetry_outbox_state_seq", table_name="telemetry_outbox")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE telemetry_outbox DROP CONSTRAINT IF EXISTS telemetry_outbox_message_id_key, "
                   "DROP COLUMN state, DROP COLUMN sent_at, DROP COLUMN sent_message, DROP COLUMN lease_until, "
                   "DROP COLUMN lease_token, DROP COLUMN attempts")
    else:
        # SQLite cannot drop a UNIQUE column constraint in place: rebuild the table.
        op.create_table("telemetry_outbox_next", *_outbox_columns())
        op.execute(f"INSERT INTO telemetry_outbox_next ({KEPT}) SELECT {KEPT} FROM telemetry_outbox")
        op.drop_table("telemetry_outbox")
        op.rename_table("telemetry_outbox_next", "telemetry_outbox")


def downgrade() -> None:
    with op.batch_alter_table("telemetry_outbox") as batch:
        batch.add_column(sa.Column("state", sa.String(8), nullable=False, server_default="pending"))
        batch.add_column(sa.Column("sent_at", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("sent_message", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_token", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_telemetry_outbox_message_id", "telemetry_outbox", ["message_id"], unique=True)
    op.create_index("ix_telemetry_outbox_state_seq", "telemetry_outbox", ["state", "seq"])
    op.drop_table("telemetry_leases")
    op.drop_index("ix_telemetry_audit_state_seq", table_name="telemetry_audit")
    op.drop_table("telemetry_audit")

"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/`` create them."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(26)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("commander_user_id", ID, nullable=False),
    sa.Column("team_id", ID, nullable=False),
    sa.Column("channel_id", ID, nullable=False, unique=True),
    sa.Column("post_id", sa.String(26), nullable=False, default=""),
    sa.Column("public", sa.Boolean, nullable=False, default=False),
    sa.Column("create_at", sa.BigInteger, nullable=False),
    sa.Column("end_at", sa.BigInteger, nullable=False, default=0),
    sa.Column("active_stage", sa.Integer, nullable=False),
    # Stages and tasks are always read and written with their incident, under the
    # incident's row lock, so they live in the row as a JSON document.
    sa.Column("checklists", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    # The playbook the incident was started from ("" for none); kept when the playbook is deleted.
    sa.Column("playbook_id", sa.String(26), nullable=False, default="", server_default=""),
    # Channels that get a copy of each status update: a JSON list of ids, read and written with the incident.
    sa.Column("broadcast_channel_ids", sa.JSON, nullable=False, server_default="[]"),
    # The reminder period in seconds (0: none); the due time is in incident_reminders.
    sa.Column("reminder_seconds", sa.Integer, nullable=False, server_default="0"),
    # A level of the SeverityLevels setting as spelt when it was set ("" for none).
    sa.Column("severity", sa.String(32), nullable=False, server_default=""),
    # When the retrospective was last posted to the channel (ms; 0: never); its text is in incident_retrospectives.
    sa.Column("retrospective_published_at", sa.BigInteger, nullable=False, server_default="0"),
    # Listing is always within a team: these keep its cost independent of other teams.
    sa.Index("ix_incidents_team_active_create", "team_id", "is_active", "create_at"),
    sa.Index("ix_incidents_team_commander", "team_id", "commander_user_id"),
    sa.Index("ix_incidents_team_severity", "team_id", "severity"),
)

# What happened to each incident, when and by whom: one row per change and per note.
# A deleted entry is hidden but kept, with who deleted it and when. ``seq`` orders
# entries of the same millisecond as they were written.
timeline_events = sa.Table(
    "timeline_events", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column("incident_id", ID, nullable=False),
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
    # An incident's timeline is always read alone, oldest first.
    sa.Index("ix_timeline_events_incident_event_at", "incident_id", "event_at"),
)

# The embedded local chat host keeps its channels, members, posts and users here.
chat_channels = sa.Table(
    "chat_channels", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("team_id", ID, nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(64), nullable=False),
    sa.Column("type", sa.String(1), nullable=False),
    sa.Column("create_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("team_id", "name", name="uq_chat_channels_team_name"),
)

chat_channel_members = sa.Table(
    "chat_channel_members", metadata,
    sa.Column("channel_id", ID, primary_key=True),
    sa.Column("user_id", ID, primary_key=True),
    sa.Index("ix_chat_channel_members_user", "user_id"),
)

chat_posts = sa.Table(
    "chat_posts", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column("channel_id", ID, nullable=False),
    sa.Column("user_id", sa.String(26), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("create_at", sa.BigInteger, nullable=False),
    sa.Index("ix_chat_posts_channel", "channel_id"),
)

chat_users = sa.Table(
    "chat_users", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("create_at", sa.BigInteger, nullable=False),
)

# Values saved at run time through the settings API or CLI (above the config file,
# below environment variables). One row per changed setting.
plugin_settings = sa.Table(
    "plugin_settings", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("update_at", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(26), nullable=False),
)

# One row (id 1): the version of the saved settings, raised by every change, which
# each request and each dispatcher cycle compares with the version it runs under;
# and the run-time telemetry switch with its epoch, raised whenever the switch
# flips. An event is stored only while the switch is on, with the epoch it was
# stored in, and only events of the current epoch are ever claimed for sending.
settings_state = sa.Table(
    "settings_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("telemetry_on", sa.Boolean, nullable=False),
    sa.Column("telemetry_epoch", sa.BigInteger, nullable=False),
)

playbooks = sa.Table(
    "playbooks", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("team_id", ID, nullable=False),
    sa.Column("create_public_incident", sa.Boolean, nullable=False),
    # Stages and tasks are a template read and written whole, so they are one JSON document;
    # their counts are columns so that listing can sort by them.
    sa.Column("checklists", sa.JSON, nullable=False),
    sa.Column("num_stages", sa.Integer, nullable=False),
    sa.Column("num_tasks", sa.Integer, nullable=False),
    sa.Column("create_at", sa.BigInteger, nullable=False),
    sa.Column("update_at", sa.BigInteger, nullable=False),
    sa.Column("broadcast_channel_ids", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("reminder_seconds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("default_severity", sa.String(32), nullable=False, server_default=""),
    sa.Column("retrospective_template", sa.Text, nullable=False, server_default=""),
    sa.Column("retrospective_before_end", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_playbooks_team_title", "team_id", "title"),
)

# Status updates, one row each, written in the transaction that posts them; always
# read per incident, newest first.
status_updates = sa.Table(
    "status_updates", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("incident_id", ID, nullable=False),
    sa.Column("user_id", ID, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("create_at", sa.BigInteger, nullable=False),
    sa.Index("ix_status_updates_incident_create", "incident_id", "create_at"),
)

# The next reminder of each incident that has one. Its own table, not the incident's
# row: a server fires a reminder by moving due_at from the value it read (a
# compare-and-set) in the transaction that writes the reminder's post, while a change
# to the incident saves the whole row at its version; kept apart, neither overwrites
# the other. due_at is null while no reminder is due (none set, or the incident ended).
incident_reminders = sa.Table(
    "incident_reminders", metadata,
    sa.Column("incident_id", ID, primary_key=True),
    sa.Column("due_at", sa.BigInteger, nullable=True),
    sa.Index("ix_incident_reminders_due", "due_at"),
)

# Incidents' retrospectives, one row for each incident that has one (written, or given its
# playbook's template at the start); always read alone, by incident. A row is written only
# in a transaction that also writes its incident's row at the version read.
incident_retrospectives = sa.Table(
    "incident_retrospectives", metadata,
    sa.Column("incident_id", ID, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("update_at", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(26), nullable=False),
    sa.Column("allowed_before_end", sa.Boolean, nullable=False),
)

playbook_members = sa.Table(
    "playbook_members", metadata,
    sa.Column("playbook_id", ID, sa.ForeignKey("playbooks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", ID, primary_key=True),
    sa.Index("ix_playbook_members_user", "user_id"),
)

# Small settings the server keeps for itself (the local host's diagnostic id, the
# telemetry dispatcher's last delivery error).
plugin_kv = sa.Table(
    "plugin_kv", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Telemetry events wait here, written in the transaction of the change they
# describe, until the dispatcher has delivered them: a delivered (or refused) event
# leaves the table, so it only ever holds what is still to be sent, and a row is
# written once and deleted once.
telemetry_outbox = sa.Table(
    "telemetry_outbox", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(36), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    # The telemetry epoch (settings_state) the event was stored in.
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
)

# A dispatcher's claim on the outbox events from first_seq to last_seq until a
# moment (ms): one row per batch being sent, deleted when the batch is done.
telemetry_leases = sa.Table(
    "telemetry_leases", metadata,
    sa.Column("token", sa.String(32), primary_key=True),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("until", sa.BigInteger, nullable=False),
)

# What left the server, exactly as sent, for admins to audit: one row per delivered
# (or refused) batch holding its newest messages as a JSON array, oldest first; only
# the rows that hold the newest few hundred messages of each state are kept.
telemetry_audit = sa.Table(
    "telemetry_audit", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("messages", sa.Text, nullable=False),
    sa.Index("ix_telemetry_audit_state_seq", "state", "seq"),
)

telemetry_counters = sa.Table(
    "telemetry_counters", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

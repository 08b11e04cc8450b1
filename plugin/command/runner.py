"""Run a parsed ``/incident`` command for a caller and word the reply.

The runner calls the incident service and the chat host; it never touches the
database itself. Every domain error becomes an ephemeral reply with the error's
message; input the parser rejected gets its message plus the help text.

Replies are ephemeral (only the caller sees them): what the whole team should
see is posted in the incident channel by the service (started, stage, commander,
ended, restarted) or by ``announce``.

Numbers shown to and typed by people count from 1 (stage 1 is the first stage);
the service and the REST API count from 0.

Replies are Markdown; what people typed (names, titles, levels, timeline summaries,
usernames) goes in through ``plugin.markdown.chat_inline``, so it shows as typed and
never makes a link, emphasis or a channel-wide mention of its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from plugin.chat import ChatHost
from plugin.command import parser as p
from plugin.errors import BadInput, DomainError, InvalidState, NotFound
from plugin.model import DESCRIPTION_MAX, NAME_MAX, SUMMARY_MAX, Incident, IncidentFilter, ItemState, is_id, now_ms
from plugin.figures import describe_duration
from plugin.markdown import chat_inline as literal
from plugin.reports import DEFAULT_WINDOW_DAYS, ReportService, StatsQuery
from plugin.service import IncidentService, NewIncident, describe_seconds

EPHEMERAL = "ephemeral"
IN_CHANNEL = "in_channel"
LIST_LIMIT = 10
TIMELINE_LIMIT = 20

HELP_TEXT = """\
###### `/incident` commands
* `/incident start <name> [--public] [--description "..."] [--playbook <id>] [--severity <level>]` - start an incident with its own channel; you are the commander.
* `/incident end` - end the incident of this channel.
* `/incident restart` - restart the ended incident of this channel.
* `/incident stage next|prev|<n>` - move to the next, previous or n-th stage (add `--force` to leave a stage with open tasks).
* `/incident check <stage#> <task#>` - tick a task, or open it again.
* `/incident run <stage#> <task#>` - run a task's slash command in this channel, as you.
* `/incident commander [@username]` - show the commander, or hand over to a member of this channel.
* `/incident add @username [@username ...]` - add people to this incident's channel.
* `/incident announce ~channel [~channel ...]` - tell other channels about this incident.
* `/incident update <message> [--remind 30m]` - post a status update here and in the broadcast channels; `--remind` sets how often the commander is reminded to post the next one (`never` to stop).
* `/incident remind 30m|never` - snooze the status update reminder: the next one comes after this long, and then as often; `never` switches it off.
* `/incident severity [<level>|none]` - show the severity and the levels, or set it (`none` clears it).
* `/incident list` - your active incidents in this team (newest 10).
* `/incident info` - name, duration, commander, stage and task progress.
* `/incident timeline` - what happened in this incident, the last 20 entries, oldest first.
* `/incident note <text>` - add a note to this incident's timeline.
* `/incident export` - a link to this incident's report: one Markdown document to file.
* `/incident stats` - this team's incidents in the last 90 days: started, ended, active, time to end.
* `/incident help` - this text.

Stages and tasks are numbered from 1, as `info` shows them. Durations: 30s, 15m, 2h, 1d or 1h30m."""

# What to do about a refused `stage next` or `stage prev`, by the detail the refusal carries.
_STAGE_HINTS = {
    "last_stage": " When the work is done, end the incident with `/incident end`.",
    "open_tasks": " Close them with `/incident check`, or move on anyway with `/incident stage next --force`.",
}


@dataclass(frozen=True)
class Caller:
    """Who ran the command, and where (from the slash command request)."""

    user_id: str
    team_id: str
    channel_id: str
    user_name: str = ""
    #: Where links to the server's API start (``https://chat.example.com/plugins/<id>``), "" when unknown.
    link_base: str = ""


def reply(text: str, response_type: str = EPHEMERAL) -> dict[str, Any]:
    """A slash command response body."""
    return {"response_type": response_type, "text": text}


def _when(milliseconds: int) -> str:
    """A moment as people read it in a list: date and minute, in UTC."""
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _duration(milliseconds: int) -> str:
    seconds = max(0, milliseconds // 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts += [f"{minutes}m", f"{seconds}s"] if not days else [f"{minutes}m"]
    return " ".join(parts)


class CommandRunner:
    """Turns a Command and its Caller into a reply dict ``{response_type, text}``."""

    def __init__(self, service: IncidentService, host: ChatHost,
                 clock: Callable[[], int] = now_ms, reports: ReportService | None = None):
        self.service = service
        self.host = host
        self.clock = clock
        self.reports = reports

    def run(self, command: p.Command, caller: Caller) -> dict[str, Any]:
        """Execute the command; domain errors become ephemeral replies."""
        handler = getattr(self, f"_{type(command).__name__.lower()}", None)
        if handler is None:
            return reply(HELP_TEXT)
        try:
            return handler(command, caller)
        except DomainError as error:
            return reply(error.chat)

    # ----- help --------------------------------------------------------------------------
    def _help(self, command: p.Help, caller: Caller) -> dict[str, Any]:
        return reply(HELP_TEXT)

    def _usage(self, command: p.Usage, caller: Caller) -> dict[str, Any]:
        return reply(f"{command.message}\n\n{HELP_TEXT}")

    # ----- the incident of this channel ------------------------------------------------------
    def _here(self, caller: Caller) -> Incident:
        try:
            return self.service.get_incident_by_channel(caller.user_id, caller.channel_id)
        except NotFound:
            raise NotFound("This channel has no incident you can see: run this command in an incident's "
                           "channel, or start one with `/incident start <name>`.") from None

    # ----- subcommands -----------------------------------------------------------------------
    def _start(self, command: p.Start, caller: Caller) -> dict[str, Any]:
        if len(command.name) > NAME_MAX:
            return reply(f"The name is {len(command.name)} characters long; use at most {NAME_MAX}.")
        if len(command.description) > DESCRIPTION_MAX:
            return reply(f"The description is too long; use at most {DESCRIPTION_MAX} characters.")
        if command.playbook_id and not is_id(command.playbook_id):
            # Refused here, quoted escaped: the service's refusal would quote it as typed.
            return reply(f"'{literal(command.playbook_id[:40])}' is not a playbook id: give the playbook's id, "
                         "26 characters a-z0-9, e.g. `/incident start db-down --playbook <id>`.")
        incident = self.service.create_incident(caller.user_id, NewIncident(
            name=command.name, team_id=caller.team_id, commander_user_id=caller.user_id,
            description=command.description, public=True if command.public else None, playbook_id=command.playbook_id,
            severity=command.severity))
        kind = "public" if incident.public else "private"
        graded = f" at severity **{literal(incident.severity)}**" if incident.severity else ""
        return reply(f"Incident **{literal(incident.name)}** started{graded} in "
                     f"{self.service.channel_ref(incident.channel_id)} ({kind} channel); you are the commander.")

    def _end(self, command: p.End, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        incident = self.service.end_incident(caller.user_id, here.id).incident
        return reply(f"Incident **{literal(incident.name)}** ended. `/incident restart` reopens it.")

    def _restart(self, command: p.Restart, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        incident = self.service.restart_incident(caller.user_id, here.id).incident
        return reply(f"Incident **{literal(incident.name)}** is active again.")

    # Each change below is decided by the service on the incident as the change finds
    # it, which may differ from the read here; replies describe the outcome.
    def _stage(self, command: p.Stage, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        count = len(here.checklists)  # stages are never added or removed
        if count == 0:
            return reply("This incident has no stages.")
        if command.target in ("next", "prev"):
            try:
                if command.target == "next":
                    outcome = self.service.next_stage(caller.user_id, here.id, force=command.force)
                else:
                    outcome = self.service.previous_stage(caller.user_id, here.id)
            except InvalidState as refused:
                # An ended incident needs no advice to end it.
                hints = {key: hint for key, hint in _STAGE_HINTS.items() if here.is_active or key != "last_stage"}
                return reply(refused.chat + "".join(hint for key, hint in hints.items() if key in refused.details))
        else:
            target = int(command.target) - 1
            if target >= count:
                return reply(f"There is no stage {command.target}: this incident has {count} stage(s), "
                             f"numbered 1 to {count}.")
            outcome = self.service.set_active_stage(caller.user_id, here.id, target)
            if not outcome.changed:
                return reply(f"Stage {target + 1} (**{literal(outcome.incident.active_stage_title)}**) is already the "
                             "active stage.")
        incident = outcome.incident
        return reply(f"The active stage is now {incident.active_stage + 1} of {count}: "
                     f"**{literal(incident.active_stage_title)}**.")

    @staticmethod
    def _no_task(here: Incident, stage_number: int, task_number: int) -> str | None:
        """Why there is no such task (numbers from 1), or None when there is."""
        count = len(here.checklists)
        if stage_number > count:
            return (f"There is no stage {stage_number}: this incident has {count} stage(s)"
                    f"{f', numbered 1 to {count}' if count else ''}.")
        stage = here.checklists[stage_number - 1]
        if task_number > len(stage.items):
            return (f"There is no task {task_number} in stage {stage_number} (**{literal(stage.title)}**): "
                    f"it has {len(stage.items)} task(s)"
                    f"{f', numbered 1 to {len(stage.items)}' if stage.items else ''}.")
        return None

    def _check(self, command: p.Check, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        if (missing := self._no_task(here, command.stage, command.task)) is not None:
            return reply(missing)
        incident = self.service.toggle_item_state(caller.user_id, here.id, command.stage - 1, command.task - 1).incident
        item = incident.checklists[command.stage - 1].items[command.task - 1]
        done = "done" if item.state is ItemState.CLOSED else "open again"
        return reply(f"Task {command.stage}.{command.task} (**{literal(item.title)}**) is {done}.")

    def _run(self, command: p.Run, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        if (missing := self._no_task(here, command.stage, command.task)) is not None:
            return reply(missing)
        item = here.checklists[command.stage - 1].items[command.task - 1]
        task = f"task {command.stage}.{command.task} (**{literal(item.title)}**)"
        if not item.command.strip():
            return reply(f"The {task} has no command to run: give it one first, e.g. /deploy rollback.")
        try:
            self.service.run_item_command(caller.user_id, here.id, command.stage - 1, command.task - 1)
        except BadInput as refused:
            if "refused_because" not in refused.details:
                raise
            # Mattermost's reason may quote the command, which is people's text.
            return reply(f"Mattermost did not run the command of {task}: {literal(refused.details['refused_because'])}")
        return reply(f"Ran the command of {task} in this channel, as you.")

    def _commander(self, command: p.Commander, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        if not command.username:
            return reply(f"The commander of **{literal(here.name)}** is {self.host.mention(here.commander_user_id)}.")
        user_id = self.host.find_user_by_username(command.username)
        if user_id is None:
            return reply(f"There is no user @{literal(command.username)}. Check the spelling of the username.")
        if user_id != here.commander_user_id and not self.host.is_channel_member(here.channel_id, user_id):
            return reply(f"@{literal(command.username)} is not a member of this channel; add them first, "
                         "then hand over the command.")
        if not self.service.change_commander(caller.user_id, here.id, user_id).changed:
            return reply(f"@{literal(command.username)} is already the commander.")
        return reply(f"@{literal(command.username)} is now the commander of **{literal(here.name)}**.")

    def _add(self, command: p.Add, caller: Caller) -> dict[str, Any]:
        incident = self._here(caller)
        found = {name: self.host.find_user_by_username(name) for name in command.usernames}
        unknown = [f"@{literal(name)}" for name, user_id in found.items() if user_id is None]
        if unknown:
            return reply(f"There is no user {', '.join(unknown)}; nobody was added. Check the spelling "
                         "of the username.")
        names = {user_id: name for name, user_id in found.items()}
        added, already = self.service.add_members(caller.user_id, incident.id, list(names))
        lines = []
        if added:
            lines.append(f"Added {', '.join('@' + literal(names[user_id]) for user_id in added)} to this incident's "
                         "channel.")
        if already:
            lines.append(f"Already in the channel: {', '.join('@' + literal(names[user_id]) for user_id in already)}.")
        return reply("\n".join(lines))

    def _announce(self, command: p.Announce, caller: Caller) -> dict[str, Any]:
        incident = self._here(caller)
        here = self.service.channel_ref(incident.channel_id)
        message = f"{self.host.mention(incident.commander_user_id)} started an incident in {here}"
        done: list[str] = []
        skipped: list[str] = []
        for name in command.channels:
            try:
                channel_id = self.host.find_channel_by_name(caller.team_id, name)
                if channel_id is None:
                    skipped.append(f"~{literal(name)} (no such channel in this team)")
                elif not self.host.can_post(channel_id, caller.user_id):
                    skipped.append(f"~{literal(name)} (you cannot post there)")
                else:
                    self.host.post(channel_id, message)
                    done.append(f"~{literal(name)}")
            except DomainError as error:
                # One unreachable channel must not hide which others got the announcement.
                skipped.append(f"~{literal(name)} ({error.chat.rstrip('.')})")
        lines = [f"Announced in {', '.join(done)}."] if done else []
        if skipped:
            lines.append(f"Not announced in {', '.join(skipped)}.")
        return reply("\n".join(lines))

    def _update(self, command: p.Update, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        self.service.post_status_update(caller.user_id, here.id, command.message, command.remind)
        incident = self.service.get_incident(caller.user_id, here.id)
        copies = len([c for c in incident.broadcast_channel_ids if c != incident.channel_id])
        where = f" and in {copies} broadcast channel{'s' if copies != 1 else ''}" if copies else ""
        return reply(f"Status update posted in this channel{where}. {self._reminder_words(incident.reminder_seconds)}")

    def _remind(self, command: p.Remind, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        incident = self.service.set_reminder(caller.user_id, here.id, command.seconds).incident
        return reply(self._reminder_words(incident.reminder_seconds))

    @staticmethod
    def _reminder_words(seconds: int) -> str:
        if not seconds:
            return "No status update reminders for this incident: `/incident remind 30m` sets one."
        return f"The commander will be reminded to post an update in {describe_seconds(seconds)}, and as often after."

    def _severity(self, command: p.Severity, caller: Caller) -> dict[str, Any]:
        here = self._here(caller)
        levels = self.service.severity_levels()
        if not command.level:
            now = f"**{literal(here.severity)}**" if here.severity else "not set"
            return reply(f"The severity of **{literal(here.name)}** is {now}. Levels, most severe first: "
                         f"{literal(levels.describe())}; set one with `/incident severity <level>`.")
        # "none" clears, unless the admins made it a level of its own.
        wanted = "" if command.level.lower() == "none" and levels.find(command.level) is None else command.level
        outcome = self.service.set_severity(caller.user_id, here.id, wanted)
        severity = outcome.incident.severity
        if not outcome.changed:
            return reply(f"The severity of **{literal(here.name)}** is already "
                         f"{f'**{literal(severity)}**' if severity else 'not set'}.")
        return reply(f"The severity of **{literal(here.name)}** is now **{literal(severity)}**." if severity else
                     f"The severity of **{literal(here.name)}** is cleared.")

    def _list(self, command: p.List, caller: Caller) -> dict[str, Any]:
        _, incidents = self.service.list_incidents(caller.user_id, IncidentFilter(
            team_id=caller.team_id, status="active", member_id=caller.user_id, sort="create_at",
            direction="desc", per_page=LIST_LIMIT))
        if not incidents:
            return reply("You have no active incidents in this team. Start one with `/incident start <name>`.")
        lines = ["Your active incidents in this team, newest first:"]
        for incident in incidents:
            lines.append(f"* **{literal(incident.name)}** in {self.service.channel_ref(incident.channel_id)}, "
                         f"commander {self.host.mention(incident.commander_user_id)}, running for "
                         f"{_duration(self.clock() - incident.create_at)}")
        return reply("\n".join(lines))

    def _info(self, command: p.Info, caller: Caller) -> dict[str, Any]:
        incident = self._here(caller)
        end = incident.end_at if not incident.is_active else self.clock()
        status = "active" if incident.is_active else "ended"
        closed = sum(len(c.items) - c.open_item_count for c in incident.checklists)
        lines = [f"**{literal(incident.name)}** ({status})",
                 f"* Duration: {_duration(end - incident.create_at)}",
                 f"* Commander: {self.host.mention(incident.commander_user_id)}"]
        if incident.checklists:
            lines.append(f"* Stage {incident.active_stage + 1} of {len(incident.checklists)}: "
                         f"**{literal(incident.active_stage_title)}**")
            lines.append(f"* Tasks done: {closed} of {incident.total_items}")
            for number, stage in enumerate(incident.checklists, start=1):
                lines.append(f"  {number}. {literal(stage.title)}: {len(stage.items) - stage.open_item_count} of "
                             f"{len(stage.items)} done")
        else:
            lines.append("* No stages")
        return reply("\n".join(lines))

    def _timeline(self, command: p.Timeline, caller: Caller) -> dict[str, Any]:
        incident = self._here(caller)
        entries = self.service.get_timeline(caller.user_id, incident.id, last=TIMELINE_LIMIT)
        if not entries:
            return reply(f"The timeline of **{literal(incident.name)}** is empty. Add a note with "
                         "`/incident note <text>`.")
        lines = [f"Timeline of **{literal(incident.name)}**, oldest first"
                 f"{f' (the last {TIMELINE_LIMIT})' if len(entries) == TIMELINE_LIMIT else ''}:"]
        lines += [f"* {_when(entry.event_at)}: {literal(entry.summary)}" for entry in entries]
        return reply("\n".join(lines))

    def _note(self, command: p.Note, caller: Caller) -> dict[str, Any]:
        if len(command.text) > SUMMARY_MAX:
            return reply(f"The note is {len(command.text)} characters long; use at most {SUMMARY_MAX}.")
        incident = self._here(caller)
        self.service.add_note(caller.user_id, incident.id, command.text)
        return reply(f"Added your note to the timeline of **{literal(incident.name)}**. `/incident timeline` shows it.")

    def _export(self, command: p.Export, caller: Caller) -> dict[str, Any]:
        incident = self._here(caller)
        path = f"/api/v0/incidents/{incident.id}/report.md"
        if not caller.link_base:
            return reply(f"The report of **{literal(incident.name)}** is at `{path}` on the incident server.")
        return reply(f"The report of **{literal(incident.name)}**, one Markdown document to file: "
                     f"{caller.link_base}{path}")

    def _stats(self, command: p.Stats, caller: Caller) -> dict[str, Any]:
        if self.reports is None:
            return reply("Statistics are not available here.")
        stats = self.reports.stats(caller.user_id, StatsQuery(caller.team_id, to_ms=self.clock()))
        lines = [f"Incidents in this team in the last {DEFAULT_WINDOW_DAYS} days: {stats.started} started, "
                 f"{stats.ended} ended; {stats.active} active now."]
        if stats.time_to_end_p50 is not None and stats.time_to_end_p90 is not None:
            lines.append(f"* Time to end: {describe_duration(stats.time_to_end_p50)} for half of them, "
                         f"{describe_duration(stats.time_to_end_p90)} for nine in ten.")
        for stage in stats.stages:
            if stage.p50_ms is not None:
                lines.append(f"* Stage **{literal(stage.name)}**: {describe_duration(stage.p50_ms)} (median of "
                             f"{stage.count}).")
        levels = [f"{literal(entry.severity) if entry.severity else 'none'} {entry.count}"
                  for entry in stats.severity if entry.count]
        if levels:
            lines.append(f"* By severity: {', '.join(levels)}.")
        return reply("\n".join(lines))

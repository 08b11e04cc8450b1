"""The incident report as one Markdown document, and the escaping that keeps people's text inside it.

Everything a person typed (names, descriptions, task titles, status updates, the
retrospective, usernames, severity levels) appears as typed, never as Markdown: the
characters that would start a heading, a list, a quote, a table cell, a link, an
HTML tag or emphasis are backslash-escaped (CommonMark and GitHub's tables honour
these escapes), and line breaks become spaces where the document needs one line.
So nothing anyone writes can add a heading, end a table or hide a section.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from plugin.figures import describe_duration

# Characters escaped wherever they stand: emphasis, code, links, HTML, entities, table cells,
# strikethrough, and "#" (which also closes a heading when it ends one).
_INLINE = re.compile(r"([\\`*_{}\[\]<>|&~!#])")
# What would start a block at the beginning of a line once the above are escaped: a list
# item, a setext underline or a thematic break, an ordered list item ("1." or "1)").
_LINE_START = re.compile(r"^([+\-=]|\d+[.)])")


def inline(text: str) -> str:
    """Text as one line of literal Markdown: line breaks become spaces, structure characters are escaped."""
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return _escape_line(line)


def block(text: str) -> str:
    """Text of several lines as literal Markdown paragraphs: each line kept (a hard break), blank lines between
    paragraphs kept, leading indentation dropped (it would make a code block)."""
    paragraphs: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(_escape_line(line))
    rendered = ["\\\n".join(lines) for lines in paragraphs if lines]
    return "\n\n".join(rendered)


def _escape_line(line: str) -> str:
    escaped = _INLINE.sub(r"\\\1", line)
    return _LINE_START.sub(lambda match: _escape_start(match.group(1)), escaped, count=1)


def _escape_start(start: str) -> str:
    if start[-1] in ".)":
        return start[:-1] + "\\" + start[-1]
    return "\\" + start


def when(milliseconds: int) -> str:
    """A moment as the report shows it: date and minute, in UTC."""
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class StageTime:
    """A stage's row of the report: its title, its time (None: never entered), and whether it is the active one."""

    title: str
    spent_ms: int | None
    active: bool = False


@dataclass(frozen=True)
class TaskLine:
    """A task's row of the report, with people as the chat host names them."""

    stage: str
    title: str
    state: str
    assignee: str = ""
    closed_by: str = ""


@dataclass(frozen=True)
class Line:
    """A timeline entry or a status update as the report shows it: when, who (for updates) and what."""

    at: int
    text: str
    who: str = ""


@dataclass(frozen=True)
class Report:
    """Everything the report says about one incident, already read and named."""

    name: str
    description: str
    is_active: bool
    severity: str
    commander: str
    create_at: int
    end_at: int
    duration_ms: int
    stages: Sequence[StageTime] = ()
    timeline: Sequence[Line] = ()
    status_updates: Sequence[Line] = ()
    tasks: Sequence[TaskLine] = ()
    retrospective: Retrospective | None = None
    #: Whether older timeline entries than those in ``timeline`` exist (the report holds only the newest).
    timeline_left_out: bool = False
    #: How many older status updates than those in ``status_updates`` the report leaves out.
    status_updates_left_out: int = 0


@dataclass(frozen=True)
class Retrospective:
    """The retrospective as the report shows it: its text and who last wrote it when, or that the reader may
    not read it (``hidden``: only the incident channel's members and admins may)."""

    text: str = ""
    written_by: str = ""
    written_at: int = 0
    published_at: int = 0
    hidden: bool = False


_STATES = {"open": "open", "in_progress": "in progress", "closed": "done"}
NONE = "—"


def render(report: Report) -> str:
    """The report as Markdown: a title, the facts, then one section each for stages, timeline, updates, tasks, retrospective."""
    out = [f"# Incident report: {inline(report.name)}", ""]
    out += [f"- **Status:** {'active' if report.is_active else 'ended'}",
            f"- **Severity:** {inline(report.severity) if report.severity else 'none'}",
            f"- **Commander:** {inline(report.commander)}",
            f"- **Started:** {when(report.create_at)}",
            f"- **Ended:** {when(report.end_at) if not report.is_active else 'not yet (still active)'}",
            f"- **Duration:** {describe_duration(report.duration_ms)}"
            f"{'' if not report.is_active else ' so far'}"]
    if report.description.strip():
        out += ["", "## Description", "", block(report.description)]
    out += ["", "## Time in each stage", ""]
    if report.stages:
        out += ["| # | Stage | Time |", "| ---: | --- | ---: |"]
        for number, stage in enumerate(report.stages, start=1):
            spent = NONE if stage.spent_ms is None else describe_duration(stage.spent_ms)
            title = inline(stage.title) + (" (active)" if stage.active and report.is_active else "")
            out.append(f"| {number} | {title} | {spent} |")
    else:
        out.append("This incident has no stages.")
    out += ["", "## Timeline", ""]
    if report.timeline_left_out:
        out += [f"Earlier entries are left out: the report holds the last {len(report.timeline)}.", ""]
    if report.timeline:
        out += ["| When | What |", "| --- | --- |"]
        out += [f"| {when(line.at)} | {inline(line.text)} |" for line in report.timeline]
    else:
        out.append("The timeline is empty.")
    out += ["", "## Status updates", ""]
    if report.status_updates_left_out:
        out += [f"The {report.status_updates_left_out} earliest status updates are left out: the report holds the "
                f"last {len(report.status_updates)}.", ""]
    if report.status_updates:
        for update in report.status_updates:
            out += [f"**{when(update.at)}, {inline(update.who)}:**", "", block(update.text), ""]
        out.pop()
    else:
        out.append("No status updates were posted.")
    out += ["", "## Tasks", ""]
    if report.tasks:
        out += ["| Stage | Task | State | Assignee | Closed by |", "| --- | --- | --- | --- | --- |"]
        for task in report.tasks:
            out.append(f"| {inline(task.stage)} | {inline(task.title)} | {_STATES.get(task.state, task.state)} | "
                       f"{inline(task.assignee) if task.assignee else NONE} | "
                       f"{inline(task.closed_by) if task.closed_by else NONE} |")
    else:
        out.append("This incident has no tasks.")
    out += ["", "## Retrospective", ""]
    retrospective = report.retrospective
    if retrospective is not None and retrospective.hidden:
        out.append("Only the members of the incident channel may read the retrospective.")
    elif retrospective is not None and retrospective.written_at and retrospective.text.strip():
        published = (f"published {when(retrospective.published_at)}" if retrospective.published_at
                     else "not published")
        out += [f"Last written by {inline(retrospective.written_by)}, {when(retrospective.written_at)}; "
                f"{published}.", "", block(retrospective.text)]
    else:
        out.append("No retrospective has been written.")
    return "\n".join(out) + "\n"

"""The incident report as one Markdown document, and the escaping that keeps people's text inside it.

Everything a person typed (names, descriptions, task titles, status updates, the
retrospective, usernames, severity levels) appears as typed, never as Markdown: the
characters that would start a heading, a list, a quote, a table cell, a link, an
HTML tag or emphasis are backslash-escaped (CommonMark and GitHub's tables honour
these escapes), and line breaks become spaces where the document needs one line.
So nothing anyone writes can add a heading, end a table or hide a section.

The bot's posts and the slash command's replies hold people's text too (``chat_inline``),
rendered by Mattermost's web app, a fork of marked that honours a backslash only before
some characters: there the others are written as character references, and
``@channel``, ``@all`` and ``@here`` get an invisible word joiner after the ``@`` so that
they show as typed but notify nobody. Status updates and retrospectives are their
authors' own prose and keep its Markdown, with the same word joiner (``chat_prose``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from plugin.figures import describe_duration

# Characters escaped wherever they stand: emphasis, code, links, HTML, entities, table cells,
# strikethrough, and "#" (which also closes a heading when it ends one).
_INLINE = re.compile(r"([\\`*_{}\[\]<>|&~!#])")
# What would start a block at the beginning of a line once the above are escaped: a list
# item, a setext underline or a thematic break, an ordered list item ("1." or "1)").
_LINE_START = re.compile(r"^([+\-=]|\d+[.)])")
# In chat, "$" too: Mattermost shows $...$ as a formula. Mattermost's web app takes a backslash as an escape
# only before `*_{}[]()#+-.!>|~, so the other characters go as references (every CommonMark parser reads them).
_CHAT_INLINE = re.compile(r"([\\`*_{}\[\]<>|&~!#$])")
_CHAT_REFERENCES = {"\\": "&#92;", "<": "&lt;", "&": "&amp;", "$": "&#36;"}
#: Put after the "@" of a channel-wide mention: invisible, but Mattermost no longer reads the word as a mention.
WORD_JOINER = "\u2060"
# A channel-wide mention as Mattermost's server finds one in a message's text: the word, whatever its case, perhaps
# ended by ".", "-", ":" or "_", and not followed by more of a word (letters, digits, "@" or one of those four).
_CHANNEL_MENTION = re.compile(r"@(?=(?:channel|all|here)[.\-:_]*(?![^\W_]|[.\-:_@]))", re.IGNORECASE)


def inline(text: str) -> str:
    """Text as one line of literal Markdown: line breaks become spaces, structure characters are escaped."""
    return _escape_line(_one_line(text))


def block(text: str) -> str:
    """Text of several lines as literal Markdown paragraphs: each line kept (a hard break), blank lines between
    paragraphs kept, leading indentation dropped (it would make a code block)."""
    return "\n\n".join("\\\n".join(lines) for lines in _paragraphs(text, _escape_line))


def chat_inline(text: str) -> str:
    """``inline`` for a chat post or reply: shown as typed by Mattermost's apps, and no channel-wide mention."""
    return _escape_chat_line(_one_line(text))


def chat_prose(text: str) -> str:
    """A person's own prose for a chat post (a status update, a retrospective): the Markdown they wrote, as in any
    message of theirs, but with no channel-wide mention, since the bot posts it where they may not notify all."""
    return _CHANNEL_MENTION.sub("@" + WORD_JOINER, text)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _paragraphs(text: str, escape: Callable[[str], str]) -> list[list[str]]:
    """The escaped lines of each paragraph, stripped, blank lines dropped."""
    paragraphs: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(escape(line))
    return [lines for lines in paragraphs if lines]


def _escape_line(line: str) -> str:
    escaped = _INLINE.sub(r"\\\1", line)
    return _LINE_START.sub(lambda match: _escape_start(match.group(1)), escaped, count=1)


def _escape_start(start: str) -> str:
    if start[-1] in ".)":
        return start[:-1] + "\\" + start[-1]
    return "\\" + start


def _escape_chat_line(line: str) -> str:
    line = _CHANNEL_MENTION.sub("@" + WORD_JOINER, line)
    escaped = _CHAT_INLINE.sub(lambda match: _CHAT_REFERENCES.get(match.group(1), "\\" + match.group(1)), line)
    return _LINE_START.sub(lambda match: _escape_chat_start(match.group(1)), escaped, count=1)


def _escape_chat_start(start: str) -> str:
    return "&#61;" if start == "=" else _escape_start(start)


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

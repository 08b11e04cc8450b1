"""People's text in the bot's posts and the slash replies shows as typed: never a link, emphasis, heading or
channel-wide mention of its own, while the bot's own bold and @username mentions stay. Status updates and
retrospectives keep their authors' Markdown, but notify no whole channel either.

Each message is made twice, once around hostile text and once around plain text, and
both must parse into the same Markdown structure (tests/chat_text.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from plugin.command import parser as p
from plugin.command.parser import parse as p_parse
from plugin.command.runner import Caller, CommandRunner
from plugin.markdown import chat_prose
from plugin.model import SeverityLevels
from plugin.service import IncidentService, NewChecklist, NewIncident, NewItem
from tests.chat_text import assert_literal, channel_mentions, shown, strong
from tests.fakes.store import FakeChatHost, FakeUnitOfWork, Memory

ALICE, BOB, TEAM, SQUARE = "a" * 26, "b" * 26, "t" * 26, "s" * 26
PLAIN = "plain"
HOSTILE = [
    "[Sign in again](https://evil.example)",
    "x](https://evil.example) [y",
    "![img](https://evil.example/i.png)",
    "<https://evil.example>",
    "**bold** _em_ *it* ~~gone~~ `code`",
    "# heading",
    "- item",
    "+ item",
    "> quote",
    "1. first",
    "2) second",
    "```",
    "=== setext",
    "| a | b |",
    "<b>html</b> <!-- c --> &amp; &lt;",
    "@channel @all @here",
    "@Channel. x.@all (@here) @all_",
    "$x^2$ \\* back\\slash \\",
]
# Severity levels are single words an admin chose.
HOSTILE_LEVELS = ["[sev1](https://evil.example)", "**sev1**", "@channel", "`sev1`", "<b>sev1</b>", "$sev1$", "#sev1"]


class Clock:
    """Milliseconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Life:
    """The replies and posts of one incident's life, by what made them."""

    messages: dict[str, str]

    def __getitem__(self, label: str) -> str:
        return self.messages[label]


def live(text: str, level: str = "sev1") -> Life:
    """Run an incident whose name, stage and task titles, note and update are ``text``, graded ``level``."""
    host, memory, clock = FakeChatHost(usernames={ALICE: "alice", BOB: "bob"}), Memory(), Clock()
    host.channels[SQUARE] = (TEAM, "town-square")
    host.members.add((SQUARE, ALICE))
    service = IncidentService(lambda write=True: FakeUnitOfWork(memory, write=write), host, clock=clock,
                              severity_levels=lambda: SeverityLevels((level, "sev2")))
    runner = CommandRunner(service, host, clock=clock)
    messages: dict[str, str] = {}

    def say(label: str, command: p.Command, channel: str) -> None:
        body = runner.run(command, Caller(ALICE, TEAM, channel))
        messages[label] = body["text"]

    def posted(label: str) -> None:
        messages[label] = host.posts[-1][1]

    say("start", p.Start(name=text, severity=level), SQUARE)
    here = next(iter(memory.incidents.values())).channel_id
    posted("start announcement")
    incident = service.create_incident(ALICE, NewIncident(text, TEAM, ALICE, checklists=[
        NewChecklist(text, [NewItem(text)]), NewChecklist(text + " 2", [NewItem(text)])]))
    staged = incident.channel_id
    host.members.add((staged, BOB))
    say("stage refused", p.Stage("next"), staged)
    say("stage", p.Stage("next", force=True), staged)
    posted("stage post")
    say("stage last", p.Stage("next"), staged)
    say("stage already", p.Stage(2), staged)
    say("check", p.Check(1, 1), staged)
    say("check missing", p.Check(1, 5), staged)
    say("commander", p.Commander(), staged)
    say("commander bob", p.Commander("bob"), staged)
    say("severity", p.Severity(), staged)
    say("severity set", p.Severity(level), staged)
    posted("severity post")
    say("severity same", p.Severity(level), staged)
    say("severity change", p.Severity("sev2"), staged)
    posted("severity change post")
    say("severity back", p.Severity(level), staged)
    say("severity clear", p.Severity("none"), staged)
    posted("severity clear post")
    say("add unknown", p.Add((text,)), staged)
    say("announce unknown", p.Announce((text,)), staged)
    say("info", p.Info(), staged)
    say("list", p.List(), here)
    say("note", p.Note(text), staged)
    service.set_broadcast_channels(ALICE, incident.id, [SQUARE])
    say("update", p.Update(text, 600), staged)
    messages["update post"] = next(message for channel, message in reversed(host.posts) if channel == staged)
    messages["update broadcast"] = next(message for channel, message in host.posts if channel == SQUARE)
    clock.now += 601_000
    service.send_due_reminders()
    posted("reminder")
    say("timeline", p.Timeline(), staged)
    say("export", p.Export(), staged)
    say("end", p.End(), staged)
    service.update_retrospective(ALICE, incident.id, text)
    service.publish_retrospective(ALICE, incident.id)
    posted("retrospective")
    say("restart", p.Restart(), staged)
    return Life(messages)


@pytest.fixture(scope="module")
def plain() -> Life:
    return live(PLAIN)


# Posts that end with their author's own prose, after a heading line of the bot's.
PROSE = {"update post", "update broadcast", "retrospective"}


@pytest.mark.parametrize("text", HOSTILE)
def test_every_post_and_reply_of_an_incident_shows_peoples_text_as_typed(text, plain):
    hostile = live(text)
    assert hostile.messages.keys() == plain.messages.keys()
    for label, message in hostile.messages.items():
        if label in PROSE:
            continue
        assert_literal(message, text if PLAIN in plain[label] else "", plain[label])


@pytest.mark.parametrize("text", HOSTILE)
def test_status_updates_and_retrospectives_keep_their_markdown_and_notify_no_whole_channel(text, plain):
    hostile = live(text)
    for label in PROSE:
        heading, body = hostile[label].split("\n\n", 1)
        plain_heading, plain_body = plain[label].split("\n\n", 1)
        assert_literal(heading, text if PLAIN in plain_heading else "", plain_heading)
        assert plain_body == PLAIN and body == chat_prose(text)
        assert channel_mentions(body) == []


@pytest.mark.parametrize("level", HOSTILE_LEVELS)
def test_severity_levels_show_as_typed_in_replies_and_posts(level, plain):
    hostile = live(PLAIN, level)
    for label, message in hostile.messages.items():
        assert_literal(message, level if "sev1" in plain[label] else "", plain[label])


def test_the_bots_own_bold_and_mentions_stay_around_hostile_names():
    hostile = live("[Sign in again](https://evil.example) @channel")
    name = "[Sign in again](https://evil.example) @channel"
    assert strong(hostile["start"])[0] == name
    assert strong(hostile["list"])[0] == name and "commander @alice" in shown(hostile["list"])
    assert strong(hostile["stage post"]) == [name, name + " 2"]
    assert shown(hostile["stage post"]).startswith("@alice changed the active stage")
    assert strong(hostile["update broadcast"])[0] == name
    assert shown(hostile["reminder"]).startswith("@bob, please post a status update")


@pytest.mark.parametrize("line", ["dance{}", "stage {}", "remind {}", "start x --severity", "start x --{}"])
def test_what_the_parser_quotes_back_shows_as_typed(line):
    word = "[x](https://evil.example)"
    made = CommandRunner(None, None).run(p_parse(line.format(word)), Caller(ALICE, TEAM, SQUARE))["text"]
    plain = CommandRunner(None, None).run(p_parse(line.format(PLAIN)), Caller(ALICE, TEAM, SQUARE))["text"]
    assert_literal(made, word if PLAIN in plain else "", plain)

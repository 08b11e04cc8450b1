"""The report's Markdown and chat's: people's text stays text, so headings, tables, links and mentions are only ours."""
from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from plugin.markdown import (WORD_JOINER, Line, Report, Retrospective, StageTime, TaskLine, block, chat_inline,
                             chat_prose, inline, render)
from tests.chat_text import assert_literal, channel_mentions, shape, shown

HOSTILE = ("# Heading\n## also | a | b |\n|---|---|\n> quote\n- item\n1. first\n2) second\n===\n---\n"
           "    indented code\n```\nfence\n<script>alert(1)</script> [link](http://x) ![img](y) *em* _u_ "
           "`code` ~~gone~~ &amp; \\ trailing #")
PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def tokens(markdown: str) -> list:
    return PARSER.parse(markdown)


def kinds(markdown: str) -> set[str]:
    """Every kind of token the text parses into, inline ones included."""
    found = set()
    for token in tokens(markdown):
        found.add(token.type)
        found.update(child.type for child in token.children or [])
    return found


def test_inline_text_is_one_plain_paragraph_whatever_it_holds():
    assert kinds(inline(HOSTILE)) == {"paragraph_open", "inline", "text", "paragraph_close"}


def test_block_text_keeps_its_lines_and_paragraphs_as_plain_text():
    text = block(HOSTILE + "\n\n   second paragraph")
    assert kinds(text) <= {"paragraph_open", "inline", "text", "hardbreak", "paragraph_close"}
    assert sum(1 for token in tokens(text) if token.type == "paragraph_open") == 2


def test_escaped_text_renders_as_the_characters_typed():
    rendered = PARSER.renderInline(inline("a *b* | c # [d](e) <f> &amp; 1. g_h"))
    assert rendered == "a *b* | c # [d](e) &lt;f&gt; &amp;amp; 1. g_h"
    assert PARSER.render(block("1. one\n- two\n# three")).strip() == "<p>1. one<br />\n- two<br />\n# three</p>"


def _report(text: str) -> Report:
    return Report(
        name=text, description=text, is_active=False, severity=text, commander=text, create_at=0,
        end_at=3_600_000, duration_ms=3_600_000, stages=[StageTime(text, 60_000), StageTime("Resolve", None)],
        timeline=[Line(0, text), Line(60_000, text)], status_updates=[Line(0, text, who=text)],
        tasks=[TaskLine(text, text, "closed", text, text)],
        retrospective=Retrospective(text, written_by=text, written_at=60_000, published_at=120_000))


def test_the_reports_headings_and_table_shapes_are_its_own_however_hostile_the_text():
    parsed = tokens(render(_report(HOSTILE)))
    headings = [parsed[i + 1].content for i, token in enumerate(parsed) if token.type == "heading_open"]
    assert PARSER.renderInline(headings[0]).startswith("Incident report: # Heading ## also | a | b |")
    assert headings[1:] == ["Description", "Time in each stage", "Timeline", "Status updates", "Tasks",
                            "Retrospective"]
    rows = {}
    table = 0
    for token in parsed:
        if token.type == "table_open":
            table += 1
            rows[table] = []
        elif token.type == "tr_open":
            rows[table].append(0)
        elif token.type in ("td_open", "th_open"):
            rows[table][-1] += 1
    # Time in each stage: header and two stages of 3 cells; timeline: header and two entries of 2;
    # tasks: header and one task of 5.
    assert rows == {1: [3, 3, 3], 2: [2, 2, 2], 3: [5, 5]}
    found = [token.type for token in parsed] + [child.type for token in parsed for child in token.children or []]
    assert not {"html_block", "html_inline", "link_open", "image", "code_block", "fence", "blockquote_open",
                "ordered_list_open", "hr", "em_open", "s_open", "code_inline"} & set(found)
    # The one list is the report's own facts: status, severity, commander, start, end, duration.
    assert found.count("bullet_list_open") == 1 and found.count("list_item_open") == 6


def test_a_report_says_so_when_a_section_is_empty():
    report = Report(name="quiet", description="", is_active=True, severity="", commander="@alice", create_at=0,
                    end_at=0, duration_ms=90_000)
    text = render(report)
    for words in ("- **Status:** active", "- **Severity:** none", "- **Ended:** not yet (still active)",
                  "- **Duration:** 1m 30s so far", "This incident has no stages.", "The timeline is empty.",
                  "No status updates were posted.", "This incident has no tasks.",
                  "No retrospective has been written."):
        assert words in text
    assert "## Description" not in text


def test_the_retrospective_section_says_who_wrote_it_or_why_it_is_not_shown():
    def section(retrospective: Retrospective | None) -> str:
        return render(Report(name="x", description="", is_active=False, severity="", commander="@a", create_at=0,
                             end_at=0, duration_ms=0, retrospective=retrospective)).split("## Retrospective\n\n")[1]
    assert section(Retrospective("We *learnt*\n# this", "@bob", 60_000)) == (
        "Last written by @bob, 1970-01-01 00:01 UTC; not published.\n\nWe \\*learnt\\*\\\n\\# this\n")
    assert section(Retrospective("Done.", "@bob", 60_000, 120_000)).startswith(
        "Last written by @bob, 1970-01-01 00:01 UTC; published 1970-01-01 00:02 UTC.")
    assert section(Retrospective(hidden=True)) == "Only the members of the incident channel may read the retrospective.\n"
    assert section(None) == section(Retrospective()) == "No retrospective has been written.\n"


# ----- people's text in chat: the bot's posts and the slash replies ---------------------------------------
CHAT_HOSTILE = [
    "[Sign in again](https://evil.example)", "x](https://evil.example) [y", "![img](https://evil.example/i.png)",
    "<https://evil.example>", "**bold** _em_ *it* ~~gone~~ `code`", "# heading", "- item", "+ item", "> quote",
    "1. first", "2) second", "```", "=== setext", "| a | b |", "<b>html</b> <!-- c --> &amp; &lt;",
    "@channel @all @here", "@Channel. x.@all (@here) @all_", "$x^2$ \\* back\\slash \\",
]


def test_chat_text_shows_as_typed_whatever_it_holds():
    for text in CHAT_HOSTILE:
        assert_literal(chat_inline(text), text, chat_inline("plain"))


def test_prose_in_chat_keeps_its_markdown_but_mentions_no_whole_channel():
    text = "## What happened\n\n* the disk **filled** at noon, see [the graph](https://grafana.example/d/1)\n" \
           "@channel @all: read this, @bob too"
    made = chat_prose(text)
    assert shape(made) == shape(text)
    assert shown(made) == shown(text)
    assert channel_mentions(text) == ["@channel", "@all"] and channel_mentions(made) == []
    assert "@bob" in made


@pytest.mark.parametrize("mention", ["@channel", "@all", "@here", "@HERE", "@channel.", "@all:", "@here-", "@all_",
                                     "x.@channel", "(@all)", "**@here**"])
def test_a_channel_wide_mention_in_chat_text_is_no_mention_but_looks_the_same(mention):
    assert channel_mentions(mention) != []
    assert channel_mentions(chat_inline(mention)) == []
    assert shown(chat_inline(mention)) == mention


@pytest.mark.parametrize("text", ["@alice", "@allison", "@all.team", "@here_now", "@channel_ops", "ping @bob."])
def test_a_persons_mention_in_chat_text_stays_a_mention(text):
    assert WORD_JOINER not in chat_inline(text)
    assert shown(chat_inline(text)) == text


def test_the_report_keeps_its_backslash_escapes_and_no_word_joiner():
    assert inline("@channel <b> & \\") == "@channel \\<b\\> \\& \\\\"

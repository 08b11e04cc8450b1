"""How a chat message reads once rendered, for tests that check people's text shows as typed in it.

``shape`` is what the Markdown makes (every token but the text itself), ``shown`` the
text a reader sees, ``strong`` the bold runs, and ``channel_mentions`` the ``@channel``,
``@all`` and ``@here`` Mattermost's server would find: its mention parser
(server/channels/app/mention_parser_standard.go) over the message's text nodes.
"""
from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from plugin.markdown import WORD_JOINER

PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")
# Mattermost's web app (a fork of marked) takes a backslash as an escape only before these.
WEB_APP_ESCAPES = set("`*{}[]()#+-.!_>|~\\")
_SYSTEM_MENTIONS = {"@channel", "@all", "@here"}


def _inline_tokens(markdown: str) -> list[Token]:
    found = []
    for token in PARSER.parse(markdown):
        found.append(token)
        found.extend(token.children or [])
    return found


def shape(markdown: str) -> list[str]:
    """The kinds of tokens the message parses into, in order, text runs left out: its structure alone."""
    return [token.type for token in _inline_tokens(markdown) if token.type not in ("text", "softbreak")]


def shown(markdown: str) -> str:
    """The text a reader sees: paragraphs and list items one a line, the invisible word joiner left out."""
    lines: list[str] = []
    for token in PARSER.parse(markdown):
        if token.type == "inline":
            lines.append("".join("\n" if child.type in ("softbreak", "hardbreak") else child.content
                                 for child in token.children or []))
    return "\n".join(lines).replace(WORD_JOINER, "")


def strong(markdown: str) -> list[str]:
    """The text of each bold run, as shown."""
    runs: list[str] = []
    depth = 0
    for token in _inline_tokens(markdown):
        if token.type == "strong_open":
            if depth == 0:
                runs.append("")
            depth += 1
        elif token.type == "strong_close":
            depth -= 1
        elif depth and token.type == "text":
            runs[-1] += token.content
    return [run.replace(WORD_JOINER, "") for run in runs]


def channel_mentions(markdown: str) -> list[str]:
    """The channel-wide mentions Mattermost's server finds in the message, as its mention parser reads them:
    adjacent text nodes joined, words split where a character cannot be part of a mention."""
    found: list[str] = []
    run = ""
    for token in _inline_tokens(markdown):
        if token.type == "text":
            run += token.content
            continue
        if run:
            found += _mentions_in(run)
        run = ""
    return found + (_mentions_in(run) if run else [])


def _mentions_in(text: str) -> list[str]:
    found = []
    for word in re.split(r"[^\w:.\-@]+", text):
        if not word or (word[0] == ":" and word[-1] == ":"):
            continue
        word = word.lstrip(":.-_")
        if word.lower() in _SYSTEM_MENTIONS:
            found.append(word.lower())
            continue
        shorter = word
        while shorter and shorter[-1] in ".-:_":
            shorter = shorter[:-1]
            if shorter.lower() in _SYSTEM_MENTIONS:
                found.append(shorter.lower())
                break
        else:
            if not word.startswith("@"):
                found += [part.lower() for part in re.split(r"[.\-:]", word) if part.lower() in _SYSTEM_MENTIONS]
    return found


def backslashes_the_web_app_shows(markdown: str) -> list[str]:
    """Each backslash Mattermost's web app would show rather than take as an escape, with what follows it."""
    stray = []
    index = 0
    while index < len(markdown):
        if markdown[index] == "\\":
            following = markdown[index + 1:index + 2]
            if following not in WEB_APP_ESCAPES or (following == "\\" and markdown[index + 2:index + 3].isalnum()):
                stray.append(markdown[index:index + 2])
            index += 2
            continue
        index += 1
    return stray


def assert_literal(markdown: str, typed: str, plain_markdown: str) -> None:
    """The message shows ``typed`` as typed, makes the same structure as the message ``plain_markdown`` made
    around harmless text, mentions no whole channel, and holds no backslash the web app would show."""
    assert shape(markdown) == shape(plain_markdown), (markdown, plain_markdown)
    assert typed in shown(markdown), (typed, shown(markdown))
    assert channel_mentions(markdown) == [], markdown
    assert backslashes_the_web_app_shows(markdown) == [], markdown

"""The ``/incident`` command line as a value: a pure function from text to a Command.

Nothing here raises: every input, however malformed, becomes a Command; input
the parser cannot make sense of becomes :class:`Usage` carrying a message for the
person who typed it (and the runner adds the help text).

Numbering: people count from 1. ``stage 2`` is the second stage and
``check 1 3`` the third task of the first stage; the runner converts to the
0-based positions the service and the REST API use.

Quoting follows shell-like rules (``"..."``, ``'...'``, backslash escapes), except
that an unbalanced quote never fails: it runs to the end of the line. Mattermost
clients may send typographic quotes, so ``“...”`` and ``‘...’`` quote too. A quote
opens only where a word starts (or after ``=`` or a closing quote), and an apostrophe
between two letters never closes one, so ``can't`` and ``O'Brien's`` stay as typed.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from plugin.markdown import chat_inline as literal
from plugin.model import MEMBERS_ADD_MAX


@dataclass(frozen=True)
class Help:
    """Show the help text (``help``, an empty line)."""


@dataclass(frozen=True)
class Usage:
    """The line could not be understood; ``message`` says why and what to type."""

    message: str


@dataclass(frozen=True)
class Start:
    """``start <name> [--public] [--description "..."] [--playbook <id>] [--severity <level>]``.

    ``severity`` is None when not given (the playbook's default applies).
    """

    name: str
    public: bool = False
    description: str = ""
    playbook_id: str = ""
    severity: str | None = None


@dataclass(frozen=True)
class End:
    """``end``: end the incident of this channel."""


@dataclass(frozen=True)
class Restart:
    """``restart``: restart the ended incident of this channel."""


@dataclass(frozen=True)
class Stage:
    """``stage next|prev|<n> [--force]``: ``target`` is "next", "prev" or a 1-based number."""

    target: str | int
    force: bool = False


@dataclass(frozen=True)
class Check:
    """``check <stage#> <task#>``: both 1-based."""

    stage: int
    task: int


@dataclass(frozen=True)
class Run:
    """``run <stage#> <task#>``: both 1-based."""

    stage: int
    task: int


@dataclass(frozen=True)
class Commander:
    """``commander [@username]``: show (username empty) or change the commander."""

    username: str = ""


@dataclass(frozen=True)
class Add:
    """``add @username [@username ...]``: add people to the incident channel."""

    usernames: tuple[str, ...]


@dataclass(frozen=True)
class Announce:
    """``announce ~channel [~channel ...]``: channel names without the tilde."""

    channels: tuple[str, ...]


@dataclass(frozen=True)
class Update:
    """``update <message> [--remind 30m]``: post a status update; ``remind`` in seconds (0: never), None: keep."""

    message: str
    remind: int | None = None


@dataclass(frozen=True)
class Remind:
    """``remind 30m|never``: remind the commander every ``seconds`` from now (0: never)."""

    seconds: int


@dataclass(frozen=True)
class Severity:
    """``severity [<level>|none]``: show the severity and the levels (level empty), or set or clear it."""

    level: str = ""


@dataclass(frozen=True)
class List:
    """``list``: the caller's active incidents in this team."""


@dataclass(frozen=True)
class Info:
    """``info``: a summary of the incident of this channel."""


@dataclass(frozen=True)
class Timeline:
    """``timeline``: the last entries of this incident's timeline."""


@dataclass(frozen=True)
class Note:
    """``note <text>``: the text exactly as typed (no quoting rules), on one line."""

    text: str


@dataclass(frozen=True)
class Export:
    """``export``: a link to this incident's Markdown report."""


@dataclass(frozen=True)
class Stats:
    """``stats``: the headline figures of this team's incidents."""


Command = (Help | Usage | Start | End | Restart | Stage | Check | Run | Commander | Add | Announce | Update | Remind
           | List | Info | Timeline | Note | Severity | Export | Stats)

# The verb, then the rest of the line as typed.
_VERB_AND_REST = re.compile(r"\s*\S+\s*(.*)", re.DOTALL)

_OPEN_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u201e": "\u201c"}
_APOSTROPHES = ("'", "\u2019")


def _apostrophe(text: str, index: int) -> bool:
    """True when the character at index is an apostrophe inside a word (``can't``): text, never a quote."""
    return (text[index] in _APOSTROPHES and 0 < index < len(text) - 1
            and text[index - 1].isalnum() and text[index + 1].isalnum())


def split(text: str) -> list[str]:
    """Split a line into words with shell-like quoting; never raises (an open quote runs to the end)."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    closing = ""
    closed_at = -1  # where the last quote closed: a quote right after it opens again ('it''s')
    index = 0
    while index < len(text):
        char = text[index]
        # A quote opens a word, follows "=" (--description="...") or another quote; inside a word it is text.
        may_open = not in_word or text[index - 1] == "=" or closed_at == index - 1
        if closing:
            if char == closing and not _apostrophe(text, index):
                closing, closed_at = "", index
            elif char == "\\" and closing == '"' and index + 1 < len(text) and text[index + 1] in '"\\':
                index += 1
                current.append(text[index])
            else:
                current.append(char)
        elif char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        elif char in _OPEN_QUOTES and may_open:
            closing, in_word = _OPEN_QUOTES[char], True
        elif char == "\\" and index + 1 < len(text):
            index += 1
            current.append(text[index])
            in_word = True
        else:
            current.append(char)
            in_word = True
        index += 1
    if in_word:
        words.append("".join(current))
    return words


def _positive(word: str) -> int | None:
    # isdecimal alone accepts other scripts' digits; people mean ASCII numbers here. A number too large for any
    # incident is still one, so the runner can say which numbers there are.
    if word.isascii() and word.isdigit() and len(word) <= 9 and int(word) >= 1:
        return int(word)
    return None


_START_OPTIONS = {"--description": '"what happened"', "--playbook": "<playbook id>", "--severity": "sev1"}


def _start(args: list[str]) -> Command:
    name_words: list[str] = []
    public = False
    values: dict[str, str] = {}
    index = 0
    while index < len(args):
        word = args[index]
        key, equals, value = word.partition("=")
        if word == "--public":
            public = True
        elif word in _START_OPTIONS:
            if index + 1 >= len(args):
                return Usage(f"{literal(word)} needs a value, e.g. "
                             f"`/incident start db-down {word} {_START_OPTIONS[word]}`.")
            index += 1
            values[word] = args[index]
        elif equals and key in _START_OPTIONS:
            values[key] = value
        elif word.startswith("--") and len(word) > 2:
            return Usage(f"Unknown option {literal(word)} for start: use --public, --description, --playbook "
                         "or --severity.")
        else:
            name_words.append(word)
        index += 1
    name = " ".join(name_words).strip()
    if not name:
        return Usage("start needs a name, e.g. `/incident start Database is down`.")
    severity = values.get("--severity")
    if severity is not None and not severity.strip():
        return Usage("--severity needs a level, e.g. `/incident start db-down --severity sev1`.")
    return Start(name=name, public=public, description=values.get("--description", ""),
                 playbook_id=values.get("--playbook", "").strip(),
                 severity=None if severity is None else severity.strip())


def _severity(args: list[str]) -> Command:
    if len(args) > 1:
        return Usage("severity takes one level, e.g. `/incident severity sev2` (`none` clears it).")
    return Severity(args[0].strip() if args else "")


def _stage(args: list[str]) -> Command:
    # Case does not matter for the option, as it does not for the verb and next or prev.
    force = any(word.lower() == "--force" for word in args)
    rest = [word for word in args if word.lower() != "--force"]
    if len(rest) != 1:
        return Usage("stage needs exactly one of next, prev or a stage number, e.g. `/incident stage next`.")
    word = rest[0].lower()
    if word in ("next", "prev", "previous"):
        return Stage("prev" if word == "previous" else word, force)
    number = _positive(word)
    if number is None:
        return Usage(f"'{literal(rest[0][:40])}' is not a stage: use next, prev or a stage number counted from 1.")
    return Stage(number, force)


def _task(verb: str, make: type[Check] | type[Run], args: list[str]) -> Command:
    """``<verb> <stage#> <task#>``: a command on one task."""
    if len(args) != 2:
        return Usage(f"{verb} needs a stage number and a task number, both counted from 1, "
                     f"e.g. `/incident {verb} 1 2`.")
    stage, task = _positive(args[0]), _positive(args[1])
    if stage is None or task is None:
        return Usage(f"{verb} needs two numbers counted from 1 (stage, then task), e.g. `/incident {verb} 1 2`.")
    return make(stage, task)


#: Longer than any username a chat host allows (Mattermost's are at most 22 characters).
USERNAME_MAX = 64


def _too_long(names: Sequence[str]) -> Usage | None:
    """Usage naming the first name too long to be a username, clipped; None when every name may be one."""
    for name in names:
        if len(name) > USERNAME_MAX:
            return Usage(f"@{literal(name[:40])}… is not a username: usernames have at most {USERNAME_MAX} "
                         "characters.")
    return None


def _commander(args: list[str]) -> Command:
    if not args:
        return Commander()
    if len(args) > 1:
        return Usage("commander takes one @username, e.g. `/incident commander @bob`.")
    username = args[0].lstrip("@").strip()
    if not username:
        return Usage("commander takes one @username, e.g. `/incident commander @bob`.")
    return _too_long([username]) or Commander(username)


def _add(args: list[str]) -> Command:
    names = tuple(dict.fromkeys(word.lstrip("@").strip() for word in args if word.lstrip("@").strip()))
    if not names:
        return Usage("add needs at least one @username, e.g. `/incident add @bob`.")
    if len(names) > MEMBERS_ADD_MAX:
        return Usage(f"add takes at most {MEMBERS_ADD_MAX} people at once; you named {len(names)}.")
    return _too_long(names) or Add(names)


def _announce(args: list[str]) -> Command:
    names = tuple(dict.fromkeys(word.lstrip("~") for word in args if word.lstrip("~")))
    if not names:
        return Usage("announce needs at least one channel, e.g. `/incident announce ~town-square`.")
    return Announce(names)


def _note(text: str) -> Command:
    # A note is prose: quotes and backslashes are the person's own, so the raw rest of
    # the line is kept, its line breaks joined into one line.
    rest = _VERB_AND_REST.fullmatch(text)
    note = " ".join(line.strip() for line in rest.group(1).splitlines() if line.strip()) if rest else ""
    if not note:
        return Usage("note needs some text, e.g. `/incident note rolled back the deploy`.")
    return Note(note)


# Up to 9 digits a unit: a period too long to allow is a duration still, refused with the allowed range.
_DURATION = re.compile(r"(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?")
_NEVER = ("never", "off", "0")
_REMIND_OPTION = re.compile(r"(?<!\S)--remind(?:=|\s+|$)(\S*)")
DURATION_EXAMPLES = "e.g. 30s, 15m, 2h, 1d or 1h30m"


def duration(word: str) -> int | None:
    """Seconds in a duration such as 30s, 15m, 2h, 1d or 1h30m; None when it is not one."""
    match = _DURATION.fullmatch(word.strip().lower())
    if not word.strip() or match is None:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _reminder(word: str, example: str) -> int | str:
    """Seconds for never/off or a duration; else the Usage message saying what to type."""
    if word.lower() in _NEVER:
        return 0
    seconds = duration(word)
    if seconds is None:
        if not word:
            return f"--remind needs a duration ({DURATION_EXAMPLES}) or never, e.g. {example}."
        return (f"'{literal(word[:40])}' is not a duration: use a number and a unit ({DURATION_EXAMPLES}) or "
                f"never, e.g. {example}.")
    return seconds


def _update(rest: str) -> Command:
    """The message keeps its own spacing and lines; ``--remind <duration>`` may stand anywhere in it."""
    options = _REMIND_OPTION.findall(rest)
    if len(options) > 1:
        return Usage("Give --remind once, e.g. `/incident update rolled back --remind 30m`.")
    remind: int | None = None
    if options:
        found = _reminder(options[0], "`/incident update rolled back --remind 30m`")
        if isinstance(found, str):
            return Usage(found)
        remind = found
    message = _REMIND_OPTION.sub("", rest).strip()
    if not message:
        return Usage("update needs a message, e.g. `/incident update rolled back, errors dropping --remind 30m`.")
    return Update(message, remind)


def _remind(args: list[str]) -> Command:
    if len(args) != 1:
        return Usage(f"remind takes one duration ({DURATION_EXAMPLES}) or never, e.g. `/incident remind 30m`.")
    found = _reminder(args[0], "`/incident remind 30m`")
    return Usage(found) if isinstance(found, str) else Remind(found)


def _no_args(name: str, make: type, args: list[str]) -> Command:
    if args:
        return Usage(f"{name} takes no arguments: type `/incident {name}`.")
    return make()


def parse(text: str) -> Command:
    """Turn the text after ``/incident`` into a Command; never raises."""
    if not isinstance(text, str):
        return Usage("The command line was empty.")
    words = split(text)
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb == "start":
        return _start(args)
    if verb == "stage":
        return _stage(args)
    if verb == "check":
        return _task(verb, Check, args)
    if verb == "run":
        return _task(verb, Run, args)
    if verb == "commander":
        return _commander(args)
    if verb == "add":
        return _add(args)
    if verb == "announce":
        return _announce(args)
    if verb == "update":
        # The message as typed (quotes, spacing and lines kept): the text after the verb.
        return _update(text.strip()[len(words[0]):] if text.strip().startswith(words[0]) else " ".join(args))
    if verb == "remind":
        return _remind(args)
    if verb == "note":
        return _note(text)
    if verb == "severity":
        return _severity(args)
    simple = {"end": End, "restart": Restart, "list": List, "info": Info, "timeline": Timeline,
              "export": Export, "stats": Stats}
    if verb in simple:
        return _no_args(verb, simple[verb], args)
    if verb in ("help", "-h", "--help", "?"):
        return Help()
    return Usage(f"Unknown subcommand '{literal(words[0][:40])}'.")

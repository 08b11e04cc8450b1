"""The /incident parser: a pure function from text to a Command, never raising."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.command.parser import (
    Add,
    Announce,
    Check,
    Commander,
    End,
    Export,
    Help,
    Info,
    List,
    Note,
    Remind,
    Restart,
    Run,
    Severity,
    Stage,
    Stats,
    Start,
    Timeline,
    Update,
    Usage,
    duration,
    parse,
    split,
)
from plugin.command.runner import HELP_TEXT

COMMAND_TYPES = (Help, Usage, Start, End, Restart, Stage, Check, Run, Commander, Add, Announce, Update, Remind, List,
                 Info, Timeline, Note, Severity, Export, Stats)


@pytest.mark.parametrize("text, expected", [
    ("start db down", Start("db down")),
    ("start   db    down  ", Start("db down")),
    ('start "db  down"', Start("db  down")),
    ("start 'it''s down'", Start("its down")),
    ("start db --public", Start("db", public=True)),
    ('start db --description "disk full on db-1"', Start("db", description="disk full on db-1")),
    ("start db --description=full --playbook=pb1", Start("db", description="full", playbook_id="pb1")),
    ("start db --playbook abc123", Start("db", playbook_id="abc123")),
    ("start Datenbank \u00fcberlastet \U0001F525", Start("Datenbank \u00fcberlastet \U0001F525")),
    ("start \u201cTokyo \u6771\u4eac down\u201d", Start("Tokyo \u6771\u4eac down")),
    ("START db", Start("db")),
    ("end", End()),
    ("add @bob", Add(("bob",))),
    ("add @bob carol @bob", Add(("bob", "carol"))),
    ("restart", Restart()),
    ("stage next", Stage("next")),
    ("stage NEXT --force", Stage("next", force=True)),
    ("stage --force next", Stage("next", force=True)),
    ("stage next --FORCE", Stage("next", force=True)),
    ("Stage 2 --Force", Stage(2, force=True)),
    ("stage prev", Stage("prev")),
    ("stage previous", Stage("prev")),
    ("stage 3", Stage(3)),
    ("check 1 2", Check(1, 2)),
    ("run 2 1", Run(2, 1)),
    ("RUN 1 3", Run(1, 3)),
    ("commander", Commander()),
    ("commander @bob", Commander("bob")),
    ("commander bob", Commander("bob")),
    ("announce ~town-square ~ops ~ops", Announce(("town-square", "ops"))),
    ("list", List()),
    ("info", Info()),
    ("help", Help()),
    ("", Help()),
    ("   \t ", Help()),
])
def test_parse_understands_each_subcommand_form(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("start", "start needs a name"),
    ("start --public", "start needs a name"),
    ("start db --description", "--description needs a value"),
    ("start db --playbook", "--playbook needs a value"),
    ("start db --urgent", "Unknown option \\--urgent"),  # shown as --urgent: the escape keeps it from a list
    ("stage", "exactly one of next, prev"),
    ("stage next prev", "exactly one of next, prev"),
    ("stage 0", "counted from 1"),
    ("stage -1", "counted from 1"),
    ("stage \u0663", "counted from 1"),
    ("check 1", "stage number and a task number"),
    ("check 1 2 3", "stage number and a task number"),
    ("check a b", "two numbers counted from 1"),
    ("check 0 1", "two numbers counted from 1"),
    ("run", "run needs a stage number and a task number"),
    ("run 1", "e.g. `/incident run 1 2`"),
    ("run 1 x", "run needs two numbers counted from 1"),
    ("commander @bob @carol", "one @username"),
    ("commander @", "one @username"),
    ("announce", "at least one channel"),
    ("announce ~", "at least one channel"),
    ("end now", "end takes no arguments"),
    ("list all", "list takes no arguments"),
    ("frobnicate", "Unknown subcommand 'frobnicate'"),
])
def test_parse_explains_malformed_or_surplus_arguments(text, fragment):
    result = parse(text)
    assert isinstance(result, Usage)
    assert fragment in result.message


def test_an_unbalanced_quote_runs_to_the_end_of_the_line():
    assert parse('start "db is down --public') == Start("db is down --public")
    assert split("a 'b c") == ["a", "b c"]


@pytest.mark.parametrize("text, expected", [
    ("start can't log in", Start("can't log in")),
    ("start O'Brien's laptop won't boot", Start("O'Brien's laptop won't boot")),
    ("start the users' db is down", Start("the users' db is down")),
    ("start 'can't log in' --public", Start("can't log in", public=True)),
    ("start 5\" pipe burst --description \"it's wet\"", Start('5" pipe burst', description="it's wet")),
    ("start db --description='it is full'", Start("db", description="it is full")),
])
def test_an_apostrophe_or_quote_inside_a_word_is_kept_as_typed(text, expected):
    assert parse(text) == expected


def test_backslash_escapes_a_quote_inside_double_quotes():
    assert split(r'"say \"hi\"" x') == ['say "hi"', "x"]


def test_a_trailing_backslash_is_kept_literally():
    assert split("end\\") == ["end\\"]


def test_empty_quotes_make_an_empty_word_and_no_name():
    assert split('start ""') == ["start", ""]
    assert isinstance(parse('start ""'), Usage)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_never_raises_and_always_returns_a_command(text):
    assert isinstance(parse(text), COMMAND_TYPES)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["start", "stage", "check", "run", "commander", "announce", "end", "update", "remind",
                                 "--remind", "--remind=", "30m", "never", "--public",
                                 "--force", "--description", "--playbook", "next", "prev", "1", "0", "@",
                                 "~", '"', "'", "\\", "\u201c", " ", "x y"]), max_size=8))
def test_parse_never_raises_on_command_like_word_soup(words):
    assert isinstance(parse(" ".join(words)), COMMAND_TYPES)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                      blacklist_characters="\"'\\\u201c\u2018\u201e"), min_size=1)
       .filter(lambda name: not name.startswith("--")))
def test_a_single_word_name_survives_start_unchanged(name):
    assert parse(f"start {name}") == Start(name)


@pytest.mark.parametrize("text, expected", [
    ("timeline", Timeline()),
    ("note rolled back the deploy", Note("rolled back the deploy")),
    ("note it's \"down\" \\ again", Note("it's \"down\" \\ again")),
    ("Note   two  spaces kept inside  ", Note("two  spaces kept inside")),
    ("note first line\n  second line", Note("first line second line")),
])
def test_timeline_and_note_parse_and_a_note_keeps_its_text_as_typed(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["note", "note   ", "note \n \n", "timeline 5"])
def test_a_note_without_text_or_timeline_with_arguments_gets_usage(text):
    assert isinstance(parse(text), Usage)


@pytest.mark.parametrize("text, expected", [
    ("update rolled back", Update("rolled back")),
    ("update rolled back --remind 30m", Update("rolled back", 1800)),
    ("update --remind=2h rolled back", Update("rolled back", 7200)),
    ("update still down --remind never", Update("still down", 0)),
    ('update "db" is  back\nerrors dropping', Update('"db" is  back\nerrors dropping')),
    ("remind 15m", Remind(900)),
    ("remind 1h30m", Remind(5400)),
    ("remind 30s", Remind(30)),
    ("remind never", Remind(0)),
    ("remind OFF", Remind(0)),
])
def test_update_keeps_the_message_as_typed_and_remind_reads_durations(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, says", [
    ("update", "update needs a message"),
    ("update --remind 30m", "update needs a message"),
    ("update down --remind", "--remind needs a duration"),
    ("update down --remind soon", "'soon' is not a duration"),
    ("update down --remind 1m --remind 2m", "Give --remind once"),
    ("remind", "remind takes one duration"),
    ("remind 30", "'30' is not a duration: use a number and a unit"),
    ("remind 30m 1h", "remind takes one duration"),
])
def test_update_and_remind_explain_what_to_type_when_they_cannot_be_read(text, says):
    command = parse(text)
    assert isinstance(command, Usage) and says in command.message


@pytest.mark.parametrize("word, seconds", [("45s", 45), ("15m", 900), ("2h", 7200), ("1d", 86400),
                                           ("1h30m", 5400), ("2H", 7200), ("", None), ("m", None), ("1.5h", None),
                                           ("-5m", None), ("5 m", None)])
def test_durations_are_numbers_with_units_from_days_to_seconds(word, seconds):
    assert duration(word) == seconds


@pytest.mark.parametrize("text, expected", [
    ("export", Export()), ("EXPORT", Export()), ("stats", Stats()), ("  stats  ", Stats()),
    ("export md", Usage("export takes no arguments: type `/incident export`.")),
    ("stats 30d", Usage("stats takes no arguments: type `/incident stats`.")),
])
def test_export_and_stats_take_no_arguments(text, expected):
    assert parse(text) == expected


def test_the_commands_page_has_a_row_for_every_subcommand_the_help_lists():
    page = (Path(__file__).resolve().parents[2] / "docs" / "mattermost.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)", page, re.MULTILINE)) | set(re.findall(r"^\| `\w+`, `(\w+)`", page, re.M))
    listed = set(re.findall(r"`/incident (\w+)", HELP_TEXT))
    assert listed - rows == set()


@pytest.mark.parametrize("text", ["commander @" + "x" * 5000, "add @bob @" + "y" * 65])
def test_a_name_too_long_for_a_username_is_refused_quoting_only_its_start(text):
    command = parse(text)
    assert isinstance(command, Usage) and "is not a username: usernames have at most 64 characters" in command.message
    assert len(command.message) < 200


def test_add_takes_at_most_fifty_people_at_once_as_the_api_does():
    assert parse("add " + " ".join(f"@u{i}" for i in range(50))) == Add(tuple(f"u{i}" for i in range(50)))
    refused = parse("add " + " ".join(f"@u{i}" for i in range(51)))
    assert refused == Usage("add takes at most 50 people at once; you named 51.")

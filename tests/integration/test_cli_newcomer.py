"""The command line as a newcomer meets it: help texts, quiet output, users and the chat console."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shell_env(monkeypatch, database_url, tmp_path):
    for name in ("INCIDENT_CONFIG", "INCIDENT_MAX_BODY_BYTES", "INCIDENT_HOST_SECRET", "INCIDENT_ADMIN_USER_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INCIDENT_DATABASE_URL", database_url)
    monkeypatch.setenv("INCIDENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INCIDENT_REMINDER_SCAN_SECONDS", "0")  # no scanner outliving the test's database
    return database_url


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """incident-plugin ARGS in a process of its own, as a person runs it."""
    return subprocess.run([sys.executable, "-m", "plugin.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=os.environ.copy())


def test_serve_help_shows_each_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # help lines wrap with the terminal's width
    for option, default in [("--host", "127.0.0.1"), ("--port", "9065"), ("--threads", "4"),
                            ("--workers", str(cli.default_workers()))]:
        assert option in out and f"(default: {default})" in out


def test_the_top_help_says_what_the_command_does_in_plain_words(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Run the incident server" in out and "``" not in out


def test_settings_help_shows_the_set_syntax(capsys):
    with pytest.raises(SystemExit):
        cli.main(["settings", "--help"])
    out = capsys.readouterr().out
    assert "set KEY VALUE" in out and "KEY=VALUE" not in out


def test_settings_commands_print_no_migration_chatter(shell_env):
    done = run_cli("settings", "set", "MaxBodyBytes", "4096")
    assert done.returncode == 0, done.stderr
    assert "INFO" not in done.stderr and "alembic" not in done.stderr
    assert "MaxBodyBytes saved" in done.stdout


def test_a_bad_value_from_the_command_line_is_labelled_as_such(shell_env, capsys):
    assert cli.main(["settings", "set", "MaxBodyBytes", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "command line" in err and "request" not in err


def test_dev_py_run_without_a_command_prints_its_usage():
    done = subprocess.run([sys.executable, str(ROOT / "dev.py"), "run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "usage: python3 dev.py run COMMAND" in done.stderr and "Traceback" not in done.stderr


def test_users_add_prints_the_id_and_can_make_the_first_admin(shell_env, capsys):
    assert cli.main(["users", "add", "Alice", "--admin"]) == 0
    name, user_id, *rest = capsys.readouterr().out.split()
    assert name == "alice" and len(user_id) == 26 and rest == ["(system", "admin)"]
    assert cli.main(["users", "add", "bob"]) == 0
    capsys.readouterr()
    assert cli.main(["users", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"alice {user_id} (system admin)" and lines[1].startswith("bob ")
    assert cli.main(["settings", "show"]) == 0
    assert user_id in capsys.readouterr().out


def test_users_add_refuses_a_name_that_is_not_a_username(shell_env, capsys):
    assert cli.main(["users", "add", "bob smith!"]) == 2
    assert "is not a username" in capsys.readouterr().err


def test_users_add_refuses_a_name_too_long_saying_how_long_one_may_be(shell_env, capsys):
    assert cli.main(["users", "add", "b" * 65]) == 2
    err = capsys.readouterr().err
    assert "is 65 characters long; use at most 64" in err and "b" * 41 not in err


@pytest.mark.parametrize("name", ["all", "Channel", "@here"])
def test_users_add_refuses_a_channel_wide_mention_as_a_username(shell_env, capsys, name):
    assert cli.main(["users", "add", name]) == 2
    assert "notifies everyone in a channel" in capsys.readouterr().err
    assert cli.main(["users", "list"]) == 0
    assert capsys.readouterr().out == ""


def test_chat_runs_a_whole_incident_for_two_people(shell_env, capsys):
    assert cli.main(["chat", "--user", "alice", "/incident", "start", "db", "is", "down"]) == 0
    out = capsys.readouterr().out
    assert "Incident **db is down** started in ~db-is-down" in out
    assert "~db-is-down  incident-bot: This incident was started by @alice" in out
    assert cli.main(["users", "add", "bob"]) == 0
    capsys.readouterr()
    assert cli.main(["chat", "--user", "alice", "--channel", "~db-is-down", "/incident add @bob"]) == 0
    assert "Added @bob to this incident's channel." in capsys.readouterr().out
    assert cli.main(["chat", "--user", "bob", "--channel", "db-is-down", "/incident", "end"]) == 0
    out = capsys.readouterr().out
    assert "Incident **db is down** ended." in out and "This incident was ended by @bob." in out


def test_chat_reads_a_session_from_stdin_and_follows_into_the_new_channel(shell_env, capsys, monkeypatch):
    import io

    lines = "/incident start printer on fire\n:user bob\n:user alice\n/incident add @bob\n" \
            ":user bob\n/incident commander @bob\n/deploy now\n:channel ~nowhere\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert cli.main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "alice in ~town-square> /incident start printer on fire" in out
    assert "alice in ~printer-on-fire> /incident add @bob" in out
    assert "@bob is now the commander of **printer on fire**." in out
    assert "Only /incident commands work here, not /deploy." in out
    assert "There is no channel ~nowhere in this team." in out


def test_a_user_who_first_types_in_another_channel_can_still_post_in_town_square(shell_env, capsys, monkeypatch):
    import io

    lines = ("/incident start printer on fire\n:user bob\n:user alice\n/incident add @bob\n:user bob\n"
             "/incident announce ~town-square\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert cli.main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "bob in ~printer-on-fire> /incident announce ~town-square\n  (only you) Announced in ~town-square." in out

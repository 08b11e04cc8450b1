"""The README's shell blocks: each is POSIX sh, and the two walk-throughs work against a real server."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_server import clean_env, serve

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^( *)```sh\n(.*?)^\1```", re.S | re.M)


def sh_blocks() -> list[str]:
    """Every ```sh block of the README, unindented."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [re.sub(rf"(?m)^{indent}", "", body) for indent, body in BLOCK.findall(text)]


def block_after(heading: str) -> str:
    """The first sh block under a heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return BLOCK.search(text, text.index(heading)).group(2)


@pytest.mark.parametrize("number", range(len(sh_blocks())))
def test_every_shell_block_of_the_readme_is_posix_sh(number):
    done = subprocess.run(["sh", "-n"], input=sh_blocks()[number], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_readme_walk_throughs_run_under_sh_against_a_real_server(tmp_path):
    env = clean_env(tmp_path)
    with serve(tmp_path, env) as base:
        port = base.rsplit(":", 1)[1]
        chat = subprocess.run(["sh", "-e"], input=block_after("## Try it"), capture_output=True, text=True,
                              timeout=300, cwd=ROOT, env=env)
        assert chat.returncode == 0, chat.stdout + chat.stderr
        assert "(system admin)" in chat.stdout
        assert "Added @bob to this incident's channel." in chat.stdout
        assert "@bob is now the commander of **db is down**." in chat.stdout
        assert "bob in ~db-is-down> /incident end" in chat.stdout
        assert "This incident was ended by @bob." in chat.stdout
        assert "paged the DBA" in chat.stdout and "@bob ended the incident." in chat.stdout

        curl = subprocess.run(["sh", "-e"], input=block_after("## A first incident with curl").replace(
            "127.0.0.1:9065", f"127.0.0.1:{port}"), capture_output=True, text=True, timeout=120, env=env)
        assert curl.returncode == 0, curl.stdout + curl.stderr
        answers = [json.loads(line) for line in curl.stdout.splitlines() if line.strip()]
        assert [answer.get("active_stage") for answer in answers[:4]] == [1, 1, 1, 1]
        assert [answer.get("is_active") for answer in answers[:4]] == [True, True, False, True]
        assert answers[-1]["total_count"] == 1

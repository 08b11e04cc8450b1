"""Odd paths on the backstage page's files, sent as raw request lines to a real server."""
from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.test_server import clean_env, serve

ODD_PATHS = [
    "/backstage/assets/../../plugin.json", "/backstage/assets/..%2f..%2fplugin.json",
    "/backstage/assets/%2e%2e/%2e%2e/plugin.json", "/backstage/assets/..\\..\\plugin.json",
    "/backstage/assets/%5c..%5c..%5cplugin.json", "/backstage/assets/x%00.js", "/backstage/assets/%00",
    "/backstage/assets/" + "a" * 4000 + ".js", "/backstage/assets/%c0%ae%c0%ae/plugin.json",
    "/backstage/assets/%ff.js", "/backstage/../plugin.json", "/backstage/assets/../index.html",
    "/backstage/assets/./../../pyproject.toml", "/backstage/assets/.", "/backstage/assets/..",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path: Path = tmp_path_factory.mktemp("paths")
    with serve(tmp_path, clean_env(tmp_path, INCIDENT_REMINDER_SCAN_SECONDS="0")) as url:
        yield url


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET path exactly as written, without a client normalising it."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ODD_PATHS)
def test_a_raw_odd_asset_path_is_a_4xx_and_never_a_file_outside_the_build(base, path):
    status, body = raw_get(base, path)
    assert status in (400, 404), (path, status)
    assert b'"settings_schema"' not in body and b"[project]" not in body and b"<!doctype" not in body.lower()


def test_the_built_files_are_still_served_beside_the_odd_paths(base):
    status, body = raw_get(base, "/backstage/")
    assert status == 200 and b'<div id="app">' in body

"""Loopback servers: the fake Mattermost and our backend, both on 127.0.0.1 port 0."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import make_server

from plugin.app import create_app
from plugin.settings import Settings
from tests.fakes.mattermost import FakeMattermost

SLASH_TOKEN = "slashcommandtoken000000000"


@dataclass
class Backend:
    """Our server running on loopback, and its parts."""

    url: str
    components: Any


@pytest.fixture
def fake_mattermost() -> Iterator[FakeMattermost]:
    fake = FakeMattermost().start()
    yield fake
    fake.stop()


def _serve(settings: Settings) -> Iterator[Backend]:
    app = create_app(settings, migrate_db=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Backend(f"http://127.0.0.1:{server.server_port}", app.extensions["incident"])
    finally:
        server.shutdown()
        server.server_close()
        components = app.extensions["incident"]
        getattr(components.host, "close", lambda: None)()
        if components.egress is not None:
            components.egress.stop(5)  # its last flush, while the database is still there
        components.db.dispose()


@pytest.fixture
def local_backend(settings: Settings) -> Iterator[Backend]:
    """The backend with the built-in local chat host."""
    yield from _serve(settings.replace(SlashCommandToken=SLASH_TOKEN))


@pytest.fixture
def mattermost_backend(settings: Settings, fake_mattermost: FakeMattermost) -> Iterator[Backend]:
    """The backend wired to the fake Mattermost through the REST adapter."""
    yield from _serve(settings.replace(SlashCommandToken=SLASH_TOKEN, MattermostSiteUrl=fake_mattermost.url,
                                       MattermostBotToken=fake_mattermost.bot_token))

"""Fixtures: an app whose webhooks may reach loopback, a loopback receiver, and short delays."""
from __future__ import annotations

import dataclasses
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin.app import create_app
from plugin.settings import Settings
from tests.conftest import ADMIN, TEAM, as_user
from tests.webhooks.receiver import Receiver

# Retries after tens of milliseconds, leases of a couple of seconds: outages in tests last moments.
FAST = {"poll_interval": 0.02}
# Names the tests resolve without DNS: a public address (never connected to in a passing test)
# and a name that moves to loopback after it was checked.
PUBLIC = "93.184.215.14"


def fast(settings: Settings, **values: Any) -> Settings:
    """Settings with short webhook delays, loopback allowed, and these other values."""
    values = {"WebhookAllowPrivateAddresses": True, "WebhookHttpHosts": "127.0.0.1", **values}
    return dataclasses.replace(settings.replace(**values), webhook_backoff_seconds=0.05, webhook_lease_seconds=2.0)


def certificate(folder: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for this name only: a server context with it, and a client context that trusts it."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=60)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


class Names:
    """A resolver the tests control: names map to address lists; anything else is not found."""

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {"hooks.example.com": [PUBLIC], "localhost": ["127.0.0.1"]}

    def __call__(self, host: str, _port: int) -> list[str]:
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return list(self.table[host])


def make_app(settings: Settings, names: Names | None = None, **options: Any) -> Any:
    """An app with the webhook sender tuned for tests; stop it with ``stop``."""
    application = create_app(settings, migrate_db=False,
                             webhook_options={**FAST, "resolve": names or Names(), **options})
    application.config["TESTING"] = True
    return application


def stop(application: Any) -> None:
    """Stop the app's background threads and close its database."""
    components = application.extensions["incident"]
    components.webhook_sender.stop(5)
    components.webhook_lookups.shutdown()
    components.egress.stop(5)
    components.db.dispose()


@pytest.fixture
def names() -> Names:
    return Names()


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return fast(settings)


@pytest.fixture
def happ(hook_settings: Settings, names: Names) -> Iterator[Any]:
    application = make_app(hook_settings, names)
    yield application
    stop(application)


@pytest.fixture
def hclient(happ: Any) -> Any:
    return happ.test_client()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def register(client: Any, url: str, events: Any = ("*",), **more: Any) -> dict[str, Any]:
    """Register a webhook as the admin; return the answer (with its secret)."""
    response = client.post("/api/v0/webhooks", headers=as_user(ADMIN), json={"url": url, "events": list(events),
                                                                             **more})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def start_incident(client: Any, name: str = "db is down") -> dict[str, Any]:
    """Start an incident as the admin."""
    response = client.post("/api/v0/incidents", headers=as_user(ADMIN), json={
        "name": name, "team_id": TEAM, "commander_user_id": ADMIN,
        "checklists": [{"title": "Triage", "items": [{"title": "look"}]}, {"title": "Fix"}]})
    assert response.status_code == 201, response.get_json()
    return response.get_json()

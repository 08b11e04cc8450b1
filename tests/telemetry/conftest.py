"""Fixtures: a loopback data plane and an app whose telemetry points at it."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plugin.app import create_app
from plugin.settings import Settings
from tests.telemetry.dataplane import DataPlane

# Fast polling and short backoff so that outages in tests last milliseconds, not minutes.
FAST = {"poll_interval": 0.05, "backoff_base": 0.05, "backoff_max": 0.2}


@pytest.fixture
def dataplane() -> Iterator[DataPlane]:
    plane = DataPlane().start()
    yield plane
    plane.release()
    plane.stop()


@pytest.fixture
def telemetry_settings(settings: Settings, dataplane: DataPlane) -> Settings:
    return settings.replace(RudderWriteKey=dataplane.write_key, RudderDataPlaneUrl=dataplane.url)


def make_app(settings: Settings, **options: Any) -> Any:
    """An app with telemetry tuned for tests; the caller stops it."""
    application = create_app(settings, migrate_db=False, telemetry_options={**FAST, **options})
    application.config["TESTING"] = True
    return application


@pytest.fixture
def tapp(telemetry_settings: Settings) -> Iterator[Any]:
    application = make_app(telemetry_settings)
    yield application
    components = application.extensions["incident"]
    components.telemetry.stop(2.0)
    components.db.dispose()


@pytest.fixture
def tcomponents(tapp: Any) -> Any:
    return tapp.extensions["incident"]


@pytest.fixture
def tclient(tapp: Any) -> Any:
    return tapp.test_client()

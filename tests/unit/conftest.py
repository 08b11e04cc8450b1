"""Fixtures of the unit suite: the in-memory state the fakes share."""
from __future__ import annotations

import pytest

from tests.fakes.store import Memory


@pytest.fixture
def memory() -> Memory:
    return Memory()

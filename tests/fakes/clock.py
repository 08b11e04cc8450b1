"""A clock the test moves, for code that takes its clock as a callable returning ms since 1970."""
from __future__ import annotations


class Clock:
    """Answers ``now`` until the test moves it."""

    def __init__(self, now: int = 1_000_000):
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)

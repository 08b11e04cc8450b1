"""A lock file held with ``flock``, opened once per process.

An ``flock`` belongs to the open file, and a forked child inherits the parent's
open files: with the parent's descriptor the child would share the parent's lock
(taking it would succeed while the parent holds it), and a copy left open would
keep the lock held after the parent lets go. So each process opens the file
itself, and a descriptor inherited over fork is closed, not used: closing a copy
does not release the parent's lock.

Used by the SQLite writers' queue (``plugin.store.database``) and the telemetry
sender's turn (``plugin.telemetry.dispatcher``).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockFile:
    """One descriptor of a lock file per process; ``flock`` on it waits or tries."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._fd: int | None = None
        self._pid = 0

    def descriptor(self) -> int:
        """This process's descriptor of the file, opened (and the file made) at first use."""
        if self._pid != os.getpid():
            self._drop_inherited()
        if self._fd is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def lock(self) -> None:
        """Wait for the lock."""
        fcntl.flock(self.descriptor(), fcntl.LOCK_EX)

    def try_lock(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        try:
            fcntl.flock(self.descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(self) -> None:
        """Let the lock go (the descriptor stays open for the next turn)."""
        fcntl.flock(self.descriptor(), fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's descriptor, which lets go of its lock."""
        if self._pid != os.getpid():
            self._drop_inherited()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _drop_inherited(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the parent's open file: closing this copy leaves its lock alone
        self._fd, self._pid = None, os.getpid()

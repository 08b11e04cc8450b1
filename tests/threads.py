"""Running test work in threads that must all finish, and finish without an unexpected error."""
from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(work: Callable[[int], None], count: int, timeout: float, what: str = "threads") -> None:
    """Run work(0) .. work(count - 1) each in a thread; fail if one hangs past timeout or raises."""
    failures: list[BaseException] = []

    def run(number: int) -> None:
        try:
            work(number)
        except BaseException as exc:  # noqa: BLE001 - reported by the calling thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), f"{what} did not finish: deadlock or livelock"
    assert not failures, failures[:3]

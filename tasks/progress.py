"""Progress of a render, reported to whoever listens (the terminal bar of `audiobook render`).

The flow calls `advance(n, total)`; a listener is any callable taking (done, total). Plain Python, so
the flow's progress reaches the CLI when both run in one process (the default).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Listener = Callable[[int, int, str], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def report(done: int, total: int, stage: str) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(done, total, stage)

"""What this process's engines have done: chunks spoken and engine seconds per engine and device.

A small per-process registry, written by `base.synthesize_many` (every engine call of a synthesis task
goes through it) and read where a worker describes itself (tasks.workers.worker_status: `audiobook
doctor --cluster`, /healthcheck) and where a render needs a measured figure (Tortoise's seconds per
chunk on a CPU, for the no-GPU message).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_done: dict[tuple[str, str], list[float]] = {}  # (engine, device) -> [chunks, seconds]


def record(engine: str, device: str, chunks: int, seconds: float) -> None:
    """Count `chunks` spoken by `engine` on `device` in `seconds` of engine time."""
    with _lock:
        entry = _done.setdefault((engine, device), [0, 0.0])
        entry[0] += chunks
        entry[1] += seconds


def done() -> list[dict[str, Any]]:
    """Per engine and device: chunks spoken and engine seconds, in this process so far."""
    with _lock:
        return [{"engine": e, "device": d, "chunks": int(n), "seconds": round(s, 3)}
                for (e, d), (n, s) in sorted(_done.items())]


def seconds_per_chunk(engine: str, device: str) -> float | None:
    """The measured engine seconds per chunk of `engine` on `device` here, or None before any chunk."""
    with _lock:
        chunks, seconds = _done.get((engine, device), (0, 0.0))
    return seconds / chunks if chunks else None


def reset() -> None:
    """Forget what was recorded (tests)."""
    with _lock:
        _done.clear()

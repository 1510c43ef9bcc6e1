"""A per-book lock, so two renders of one book never interleave their output files."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def book_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out_dir` (waits for another render of the same book to finish)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(out_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:  # a read-only or full output folder: the user can fix that
        from tasks.audio import output_error

        raise output_error(exc, out_dir) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

"""File locks between processes: one render of a book at a time, one writer of a shared record."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


@contextmanager
def _held(fd: int) -> Iterator[None]:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def file_lock(path: Path) -> AbstractContextManager[None]:
    """An exclusive lock on the file `path` (created if needed); entering waits for the holder."""
    return _held(os.open(path, os.O_CREAT | os.O_RDWR, 0o644))


def book_lock(out_dir: Path) -> AbstractContextManager[None]:
    """An exclusive lock on `out_dir` (waits for another render of the same book to finish)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return file_lock(out_dir / ".lock")
    except OSError as exc:  # a read-only or full output folder: the user can fix that
        from tasks.errors import output_error

        raise output_error(exc, out_dir) from exc

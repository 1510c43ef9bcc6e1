"""Write a finished file atomically: a temp file beside it, fsync, rename over the target, fsync the folder.

The project's one way to write a file that someone else reads (outputs, the report, captions, the
EPUB, cache entries, the service's library files):

    with atomic_path(target, suffix=".mp3") as tmp:   # an empty file ".NAME.tmp-XXXXXXXX.mp3" beside target
        run_ffmpeg(..., tmp)                           # any writer: ffmpeg, soundfile, zipfile, torch.save
    write_bytes(target, data)
    write_text(target, text)

A reader sees the old file or the new one, never a half one: the temp file lies in the target's own
folder (so the rename never crosses a file system), is flushed to disk before `os.replace`, and the
folder is flushed after it, so a power cut cannot leave an empty file under the final name. On any
exception inside the block, or while committing, the temp file is removed and the target is left as it
was. The temp file is created with the usual permissions (0666 less the umask), as a plain `open` would.

Temp names start with "." and hold TEMP_MARK, so listings skip them and a sweep can find the ones a
killed process left behind (`stale_temp_files`). `durable=False` skips the two fsyncs, for files that
are verified on every read anyway (the chunk cache checks size, time and checksum against its record).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TEMP_MARK", "atomic_path", "commit", "new_temp", "stale_temp_files", "write_bytes", "write_text"]

TEMP_MARK = ".tmp-"
_LEGACY_MARK = ".partial"  # temp names of earlier versions (".name.partial.ext", ".name.XXXX.partial")


def new_temp(target: Path, *, suffix: str = "") -> Path:
    """Create an empty, uniquely named temp file for `target` in its folder (made if missing): the path
    ".<name>.tmp-<8 hex><suffix>". `suffix` keeps an extension a writer reads the format from (ffmpeg)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.with_name(f".{target.name}{TEMP_MARK}{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def commit(tmp: Path, target: Path, *, durable: bool = True, overwrite: bool = True) -> None:
    """Move the finished temp file onto `target` (fsync'd first and its folder after, when `durable`).

    Without `overwrite` an existing target is refused with FileExistsError (a hard link, then the temp
    name is removed). The temp file is gone afterwards, whether this succeeded or raised."""
    tmp, target = Path(tmp), Path(target)
    try:
        if durable:
            _fsync_file(tmp)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # atomic, and refuses an existing file
            tmp.unlink()
        if durable:
            _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: Path, *, suffix: str = "", durable: bool = True, overwrite: bool = True) -> Iterator[Path]:
    """Yield a new temp file's path beside `target`; when the block ends without an exception, commit it
    onto `target` (see `commit`). On any exception the temp file is removed and `target` is untouched."""
    tmp = new_temp(target, suffix=suffix)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, target, durable=durable, overwrite=overwrite)


def write_bytes(target: Path, data: bytes, *, durable: bool = True, overwrite: bool = True) -> Path:
    """Write `data` to `target` atomically. Returns `target`."""
    target = Path(target)
    with atomic_path(target, durable=durable, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return target


def write_text(target: Path, text: str, *, encoding: str = "utf-8", durable: bool = True) -> Path:
    """Write `text` to `target` atomically (no newline translation). Returns `target`."""
    return write_bytes(target, text.encode(encoding), durable=durable)


def stale_temp_files(folder: Path) -> list[Path]:
    """Temp files in `folder` (not below it) that a killed writer left behind, this version's and earlier
    ones'. Only the caller knows that no writer is at work there now."""
    found = {*folder.glob(f".*{TEMP_MARK}*"), *folder.glob(f".*{_LEGACY_MARK}*")}
    return sorted(p for p in found if p.is_file())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Flush the folder's entry for the renamed file. A file system that cannot fsync a folder says so
    with EINVAL (or the like): the rename itself is still atomic there."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EROFS):
            raise
    finally:
        os.close(fd)

"""The project's one error hierarchy.

    AudiobookError                exit 1: an internal fault (a bug, or something we cannot explain)
     +-- UserError                exit 2: the user can fix it; names the file, the field and the fix
     |    +-- ManifestError       the manifest is malformed or invalid
     |    +-- SourceError         a source document is missing, unreadable or empty
     |    +-- VoiceError          an unknown voice or a bad reference clip
     |    +-- WeightsMissingError an engine's model weights are not on this machine
     |    +-- DependencyError     a binary or package we need is missing
     |    +-- OutputError         the output folder cannot be written (read-only, full disk)
     +-- EngineError              an engine failed on a chunk (not retried)
     |    +-- TransientEngineError  a fault worth retrying (out of memory, a lost device, a timeout)
     +-- RenderError              the render did not finish: names the chapter and sentence that failed

Only TransientEngineError is retried. Every UserError says what to do next. `output_error` maps an
OSError from writing (full disk, read-only, permission) to the error to raise.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class AudiobookError(Exception):
    """Base of all project errors."""

    exit_code = 1


class UserError(AudiobookError):
    """An error the user can fix. The message names the file, the field (where there is one) and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, file: object = None, field: str | None = None, fix: str | None = None):
        self.file = str(file) if file is not None else None
        self.field = field
        self.fix = fix
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.field:
                where += f": {self.field}"
            where += ": "
        elif self.field:
            where = f"{self.field}: "
        text = f"{where}{self.reason}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ManifestError(UserError):
    pass


class SourceError(UserError):
    pass


class VoiceError(UserError):
    pass


class WeightsMissingError(UserError):
    pass


class DependencyError(UserError):
    pass


class OutputError(UserError):
    pass


class EngineError(AudiobookError):
    """An engine failed on one chunk for a reason retrying will not fix."""


class TransientEngineError(EngineError):
    """A fault worth retrying: out of memory, a lost device, a timeout."""


class RenderError(AudiobookError):
    """A render did not finish. Other chunks stay cached; no final file is written."""


_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def output_error(exc: OSError, folder: Path) -> AudiobookError:
    """Turn an OSError from writing into `folder` into the error to raise.

    Full disk, read-only file system and permission errors become an OutputError (the user can fix
    them); anything else is an internal AudiobookError.
    """
    if exc.errno in _OUTPUT_ERRNOS:
        reason = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the folder is on a read-only file system",
        }.get(exc.errno, "permission denied")
        return OutputError(
            f"cannot write to the output folder: {reason} ({exc.strerror or exc})",
            file=folder,
            fix="free some space or choose a writable output folder",
        )
    return AudiobookError(f"writing into {folder} failed: {exc}")


def os_error_from_text(text: str) -> OSError:
    """Recover an OSError from a tool's error text (libsndfile, ffmpeg), for output_error()."""
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        if os.strerror(code).lower() in text.lower():
            return OSError(code, os.strerror(code))
    return OSError(text)

"""Reading source files safely: size limits, binary and encoding checks."""

from __future__ import annotations

from pathlib import Path

from tasks.errors import SourceError

MAX_TEXT_BYTES = 50 * 1024 * 1024  # 50 MiB of text is ~60 hours of audio: anything larger is a mistake
MAX_EPUB_BYTES = 300 * 1024 * 1024  # EPUBs carry images, so they get more room


def _check_file(path: Path, max_bytes: int) -> None:
    """Raise SourceError unless `path` is an existing regular file of at most max_bytes."""
    try:
        exists, is_file = path.exists(), path.is_file()
        size = path.stat().st_size if is_file else 0
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise SourceError(f"cannot be opened ({exc})", file=path, fix="check the source path in the manifest") from None
    if not exists:
        raise SourceError("source file not found", file=path, fix="check the source path in the manifest")
    if not is_file:
        raise SourceError("is not a file", file=path, fix="point the manifest at a .txt, .md, .epub, .html or .docx file")
    if size > max_bytes:
        raise SourceError(
            f"is too large ({size / 2**20:.0f} MiB; the limit is {max_bytes / 2**20:.0f} MiB)",
            file=path,
            fix="split the book into several source files",
        )


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or more than 10% control bytes in the first 8 KiB: not a text file."""
    if b"\x00" in data:
        return True
    sample = data[:8192]
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13) or b == 127)
    return len(sample) > 0 and controls > len(sample) // 10


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file (a UTF-8 byte-order mark is allowed) with "\\n" line ends.

    Raises SourceError when the file is missing, larger than MAX_TEXT_BYTES, binary, UTF-16,
    or not valid UTF-8 (naming the byte offset and line of the first bad byte).
    """
    _check_file(path, MAX_TEXT_BYTES)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"cannot be read ({exc.strerror or exc})", file=path, fix="check its permissions"
        ) from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("is UTF-16 text", file=path, fix="save it as UTF-8")
    if _looks_binary(data):
        raise SourceError(
            "looks like a binary file, not text",
            file=path,
            fix="export the book as plain text (UTF-8) or EPUB",
        )
    offset = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = offset + exc.start
        line = data[:bad].count(b"\n") + 1
        raise SourceError(
            f"is not valid UTF-8 (byte 0x{data[bad]:02x} at byte offset {bad}, line {line})",
            file=path,
            fix="save it as UTF-8 (most editors offer the encoding under Save As)",
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")

"""Reading source files safely: size limits, binary and encoding checks."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
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


_PG_CHARSET_RE = re.compile(rb"^[ \t]*Character set encoding:[ \t]*([A-Za-z0-9_.:-]{1,40})", re.I | re.M)
_LATIN1 = frozenset({"latin_1", "iso8859-1"})


@dataclass(frozen=True)
class Decoded:
    """A source file's text ("\\n" line ends, no byte-order mark) and how it was decoded."""

    text: str
    encoding: str  # e.g. "utf-8", "iso-8859-1 (declared)", "windows-1252 (detected)"
    warning: str | None = None  # a guessed encoding, for the run report


def codec(name: str) -> str | None:
    """Python's codec name for an encoding label ("ISO-8859-1" -> "latin_1"), or None if unknown."""
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def decode_declared(data: bytes, label: str) -> tuple[str, str] | None:
    """`data` decoded as its declared encoding `label`: (text, encoding name), or None when the
    label is unknown or the bytes are not in it. ISO-8859-1 with bytes in 0x80-0x9F is read as
    Windows-1252, as browsers do (those bytes are curly quotes and dashes, not control codes)."""
    name = codec(label)
    if name is None:
        return None
    described = f"{label.lower()} (declared)"
    if name in _LATIN1 and re.search(rb"[\x80-\x9f]", data):
        name, described = "cp1252", f"windows-1252 (declared {label.lower()})"
    try:
        return data.decode(name), described
    except UnicodeDecodeError:
        return None


_WESTERN = ("cp1252", "latin_1", "iso8859_15")  # ties go to these: the books this reads are mostly English


def detect(data: bytes) -> str | None:
    """charset-normalizer's best guess at the encoding of bytes that are not UTF-8, or None. Among
    guesses that fit as well as the best (a short text fits many code pages), Windows-1252 wins."""
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(data[: 1 << 20]) if m.encoding not in ("utf_8", "utf_16", "utf_32")]
    if not matches or min(m.chaos for m in matches) > 0.3:
        return None
    best = min(matches, key=lambda m: (round(m.chaos, 2), -m.coherence))
    tied = [m.encoding for m in matches
            if round(m.chaos, 2) == round(best.chaos, 2) and m.coherence >= best.coherence - 0.2]
    return next((e for e in _WESTERN if e in tied), str(best.encoding))


def decode_text(data: bytes, path: Path) -> Decoded:
    """Bytes of a text source -> Decoded: a UTF-8 byte-order mark is dropped; an encoding the file
    declares (a Project Gutenberg header's "Character set encoding:" line) wins; then UTF-8; then
    charset-normalizer's guess, with a warning. Raises SourceError when nothing fits."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("is UTF-16 text", file=path, fix="save it as UTF-8")
    if _looks_binary(data):
        raise SourceError(
            "looks like a binary file, not text",
            file=path,
            fix="export the book as plain text (UTF-8) or EPUB",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data, bom = data[3:], True
    else:
        bom = False
    declared = _PG_CHARSET_RE.search(data[:16384])
    result = decode_declared(data, declared.group(1).decode("ascii")) if declared else None
    warning = None
    if result is None:
        try:
            result = data.decode("utf-8"), "utf-8" + (" (with byte-order mark)" if bom else "")
        except UnicodeDecodeError as exc:
            guess = None if bom else detect(data)
            if guess is None:
                bad = exc.start + (3 if bom else 0)
                line = data[: exc.start].count(b"\n") + 1
                raise SourceError(
                    f"is not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte offset {bad}, line {line}) and its "
                    "encoding could not be told",
                    file=path,
                    fix="save it as UTF-8 (most editors offer the encoding under Save As)",
                ) from exc
            name = codecs.lookup(guess).name
            label = {"cp1252": "windows-1252", "latin_1": "iso-8859-1"}.get(name, name)
            result = data.decode(guess), f"{label} (detected)"
            warning = (f"{path}: not UTF-8 and no encoding declared; read as {label}, which fits its bytes best "
                       "(save it as UTF-8 to be sure)")
    text, encoding = result
    return Decoded(text.replace("\r\n", "\n").replace("\r", "\n"), encoding, warning)


def read_text(path: Path) -> Decoded:
    """Read a text source (see decode_text). Raises SourceError when the file is missing, larger
    than MAX_TEXT_BYTES, binary, UTF-16, or in no encoding that fits."""
    _check_file(path, MAX_TEXT_BYTES)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"cannot be read ({exc.strerror or exc})", file=path, fix="check its permissions"
        ) from exc
    return decode_text(data, path)


def read_text_file(path: Path) -> str:
    """The text of a source file ("\\n" line ends), decoded as read_text decodes it."""
    return read_text(path).text

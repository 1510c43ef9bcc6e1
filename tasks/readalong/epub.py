"""An EPUB 3 with Media Overlays: the spoken text, one sentence per `<span id="sN">`, synchronised to
the chapters' audio by one SMIL document per chapter (a `<par>` per sentence). Readers that support
Media Overlays (Apple Books, Thorium, ...) highlight each sentence as it is read.

    build_epub(book, out) -> out     (zip written to a temp file, renamed when complete)

The documents come from Jinja2 templates in tasks/data/readalong (autoescaped); the zip holds
`mimetype` first and stored, as OCF requires. The audio is a 64 kbps mono MP3 per chapter encoded
from the chapter WAV: speech needs no more, and it keeps the book a tenth of the size of the 192 kbps
chapter MP3s.
"""

from __future__ import annotations

import datetime
import functools
import subprocess
import tempfile
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tasks.atomic import atomic_path
from tasks.captions import TimedSentence, readable_by_all
from tasks.errors import AudiobookError

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "readalong"
ACTIVE_CLASS = "-epub-media-overlay-active"
AUDIO_BITRATE = "64k"
PACKAGE_PATH = "OEBPS/package.opf"


@dataclass(frozen=True)
class EpubChapter:
    title: str
    wav: Path  # the chapter's audio, encoded into the book
    sentences: tuple[TimedSentence, ...]
    kind: str = "chapter"


@dataclass(frozen=True)
class EpubBook:
    title: str
    author: str
    language: str
    identifier: str  # a stable seed for the book's urn:uuid
    chapters: tuple[EpubChapter, ...]
    narrator: str | None = None
    description: str | None = None
    cover: Path | None = None  # JPEG or PNG


def smil_clock(ms: int) -> str:
    """A SMIL full clock value, H:MM:SS.mmm, from whole milliseconds."""
    h, rest = divmod(max(0, ms), 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}"


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _render(name: str, **values: object) -> bytes:
    return _templates().get_template(name).render(**values).encode("utf-8")


def _paragraphs(sentences: Sequence[TimedSentence]) -> list[list[TimedSentence]]:
    paragraphs: list[list[TimedSentence]] = [[]]
    for s in sentences:
        paragraphs[-1].append(s)
        if s.paragraph_end:
            paragraphs.append([])
    return [p for p in paragraphs if p]


@dataclass(frozen=True)
class Clip:
    """A sentence's audio clip in whole ms; it never ends before it begins."""

    id: str
    begin_ms: int
    end_ms: int

    @property
    def begin(self) -> str:
        return smil_clock(self.begin_ms)

    @property
    def end(self) -> str:
        return smil_clock(self.end_ms)


def _clips(sentences: Sequence[TimedSentence]) -> list[Clip]:
    clips = []
    for s in sentences:
        begin = round(s.start_s * 1000)
        clips.append(Clip(s.id, begin, max(begin, round(s.end_s * 1000))))
    return clips


def encode_speech_mp3(wav: Path, out: Path) -> Path:
    """The chapter WAV as a small mono MP3 for the EPUB (no tags: the package holds the metadata)."""
    from tasks.encode import ffmpeg_exe

    args = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(wav), "-map", "0:a:0", "-map_metadata", "-1",
            "-ac", "1", "-c:a", "libmp3lame", "-b:a", AUDIO_BITRATE, "-write_xing", "1", "-id3v2_version", "0",
            "-f", "mp3", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AudiobookError(f"ffmpeg could not encode {wav.name} for the read-along EPUB: "
                             f"{done.stderr.strip()[-500:] or done.returncode}")
    return out


def build_epub(book: EpubBook, out: Path) -> Path:
    """Write the read-along EPUB to `out` (temp file + rename). Returns out."""
    chapters: list[dict[str, Any]] = []
    total_ms = 0
    for i, ch in enumerate(book.chapters, start=1):
        clips = _clips(ch.sentences)
        ms = sum(c.end_ms - c.begin_ms for c in clips)  # the overlay's duration: its clips played in turn
        total_ms += ms
        chapters.append({
            "title": ch.title, "text_id": f"ch{i:03d}", "smil_id": f"ch{i:03d}-overlay", "audio_id": f"ch{i:03d}-audio",
            "xhtml": f"ch{i:03d}.xhtml", "smil": f"ch{i:03d}.smil", "audio": f"audio/ch{i:03d}.mp3",
            "epub_type": "chapter", "paragraphs": _paragraphs(ch.sentences), "clips": clips,
            "duration": smil_clock(ms), "wav": ch.wav,
        })
    cover = None
    if book.cover is not None:
        suffix = book.cover.suffix.lower()
        cover = {"href": f"cover{'.png' if suffix == '.png' else '.jpg'}",
                 "media_type": "image/png" if suffix == ".png" else "image/jpeg"}
    values = {
        "title": book.title, "author": book.author, "language": book.language, "narrator": book.narrator,
        "description": book.description, "uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"audiobook:{book.identifier}"),
        "modified": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "active_class": ACTIVE_CLASS, "chapters": chapters, "cover": cover,
        "duration": smil_clock(total_ms),
        "package_path": PACKAGE_PATH,
    }
    with atomic_path(out) as tmp:
        with tempfile.TemporaryDirectory(prefix="epub-audio-") as work, \
                zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            # OCF: "mimetype" first, stored, no extra field.
            zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
            zf.writestr("META-INF/container.xml", _render("container.xml.j2", **values))
            zf.writestr(PACKAGE_PATH, _render("package.opf.j2", **values))
            zf.writestr("OEBPS/nav.xhtml", _render("nav.xhtml.j2", **values))
            zf.write(TEMPLATES / "style.css", "OEBPS/style.css")
            if book.cover is not None and cover is not None:
                zf.write(book.cover, f"OEBPS/{cover['href']}", compress_type=zipfile.ZIP_STORED)
            for doc in chapters:
                zf.writestr(f"OEBPS/{doc['xhtml']}", _render("chapter.xhtml.j2", chapter=doc, **values))
                if not doc["clips"]:  # nothing timed (no text was kept): the text alone, no overlay
                    continue
                zf.writestr(f"OEBPS/{doc['smil']}", _render("chapter.smil.j2", chapter=doc, **values))
                mp3 = encode_speech_mp3(doc["wav"], Path(work) / "chapter.mp3")
                zf.write(mp3, f"OEBPS/{doc['audio']}", compress_type=zipfile.ZIP_STORED)  # MP3 does not deflate
        readable_by_all(tmp)
    return out

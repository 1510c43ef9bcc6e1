"""The one value every reader returns: a Document of chapters, plus what was skipped and why.

Readers (one module per format) take a path and ReadOptions and return a Document; nothing
downstream knows which format a book came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tasks.errors import SourceError

OPENING = "Opening"  # the title of text that comes before a document's first heading

# Publisher matter a reader recognises and skips unless ReadOptions.keep names it.
MatterKind = Literal["titlepage", "imprint", "colophon", "copyright", "toc", "halftitle", "license", "header"]
NotesMode = Literal["skip", "end"]  # footnotes/endnotes: not read, or read at the end of their chapter


@dataclass(frozen=True)
class ReadOptions:
    """How a reader treats the parts of a document that are not plain narrative.

    keep: publisher matter to read anyway ("imprint", "colophon", ...); author-written front matter
    (preface, dedication, epigraph) is always read. notes: footnotes and endnotes. image_alt: read an
    image's alt text (else images are silent). part_titles: how a chapter inside a part is titled,
    with {part} and {chapter} (e.g. "{part}: {chapter}"; "{chapter}" drops the part).
    """

    keep: frozenset[str] = frozenset()
    notes: NotesMode = "skip"
    image_alt: bool = False
    part_titles: str = "{part}: {chapter}"


@dataclass(frozen=True)
class ChapterText:
    """One chapter: its title and its paragraphs (non-empty, markup-free, not yet normalised)."""

    title: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Skipped:
    """A part of the source that is not read aloud: what it was, why, and how many words it held."""

    what: str  # e.g. "Project Gutenberg licence", "Contents list", "imprint.xhtml (imprint)"
    reason: str  # e.g. "publisher boilerplate; add 'imprint' to reading.keep to read it"
    words: int = 0
    chapter: str | None = None  # the chapter it sat in, when it sat inside one (a table, a code block)
    text: str = ""  # the words themselves, so a check can account for every word of the source
    kind: str = ""  # the short reason for the word ledger: "licence", "contents", "page number", ...


def skip(kind: str, text: str, *, what: str = "", reason: str = "", chapter: str | None = None) -> Skipped:
    """A Skipped of `text` (its word count counted), for the ledger under `kind`."""
    text = " ".join(text.split())
    return Skipped(what=what or kind, reason=reason or kind, words=len(text.split()), chapter=chapter, text=text,
                   kind=kind)


@dataclass(frozen=True)
class Metadata:
    """What the document says about itself (EPUB OPF, DOCX core properties, Markdown front matter)."""

    title: str | None = None
    authors: tuple[str, ...] = ()
    language: str | None = None
    description: str | None = None
    cover: bytes | None = None  # the cover image as stored (JPEG, PNG, or SVG bytes)
    cover_media_type: str | None = None


@dataclass(frozen=True)
class Document:
    """A whole source document: chapters in reading order, warnings for the run report, what was
    skipped (for `audiobook check`) and the document's own metadata."""

    chapters: tuple[ChapterText, ...]
    warnings: tuple[str, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    metadata: Metadata = field(default_factory=Metadata)
    encoding: str | None = None  # the encoding the source was decoded with (None: a zip of XML parts)


def finish_document(
    path: Path, found: list[tuple[str, list[str]]], extra: list[str], *,
    skipped: tuple[Skipped, ...] = (), metadata: Metadata | None = None, encoding: str | None = None,
) -> Document:
    """Drop chapters without text (with a warning each, their heading in the ledger); raise if
    nothing is left."""
    chapters: list[ChapterText] = []
    notes = list(extra)
    empty: list[Skipped] = []
    for title, paragraphs in found:
        kept = tuple(p for p in (" ".join(p.split()) for p in paragraphs) if p)
        if kept:
            chapters.append(ChapterText(title=title, paragraphs=kept))
        else:
            notes.append(f"{path}: chapter {title!r} has no text; it was left out")
            empty.append(skip("empty heading", title, what=f"heading {title!r}", reason="a heading with no text under it"))
    if not chapters:
        raise SourceError(
            "has no text to read",
            file=path,
            fix="check that the manifest points at the right file and that the file has text",
        )
    return Document(
        chapters=tuple(chapters), warnings=tuple(notes), skipped=tuple(skipped) + tuple(empty),
        metadata=metadata or Metadata(), encoding=encoding,
    )

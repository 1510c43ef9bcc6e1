"""Source documents -> chapters of paragraphs: one reader module per format.

    read_document(path, title_hint=None, options=ReadOptions()) -> Document
    read_text_file(path)                                        -> str (UTF-8 text, checked)
    paragraphs_from_text(text)                                  -> tuple of paragraphs

Modules: `model` (Document, ChapterText, Skipped, Metadata, ReadOptions), `files` (safe reading),
`plain` (.txt), `markdown` (.md), `epub` (.epub). Paragraphs come out markup-free but not yet
normalised (tasks.text does that). Every problem the user can fix is a SourceError naming the file
and the fix. Chapters without text are dropped with a warning; every other chapter keeps its title.
"""

from __future__ import annotations

from pathlib import Path

from tasks.documents.files import MAX_EPUB_BYTES, MAX_TEXT_BYTES, read_text_file
from tasks.documents.model import ChapterText, Document, Metadata, ReadOptions, Skipped
from tasks.documents.plain import paragraphs_from_text
from tasks.errors import SourceError

__all__ = [
    "MAX_EPUB_BYTES",
    "MAX_TEXT_BYTES",
    "SUFFIXES",
    "ChapterText",
    "Document",
    "Metadata",
    "ReadOptions",
    "Skipped",
    "paragraphs_from_text",
    "read_document",
    "read_text_file",
]

SUFFIXES = (".txt", ".md", ".markdown", ".epub")


def read_document(path: Path, *, title_hint: str | None = None, options: ReadOptions | None = None) -> Document:
    """Read a source document into chapters, choosing the reader by its suffix.

    `title_hint` (usually the book title from the manifest) names the chapter of text before the
    first heading, or the single chapter of a document without headings; else "Opening" / the
    file stem. Raises SourceError for an unknown suffix, an unreadable file, or no text at all.
    """
    from tasks.documents import epub, markdown, plain

    path = Path(path)
    options = options or ReadOptions()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SourceError(
            f"has an unsupported file type {suffix or '(no suffix)'!r}",
            file=path,
            fix=f"use one of {', '.join(SUFFIXES)} (convert PDF files to EPUB or text first)",
        )
    found: list[tuple[str, list[str]]]
    extra: list[str] = []
    if suffix == ".txt":
        found = plain._chapters_from_plain(read_text_file(path), title_hint or path.stem, title_hint)
    elif suffix in (".md", ".markdown"):
        found = markdown._chapters_from_markdown(read_text_file(path), title_hint or path.stem, title_hint)
    else:
        found, extra = epub._chapters_from_epub(path, title_hint)
    return finish_document(path, found, extra)


def finish_document(
    path: Path, found: list[tuple[str, list[str]]], extra: list[str], *,
    skipped: tuple[Skipped, ...] = (), metadata: Metadata | None = None,
) -> Document:
    """Drop chapters without text (with a warning each); raise if nothing is left."""
    chapters: list[ChapterText] = []
    notes = list(extra)
    for title, paragraphs in found:
        kept = tuple(p for p in (" ".join(p.split()) for p in paragraphs) if p)
        if kept:
            chapters.append(ChapterText(title=title, paragraphs=kept))
        else:
            notes.append(f"{path}: chapter {title!r} has no text; it was left out")
    if not chapters:
        raise SourceError(
            "has no text to read",
            file=path,
            fix="check that the manifest points at the right file and that the file has text",
        )
    return Document(chapters=tuple(chapters), warnings=tuple(notes), skipped=skipped, metadata=metadata or Metadata())

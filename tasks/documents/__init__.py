"""Source documents -> chapters of paragraphs: one reader module per format.

    read_document(path, title_hint=None, options=ReadOptions()) -> Document
    read_text_file(path)                                        -> str (UTF-8 text, checked)
    paragraphs_from_text(text)                                  -> tuple of paragraphs

Modules: `model` (Document, ChapterText, Skipped, Metadata, ReadOptions), `files` (safe reading),
`plain` (.txt), `markdown` (.md), `epub` (.epub; its package in `epub_package`), `html_reader`
(.html/.htm/.xhtml), `docx_reader` (.docx). EPUB and HTML content share `xhtml` (content -> blocks)
and `assemble` (blocks + table of contents -> chapters); `xmlsafe` parses XML, zips and (X)HTML pages
(their encoding too) safely. Paragraphs come out markup-free but not yet normalised (tasks.text does that). Every problem the user can fix is a SourceError naming the file
and the fix. Chapters without text are dropped with a warning; every other chapter keeps its title.
"""

from __future__ import annotations

from pathlib import Path

from tasks.documents.files import MAX_EPUB_BYTES, MAX_TEXT_BYTES, read_text_file
from tasks.documents.model import ChapterText, Document, Metadata, ReadOptions, Skipped, finish_document
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
    "finish_document",
    "paragraphs_from_text",
    "read_document",
    "read_text_file",
]

# Suffix -> reader module (tasks.documents.<name>); each module has
#     read(path, *, title_hint, options) -> Document
READERS = {
    ".txt": "plain",
    ".md": "markdown",
    ".markdown": "markdown",
    ".epub": "epub",
    ".html": "html_reader",
    ".htm": "html_reader",
    ".xhtml": "html_reader",
    ".docx": "docx_reader",
}
SUFFIXES = tuple(READERS)


def read_document(path: Path, *, title_hint: str | None = None, options: ReadOptions | None = None) -> Document:
    """Read a source document into chapters, choosing the reader by its suffix.

    `title_hint` (usually the book title from the manifest) names the chapter of text before the
    first heading, or the single chapter of a document without headings; else "Opening" / the
    file stem. Raises SourceError for an unknown suffix, an unreadable file, or no text at all.
    """
    import importlib

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise SourceError(
            f"has an unsupported file type {suffix or '(no suffix)'!r}",
            file=path,
            fix=f"use one of {', '.join(SUFFIXES)} (convert PDF files to EPUB or text first)",
        )
    reader = importlib.import_module(f"tasks.documents.{READERS[suffix]}")
    document: Document = reader.read(path, title_hint=title_hint, options=options or ReadOptions())
    return document


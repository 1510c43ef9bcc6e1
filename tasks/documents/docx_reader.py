"""Word documents (.docx) -> chapters, read with python-docx.

The common manuscript layout: a paragraph in the Title style is the book title (not a chapter),
Heading 1 and Heading 2 paragraphs start chapters (a Heading 1 with no text of its own before its
Heading 2s is a part, and prefixes their titles; one with text keeps its Heading 2s as spoken
sub-headings), lower headings are read as text. Page breaks, footnotes, comments, headers and
footers of pages, tables of contents (the TOC styles) and tables are not read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tasks.documents.assemble import assemble, heading_nodes
from tasks.documents.files import MAX_EPUB_BYTES, _check_file
from tasks.documents.model import Document, Metadata, ReadOptions, Skipped, finish_document, skip
from tasks.documents.xhtml import Block, clean_title
from tasks.documents.xmlsafe import declares_entities, open_zip, read_member
from tasks.errors import SourceError

FIX = "save it again from Word or LibreOffice as .docx (Word Document), or export it as .txt or .md"
_YEAR = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)\b")
_HEADING = re.compile(r"^heading\s*([1-9])$", re.I)


def _style_kind(style: object) -> tuple[str, int]:
    """("title" | "subtitle" | "heading" | "toc" | "", level) from a paragraph style and the styles
    it is based on ("Chapter Title" based on "Heading 1" is a heading)."""
    seen = 0
    while style is not None and seen < 10:
        name = str(getattr(style, "name", "") or "").strip()
        lowered = name.lower()
        if lowered == "title":
            return "title", 0
        if lowered == "subtitle":
            return "subtitle", 0
        if lowered.startswith("toc"):
            return "toc", 0
        m = _HEADING.match(name)
        if m:
            return "heading", int(m.group(1))
        style = getattr(style, "base_style", None)
        seen += 1
    return "", 0


def _unique(cells: list[Any]) -> list[Any]:
    """A row's cells with merged cells (python-docx repeats them) counted once."""
    seen: list[Any] = []
    for cell in cells:
        if not any(getattr(cell, "_tc", None) is getattr(c, "_tc", 0) for c in seen):
            seen.append(cell)
    return seen


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """A .docx file -> Document."""
    _check_file(path, MAX_EPUB_BYTES)
    try:
        with open_zip(path, kind="a Word document", fix=FIX) as archive:
            names = set(archive.namelist())
            if "word/document.xml" not in names:
                raise SourceError("is not a Word document (word/document.xml is missing)", file=path, fix=FIX)
            for name in names:
                if name.endswith((".xml", ".rels")) and declares_entities(read_member(archive, name)):
                    raise SourceError(
                        f"has {name} declaring XML entities (<!ENTITY>), which Word never writes; refused for safety",
                        file=path,
                        fix=FIX,
                    )
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(str(path))
        core = document.core_properties
        blocks: list[Block] = []
        skipped: list[Skipped] = []
        title_lines: list[str] = []
        for child in document.element.body.iterchildren():
            tag = str(child.tag).rpartition("}")[2]
            if tag == "tbl":
                cells = " ".join(c.text for row in Table(child, document).rows for c in _unique(row.cells))
                if cells.split():  # not read, but placed, so the ledger knows its chapter
                    blocks.append(Block(" ".join(cells.split()), matter="table", token="a table"))
                continue
            if tag != "p":
                continue
            paragraph = Paragraph(child, document)
            text = " ".join(paragraph.text.split())
            if not text:
                continue
            kind, level = _style_kind(paragraph.style)
            if kind in ("title", "subtitle"):
                if kind == "title":
                    title_lines.append(text)
                skipped.append(skip("title page", text, what="title page",
                                    reason="the title is announced from the manifest"))
                continue
            block = Block(text, source=path.name)
            if title_lines and not blocks and len(text.split()) <= 12 and _YEAR.search(text):
                block.matter, block.token = "titlepage", "title page"  # "March 2011 / Revision 1, May 2011"
            if kind == "toc":
                block.matter, block.token = "toc", "table of contents"
            elif kind == "heading":
                block.heading = level if level <= 2 else 7  # Heading 3 and lower: titles only at a chapter's top
            blocks.append(block)
        metadata = Metadata(
            title=(core.title or "").strip() or (" ".join(title_lines) or None),
            authors=tuple(a.strip() for a in re.split(r"[;\n]", core.author or "") if a.strip()),
            language=(core.language or "").strip() or None,
            description=(core.subject or core.comments or "").strip() or None,
        )
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - python-docx and lxml fail on damaged files in many ways
        raise SourceError(
            f"is not a readable Word document ({type(exc).__name__}: {exc})", file=path, fix=FIX
        ) from exc
    roots = heading_nodes(blocks, doc=path.name, depth=2, skip_title=False)
    found, more = assemble(
        blocks,
        roots,
        options=options,
        book_title=metadata.title,
        pre_title=title_hint or (clean_title(metadata.title) if metadata.title else path.stem),
    )
    return finish_document(path, found, [], skipped=tuple(skipped) + more, metadata=metadata)

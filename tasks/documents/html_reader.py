"""HTML and XHTML (.html, .htm, .xhtml) -> chapters: a saved web page, or one chapter of a book.

The same rules as EPUB content (tasks.documents.xhtml): publisher matter and notes by their
semantics, note references and backlinks never read, headings are titles. A web page's navigation,
header, footer and asides, its scripts and styles are not read; when the page has one <main>, only
that is. Chapters come from its headings (the h1 lines that open the page are its title), nested
by level the way an EPUB's table of contents is.
"""

from __future__ import annotations

import re
from pathlib import Path

from tasks.documents.assemble import assemble, heading_nodes
from tasks.documents.files import MAX_TEXT_BYTES, _check_file
from tasks.documents.model import Document, Metadata, ReadOptions, finish_document
from tasks.documents.xhtml import Block, clean_title, walk
from tasks.documents.xmlsafe import page_encoding, parse_document
from tasks.errors import SourceError

_PG_TITLE = re.compile(r"^The Project Gutenberg e?Book of (.+?),? by (.+)$", re.I)


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """An .html / .htm / .xhtml file -> Document."""
    _check_file(path, MAX_TEXT_BYTES)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror or exc})", file=path, fix="check its permissions") from exc
    encoding, encoding_label = page_encoding(data)
    if b"\x00" in data[:8192] and not encoding.startswith("utf-16"):
        raise SourceError("looks like a binary file, not HTML", file=path, fix="save the page as HTML (UTF-8)")
    xml_first = path.suffix.lower() == ".xhtml" or data.lstrip().startswith(b"<?xml")
    try:
        root = parse_document(data, xml_first=xml_first, encoding=encoding)
    except Exception as exc:  # noqa: BLE001 - lxml fails on hopeless input in several ways
        raise SourceError(
            f"is not readable HTML ({type(exc).__name__}: {exc})", file=path, fix="save the page again as HTML"
        ) from exc
    page = walk(root, source=path.name, web_page=True, image_alt=options.image_alt)

    title, authors = page.title or None, tuple(a for a in [page.meta.get("author", "")] if a)
    m = _PG_TITLE.match(page.title)
    if m:
        title, authors = m.group(1), authors or (m.group(2).rstrip("."),)
    h1 = next((b.text for b in page.blocks if b.heading == 1 and b.matter is None), None)
    if h1 and (not title or (not m and h1.casefold() in title.casefold())):
        title = h1  # "How to Keep Bees | The Garden Blog" -> the page's own heading
    metadata = Metadata(
        title=clean_title(title) if title else None,
        authors=authors,
        language=page.language,
        description=page.meta.get("description") or None,
    )
    _mark_title_page(page.blocks, metadata.title)
    roots = heading_nodes(page.blocks, doc=path.name)
    found, skipped = assemble(
        page.blocks,
        roots,
        options=options,
        book_title=metadata.title,
        pre_title=title_hint or metadata.title or path.stem,
        note_text=lambda block, href: _note_text(page.blocks, page.spans, href),
    )
    return finish_document(path, found, [], skipped=skipped, metadata=metadata, encoding=encoding_label)


_BY_WORD = re.compile(r"(?:^|\s)(?:by|BY)(?:\s|$)")
_IMPRINT = re.compile(r"^(?:copyright|published|printed|all rights reserved|first published)\b", re.I)
_YEAR = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)\b")


def _mark_title_page(blocks: list[Block], title: str | None) -> None:
    """The book's title as a heading is a title page (the first time) or a half-title (again): not
    read. After the first, up to the next heading, the credit lines ("... BY JULIAN STREET"), the
    publisher, place and year, and copyright lines are the title page too; a dedication is read."""
    if not title:
        return
    book = clean_title(title).casefold()
    first = True
    for i, block in enumerate(blocks):
        if block.matter is not None or block.heading != 1 or clean_title(block.text).casefold() != book:
            continue
        block.matter, block.token = ("titlepage", "title page") if first else ("halftitle", "half-title")
        if first:
            for after in blocks[i + 1 : i + 16]:
                if after.heading and not (after.words <= 12 and re.match(r"^by\s", after.text, re.I)):
                    break
                caps = not any(c.islower() for c in after.text)
                if after.matter is None and after.words <= 30 and (
                    _BY_WORD.search(after.text) or _IMPRINT.match(after.text) or (caps and _YEAR.search(after.text))
                ):
                    after.matter, after.token = "titlepage", "title page"
        first = False


def _note_text(blocks: list[Block], spans: dict[str, tuple[int, int]], href: str) -> list[str]:
    """A note in the same page (href "#fn1")."""
    fragment = href.partition("#")[2]
    span = spans.get(fragment) if fragment and not href.split("#")[0] else None
    if span is None:
        return []
    return [b.text for b in blocks[span[0] : max(span[1], span[0] + 1)]]

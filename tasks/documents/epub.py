"""EPUB -> chapters of paragraphs, from its navigation and spine."""

from __future__ import annotations

import posixpath
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote

from tasks.documents.files import MAX_EPUB_BYTES, _check_file
from tasks.documents.model import OPENING as _OPENING
from tasks.documents.model import Document, ReadOptions, finish_document
from tasks.errors import SourceError

_BLOCK_TAGS = frozenset(
    "p div h1 h2 h3 h4 h5 h6 li ul ol dl dt dd blockquote section article aside header footer "
    "figure figcaption pre table tr td th caption nav main address hr body".split()
)
_SKIP_TAGS = frozenset("script style head title svg math template noscript iframe object".split())
_SKIP_EPUB_TYPES = ("noteref", "pagebreak")


def _html_parser() -> str:
    try:
        import lxml  # noqa: F401
    except ImportError:
        return "html.parser"
    return "lxml"


def _flatten_toc(toc: Iterable[object]) -> Iterator[tuple[str, str]]:
    """ebooklib's nested toc (Link, or (Section, children)) -> (title, href) in reading order."""
    for entry in toc:
        if isinstance(entry, tuple | list):
            if not entry:
                continue
            head, children = entry[0], entry[1] if len(entry) > 1 else []
            href = getattr(head, "href", None)
            if href:
                yield " ".join(str(getattr(head, "title", "") or "").split()), str(href)
            yield from _flatten_toc(children)
        else:
            href = getattr(entry, "href", None)
            if href:
                yield " ".join(str(getattr(entry, "title", "") or "").split()), str(href)


def _split_href(href: str) -> tuple[str, str]:
    path, _, fragment = unquote(href).partition("#")
    return posixpath.normpath(path) if path else "", fragment


class _Chapters:
    """Collects paragraphs into chapters as an EPUB is walked in reading order."""

    def __init__(self) -> None:
        self.found: list[tuple[str, list[str]]] = []
        self.inline: list[str] = []

    def start(self, title: str) -> None:
        self.flush()
        self.found.append((title, []))

    def flush(self) -> None:
        text = " ".join("".join(self.inline).split())
        self.inline.clear()
        if text:
            if not self.found:
                self.found.append(("", []))  # text before any toc entry; titled later
            self.found[-1][1].append(text)


def _walk(node: object, anchors: dict[str, str], out: _Chapters) -> None:
    """Depth-first over a BeautifulSoup node: block elements end paragraphs; an element whose id a
    toc entry points at starts that entry's chapter."""
    from bs4 import Comment, NavigableString, Tag
    from bs4.element import Declaration, Doctype, ProcessingInstruction

    for child in getattr(node, "children", ()):
        if isinstance(child, Comment | Doctype | Declaration | ProcessingInstruction):
            continue
        if isinstance(child, NavigableString):
            out.inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = (child.name or "").lower().rpartition(":")[2]
        if name in _SKIP_TAGS:
            continue
        epub_type = str(child.get("epub:type") or "")
        if any(t in epub_type for t in _SKIP_EPUB_TYPES):
            continue
        ident = child.get("id")
        if isinstance(ident, str) and ident in anchors:
            out.start(anchors.pop(ident))
        if name == "br":
            out.inline.append(" ")
            continue
        block = name in _BLOCK_TAGS
        if block:
            out.flush()
        _walk(child, anchors, out)
        if block:
            out.flush()
        elif name in ("td", "th"):
            out.inline.append(" ")


def _chapters_from_epub(path: Path, title_hint: str | None) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Chapters from the EPUB's navigation (EPUB3 nav, else NCX), flattened, mapped onto the spine.

    Spine documents not in the navigation join the chapter before them (text before the first
    navigation entry is a chapter titled title_hint or "Opening"). Without navigation each spine
    document is a chapter titled by its first heading. Non-linear spine items are skipped.
    """
    _check_file(path, MAX_EPUB_BYTES)
    fix = "re-export the book as EPUB (e.g. with Calibre), or convert it to .txt or .md"
    if not zipfile.is_zipfile(path):
        raise SourceError("is not an EPUB (it is not a zip archive)", file=path, fix=fix)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ebooklib and bs4 warn (UserWarning, FutureWarning, XML-as-HTML)
            return _read_epub(path, title_hint)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, lxml or ebooklib in many ways
        raise SourceError(
            f"is not a readable EPUB ({type(exc).__name__}: {exc})", file=path, fix=fix
        ) from exc


def _read_epub(path: Path, title_hint: str | None) -> tuple[list[tuple[str, list[str]]], list[str]]:
    import ebooklib
    from bs4 import BeautifulSoup
    from ebooklib import epub

    book = epub.read_epub(str(path), options={"ignore_ncx": True})
    notes: list[str] = []
    spine: list[tuple[str, object]] = []  # (normalised name, item) of linear documents, in reading order
    for entry in book.spine:
        idref, linear = (
            (entry, "yes") if isinstance(entry, str) else (entry[0], entry[1] if len(entry) > 1 else "yes")
        )
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        if str(linear).lower() == "no":
            continue
        spine.append((posixpath.normpath(unquote(item.get_name())), item))
    names = {name for name, _ in spine}
    by_base: dict[str, str] = {}
    for name in names:
        by_base.setdefault(posixpath.basename(name), name)

    # toc entries per spine document: fragment ("" = the whole document) -> title, in toc order
    targets: dict[str, dict[str, str]] = {}
    for title, href in _flatten_toc(book.toc):
        doc, fragment = _split_href(href)
        doc = doc if doc in names else by_base.get(posixpath.basename(doc), "")
        if not doc:
            continue
        entries = targets.setdefault(doc, {})
        if fragment in entries:  # "Part One" and its "Chapter 1" both open the same page
            entries[fragment] = f"{entries[fragment]}: {title}" if title else entries[fragment]
        else:
            entries[fragment] = title

    out = _Chapters()
    parser = _html_parser()
    for n, (name, item) in enumerate(spine, start=1):
        soup = BeautifulSoup(item.get_content(), parser)  # type: ignore[attr-defined]
        body = soup.body or soup
        entries = targets.get(name, {})
        if not targets:  # no navigation: one chapter per document, titled by its first heading
            heading = body.find(["h1", "h2", "h3", "h4", "h5", "h6"])
            title = " ".join(heading.get_text(" ").split()) if heading else ""
            out.start(title or f"Chapter {n}")
        elif "" in entries:
            out.start(entries.pop("") or f"Chapter {len(out.found) + 1}")
        anchors = {frag: title or f"Chapter {len(out.found) + 1}" for frag, title in entries.items()}
        _walk(body, anchors, out)
        out.flush()
        for title in anchors.values():  # a toc entry whose anchor is not in the page: keep its title
            notes.append(f"{path}: navigation entry {title!r} points at a missing anchor in {name}")
    found = [(title or title_hint or _OPENING, paragraphs) for title, paragraphs in out.found]
    return found, notes


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """An .epub file -> Document."""
    found, extra = _chapters_from_epub(path, title_hint)
    from tasks.documents.epub_package import read_package
    from tasks.documents.xmlsafe import open_zip

    with open_zip(path, kind="an EPUB", fix="re-export the book as EPUB") as archive:
        package = read_package(archive, path)
    return finish_document(path, found, extra + package.warnings, metadata=package.metadata)

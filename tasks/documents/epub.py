"""EPUB 2 and 3 -> chapters of paragraphs, from its navigation and spine.

The package (OPF, nav or NCX, guide, metadata, cover) is read by tasks.documents.epub_package; each
spine document becomes blocks (tasks.documents.xhtml); the table of contents places chapter starts
on those blocks and tasks.documents.assemble turns them into chapters. Spine documents that the
table of contents does not name join the chapter before them, unless they open with a heading of
their own (then they are a chapter titled by it). Non-linear spine documents are not read.
"""

from __future__ import annotations

import posixpath
import warnings
import zipfile
from pathlib import Path

from tasks.documents.assemble import Node, assemble
from tasks.documents.epub_package import FIX, NavEntry, Package, read_package, resolve
from tasks.documents.files import MAX_EPUB_BYTES, _check_file
from tasks.documents.model import OPENING, Document, ReadOptions, Skipped, finish_document, skip
from tasks.documents.xhtml import PUBLISHER, Block, Page, walk
from tasks.documents.xmlsafe import open_zip, parse_document, read_member
from tasks.errors import SourceError

# guide / landmarks types -> what a whole document is, when its own markup does not say
_GUIDE_MATTER = {
    "cover": "titlepage", "title-page": "titlepage", "titlepage": "titlepage", "toc": "toc",
    "copyright-page": "copyright", "colophon": "colophon", "imprint": "imprint", "halftitlepage": "halftitle",
    "loi": "toc", "lot": "toc", "index": "toc", "notes": "notes", "endnotes": "notes", "footnotes": "notes",
}  # fmt: skip
_GUIDE_FRONT = frozenset({"preface", "dedication", "epigraph", "foreword", "introduction", "acknowledgements"})


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """An .epub file -> Document (chapters, warnings, skipped parts, metadata)."""
    _check_file(path, MAX_EPUB_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_zip(path, kind="an EPUB", fix=FIX) as archive:
                package = read_package(archive, path)
                found, skipped, notes = _Book(archive, package, path, options).chapters(title_hint)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, zlib or lxml in many ways
        raise SourceError(f"is not a readable EPUB ({type(exc).__name__}: {exc})", file=path, fix=FIX) from exc
    return finish_document(
        path, found, package.warnings + notes, skipped=skipped, metadata=package.metadata
    )


class _Book:
    def __init__(self, archive: zipfile.ZipFile, package: Package, path: Path, options: ReadOptions) -> None:
        self.archive = archive
        self.package = package
        self.path = path
        self.options = options
        self.pages: dict[str, Page] = {}
        self.offsets: dict[str, int] = {}
        self.blocks: list[Block] = []
        self.warnings: list[str] = []
        self.skipped: list[Skipped] = []

    def _page(self, member: str) -> Page:
        if member not in self.pages:
            root = parse_document(read_member(self.archive, member), xml_first=True)
            page = walk(root, source=posixpath.basename(member), image_alt=self.options.image_alt)
            kind = _GUIDE_MATTER.get(self.package.landmarks.get(member, ""))
            front = self.package.landmarks.get(member, "")
            for block in page.blocks:
                if kind and block.matter is None:
                    block.matter, block.token = kind, self.package.landmarks[member]
                if front in _GUIDE_FRONT and block.front is None:
                    block.front = front
            self.pages[member] = page
        return self.pages[member]

    def chapters(self, title_hint: str | None) -> tuple[list[tuple[str, list[str]]], tuple[Skipped, ...], list[str]]:
        for member, linear in self.package.spine:
            if member == self.package.nav_doc and not linear:
                continue
            page = self._page(member)
            if not linear:
                text = " ".join(b.text for b in page.blocks if b.matter is None)
                if text.split():
                    self.skipped.append(skip(
                        "non-linear", text, what=f"{posixpath.basename(member)} (non-linear)",
                        reason="marked non-linear in the spine (outside the reading order)",
                    ))
                continue
            if member in self.offsets:
                continue  # a document listed twice in the spine is read once
            self.offsets[member] = len(self.blocks)
            self.blocks.extend(page.blocks)

        roots = self._place(self.package.toc, 0)
        roots = self._add_unlisted(roots, title_hint or OPENING)
        found, skipped = assemble(
            self.blocks,
            roots,
            options=self.options,
            book_title=self.package.metadata.title,
            pre_title=title_hint or OPENING,
            note_text=self._note_text,
        )
        return found, tuple(self.skipped) + skipped, self.warnings

    def _place(self, entries: list[NavEntry], depth: int) -> list[Node]:
        """ToC entries -> nodes at block positions; entries outside the reading order lend their
        sub-entries to their parent."""
        out: list[Node] = []
        for entry in entries:
            children = self._place(entry.children, depth + 1) if depth < 8 else []
            if entry.doc not in self.offsets:
                out.extend(children)
                continue
            page = self.pages[entry.doc]
            pos, mid = self.offsets[entry.doc], False
            if entry.fragment:
                span = page.spans.get(entry.fragment)
                if span is None:
                    self.warnings.append(
                        f"{self.path}: navigation entry {entry.label!r} points at a missing anchor "
                        f"#{entry.fragment} in {entry.doc}; it starts at the top of that file"
                    )
                else:
                    pos, mid = pos + span[0], span[0] > 0
            out.append(Node(label=entry.label, pos=pos, doc=entry.doc, mid_file=mid, children=children))
        return out

    def _add_unlisted(self, roots: list[Node], opening: str) -> list[Node]:
        """Spine documents the ToC does not name: their own chapter when they open with a heading (or
        come before any listed one), else part of the chapter before them."""
        listed: set[str] = set()
        stack = list(roots)
        flat: list[Node] = []
        while stack:
            node = stack.pop()
            listed.add(node.doc)
            flat.append(node)
            stack.extend(node.children)
        first = min((n.pos for n in flat), default=len(self.blocks) + 1)
        no_toc = not flat
        for member, start in self.offsets.items():
            if member in listed:
                continue
            page_blocks = [b for b in self.pages[member].blocks if b.matter is None]
            if not page_blocks:
                continue
            opens_with_heading = page_blocks[0].heading > 0
            if not opens_with_heading and (start >= first or (no_toc and len(flat) > 0)):
                continue  # no heading of its own: it continues the chapter before it
            before = [n for n in flat if n.pos <= start]
            sibling = max(before, key=lambda n: n.pos) if before and start >= first else None
            node = Node(label="", pos=start, doc=member, fallback=opening if start < first else "")
            if sibling is not None and sibling.parent is not None:
                node.parent = sibling.parent
                sibling.parent.children.append(node)
                sibling.parent.children.sort(key=lambda n: n.pos)
            else:
                roots.append(node)
                roots.sort(key=lambda n: n.pos)
            flat.append(node)
        return roots

    def _note_text(self, block: Block, href: str) -> list[str]:
        """The paragraphs of the note an href points at (in any spine document)."""
        base = next((m for m in self.pages if posixpath.basename(m) == block.source), "")
        doc, fragment = resolve(base, href)
        if not doc or not fragment:
            return []
        try:
            page = self._page(doc)
        except (KeyError, ValueError):
            return []
        span = page.spans.get(fragment)
        if span is None:
            return []
        start, end = span
        return [b.text for b in page.blocks[start : max(end, start + 1)]]


__all__ = ["PUBLISHER", "read"]

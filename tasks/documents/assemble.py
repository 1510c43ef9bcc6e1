"""Blocks + a table of contents -> chapters, the way a listener expects them.

Shared by the EPUB reader (nodes from its nav/NCX) and the HTML reader (nodes from its headings).
Each node starts at a block; its segment runs to the next node's start. Rules:
- publisher matter (title page, imprint, colophon, copyright, contents, Project Gutenberg header and
  licence) is skipped unless ReadOptions.keep names its kind; notes are never read in place;
- the headings a segment opens with are its title, not its text;
- a node with no text but sub-entries (a part) gives no chapter: its title prefixes its chapters'
  titles (ReadOptions.part_titles); one with no text and no sub-entries that is followed at once by
  its next sibling further down the same file (PG's split "CHAPTER ONE" / "THE EVE OF THE WAR")
  joins that sibling's title;
- sub-entries pointing into the middle of their parent's file, after text of the parent's own,
  are sections of that chapter (their heading is read as text), not chapters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tasks.documents.model import ReadOptions, Skipped, skip
from tasks.documents.xhtml import Block, clean_title, join_title

_PG_START = re.compile(r"\*\*\*\s*START OF TH[EI]S? PROJECT GUTENBERG", re.I)
_PG_END = re.compile(r"\*\*\*\s*END OF TH[EI]S? PROJECT GUTENBERG|^End of (?:the )?Project Gutenberg", re.I)
_BY = re.compile(r"^by\s", re.I)
_NAMED = re.compile(r"^(?:preface|prologue|introduction|foreword|acknowledg(?:e)?ments|dedication|epigraph)\.?$", re.I)
EPIGRAPH_MAX_WORDS = 150  # unlabelled text under the book's own title entry, this short, is its epigraph


@dataclass(eq=False)
class Node:
    """A table-of-contents entry placed on the blocks."""

    label: str
    pos: int
    doc: str = ""
    mid_file: bool = False
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    absorbed: bool = False
    status: str = ""  # "matter" | "empty" | "chapter" | "merged"
    headings: list[str] = field(default_factory=list)
    body: list[Block] = field(default_factory=list)
    front: str | None = None
    fallback: str = ""  # the title when it has no label, heading or front-matter kind


def mark_gutenberg(blocks: list[Block]) -> None:
    """Text before a Project Gutenberg START marker is its header; from the END marker (or "End of
    the Project Gutenberg EBook") on, its licence. Markup-less PG files need this."""
    start = next((i for i, b in enumerate(blocks) if b.matter is None and _PG_START.search(b.text)), None)
    if start is not None:
        for b in blocks[: start + 1]:
            if b.matter is None:
                b.matter, b.token = "header", "pg-header"
    end = next((i for i, b in enumerate(blocks) if b.matter is None and _PG_END.search(b.text)), None)
    if end is not None:
        for b in blocks[end:]:
            if b.matter is None or b.matter == "header":
                b.matter, b.token = "license", "pg-license"


def _reason(kind: str, options: ReadOptions) -> str:
    if kind == "notes":
        if options.notes == "end":
            return "notes are read after the chapter that refers to them, not in place"
        return "notes are not read; set reading.notes to 'end' to hear each after the chapter that refers to it"
    if kind == "chrome":
        return "web page navigation, header, footer or sidebar"
    if kind == "image":
        return "image captions are not read; set reading.image_alt to read them"
    if kind == "transcriber":
        return "notes on the digital edition, not the book"
    if kind == "table":
        return "tables are not read aloud"
    return f"publisher matter; add '{kind}' to reading.keep to read it"


# matter kind -> the ledger's reason
LEDGER_KIND = {
    "toc": "contents", "titlepage": "title page", "halftitle": "title page", "header": "licence", "license": "licence",
    "copyright": "copyright page", "imprint": "imprint", "colophon": "colophon", "notes": "footnote",
    "chrome": "web page navigation", "image": "image", "transcriber": "transcriber's note", "index": "index",
}  # fmt: skip
_DROP_WHAT = {
    "page number": "page numbers of the printed book are not read",
    "footnote marker": "a note's number in the text is not read (the note is read or skipped by reading.notes)",
    "image": "images are not read; set reading.image_alt to read their alt text",
    "transcriber's note": "notes on the digital edition, not the book",
    "markup label": "the sidenote's text is read, not its label",
}


class _Skips:
    """What was skipped, grouped by (what, kind, chapter node); chapter titles are filled in last."""

    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.items: dict[tuple[str, str, int], tuple[str, str, object, list[str]]] = {}

    def add(self, block: Block, node: object = None, kind: str | None = None) -> None:
        kind = kind or block.matter or "toc"
        token = block.token or kind
        if kind in ("header", "license") and token.startswith("pg"):
            what = f"Project Gutenberg {'header' if kind == 'header' else 'licence'} ({block.source})"
        elif kind == "table":
            what = token
        else:
            what = f"{block.source} ({token})" if block.source else token
        self.text(what, LEDGER_KIND.get(kind, kind), _reason(kind, self.options), node, block.text)
        self.drops(block, node)

    def drops(self, block: Block, node: object) -> None:
        for kind, text in block.dropped:
            self.text(kind, kind, _DROP_WHAT.get(kind, kind), node, text)

    def text(self, what: str, kind: str, reason: str, node: object, text: str) -> None:
        entry = self.items.setdefault((what, kind, id(node)), (kind, reason, node, []))
        entry[3].append(text)

    def result(self, titles: dict[int, str]) -> tuple[Skipped, ...]:
        out = []
        for (what, _, _), (kind, reason, node, texts) in self.items.items():
            out.append(skip(kind, " ".join(texts), what=what, reason=reason, chapter=titles.get(id(node))))
        return tuple(out)


# A heading that names what follows as matter, not a chapter: (pattern, matter kind)
_MATTER_HEADINGS = (
    (re.compile(r"^(?:table of )?contents\.?$|^list of (?:illustrations|plates|figures|maps)\.?$|^illustrations$", re.I),
     "toc"),
    (re.compile(r"^transcriber['\u2019]?s notes?\.?$", re.I), "transcriber"),
    (re.compile(r"^(?:foot|end)?notes\.?$", re.I), "notes"),
    (re.compile(r"^index\.?$", re.I), "index"),
)


def _matter_heading(text: str) -> str | None:
    text = " ".join(text.split())
    return next((kind for pattern, kind in _MATTER_HEADINGS if pattern.match(text)), None)


def _readable(block: Block, options: ReadOptions) -> bool:
    return block.matter is None or (block.matter not in ("notes", "chrome") and block.matter in options.keep)


def _looks_like_contents(body: list[Block]) -> bool:
    words = sum(b.words for b in body)
    return len(body) >= 3 and words > 0 and sum(b.link_words for b in body) >= 0.6 * words


def _flatten(nodes: list[Node], parent: Node | None, out: list[Node]) -> None:
    for node in nodes:
        node.parent = parent
        out.append(node)
        _flatten(node.children, node, out)


def _absorb(node: Node, blocks: list[Block], options: ReadOptions) -> None:
    """Sub-entries inside their parent's file, after text of the parent's own, stay in its chapter."""
    inner = [c for c in node.children if c.doc == node.doc and c.mid_file and c.pos > node.pos]
    if inner:
        before = blocks[node.pos : min(c.pos for c in node.children)]
        if any(_readable(b, options) and not b.heading for b in before):
            stack = list(inner)
            while stack:
                child = stack.pop()
                child.absorbed = True
                stack.extend(c for c in child.children if c.doc == node.doc and c.mid_file)
    for child in node.children:
        if not child.absorbed:
            _absorb(child, blocks, options)


def assemble(
    blocks: list[Block],
    roots: list[Node],
    *,
    options: ReadOptions,
    book_title: str | None,
    pre_title: str,
    note_text: Callable[[Block, str], list[str]] | None = None,
) -> tuple[list[tuple[str, list[str]]], tuple[Skipped, ...]]:
    """Chapters (title, paragraphs) in reading order, and what was skipped."""
    mark_gutenberg(blocks)
    nodes: list[Node] = []
    _flatten(roots, None, nodes)
    for root in roots:
        _absorb(root, blocks, options)
    index = {id(n): i for i, n in enumerate(nodes)}
    order = sorted((n for n in nodes if not n.absorbed), key=lambda n: (n.pos, index[id(n)]))
    skips = _Skips(options)

    book = (book_title or "").casefold().strip()
    pre = Node(label="", pos=0)
    segments = [(pre, 0, order[0].pos if order else len(blocks))]
    for i, node in enumerate(order):
        segments.append((node, node.pos, order[i + 1].pos if i + 1 < len(order) else len(blocks)))
    matter_kind: dict[int, str] = {}  # node -> the kind of the first matter skipped in its segment
    for node, start, end in segments:
        kept: list[Block] = []
        had_matter = False
        first_heading = next((b.text for b in blocks[start:end] if _readable(b, options)), "")
        named = _matter_heading(node.label) or (
            _matter_heading(first_heading) if start < end and blocks[start].heading else None)
        if named is not None and named in options.keep:
            named = None
        for b in blocks[start:end]:
            if _readable(b, options) and named is None:
                kept.append(b)
            else:
                skips.add(b, node, kind=named if _readable(b, options) else None)
                matter_kind.setdefault(id(node), LEDGER_KIND.get(named or b.matter or "", named or b.matter or ""))
                had_matter = True
        lead = 0
        while lead < len(kept) and kept[lead].heading:
            lead += 1
        node.headings = [b.text for b in kept[:lead]]
        node.body = kept[lead:]
        if book and (clean_title(node.label).casefold() == book or (node.headings and not node.label and clean_title(
            node.headings[0]).casefold() == book)):  # a title page: its "by ..." lines are not text
            while node.body and _BY.match(node.body[0].text) and node.body[0].words <= 12:
                skips.add(node.body.pop(0), node, kind="titlepage")
                had_matter = True
        node.front = next((b.front for b in kept if b.front), None)
        if node.body and _looks_like_contents(node.body) and "toc" not in options.keep:
            for b in node.body:
                skips.add(b, node, kind="toc")
            node.body, had_matter = [], True
        node.status = "chapter" if node.body else ("matter" if had_matter else "empty")

    live = {id(n) for n in order}

    def label(node: Node) -> str:
        return clean_title(node.label) or join_title(node.headings)

    for i, node in enumerate(order):
        kids = [c for c in node.children if id(c) in live]
        following = order[i + 1] if i + 1 < len(order) else None
        siblings = node.parent.children if node.parent is not None else roots
        if (
            node.status == "empty" and not kids and following is not None and following in siblings
            and following.status != "matter" and following.doc == node.doc and following.mid_file
        ):  # fmt: skip
            following.label = join_title([label(node), label(following)])
            node.status = "merged"

    def prefix(node: Node) -> list[str]:
        chain: list[str] = []
        parent = node.parent
        while parent is not None:
            if parent.status in ("empty", "chapter") and label(parent).casefold() != book:
                chain.append(label(parent))
            parent = parent.parent
        return chain[::-1]

    found: list[tuple[str, list[str]]] = []
    titles: dict[int, str] = {}
    for node, _, _ in segments:
        kids = [c for c in node.children if id(c) in live]
        heads = " ".join(node.headings)
        if node.status not in ("chapter", "empty") or (node.status == "empty" and (kids or node is pre)):
            if node.status == "matter" and heads:
                skips.text(f"heading {heads[:40]!r}", matter_kind.get(id(node), "contents"),
                           "the heading of a part that is not read", node, heads)
            elif node.status == "empty" and (node is pre or label(node).casefold() == book) and heads:
                skips.text("title", "title page", "the title and author are announced from the manifest", node, heads)
            elif node.status == "empty" and kids and options.part_titles.find("{part}") < 0 and heads:
                skips.text(f"part heading {heads[:40]!r}", "part heading", "reading.part_titles leaves parts out",
                           node, heads)
            continue
        own = label(node)
        title_page = (  # headings "Title" / "by Author" opening the book, with text after them
            not node.label and len(node.headings) > 1 and clean_title(node.headings[0]).casefold() == book
            and any(_BY.match(h) for h in node.headings[1:])
        )  # fmt: skip
        if book and ((node.label and own.casefold() == book) or title_page):  # the book's own title entry or title page
            skips.text("title", "title page", "the title and author are announced from the manifest", node,
                       f"{clean_title(node.label)} {heads}" if node.label else heads)
            words = sum(b.words for b in node.body)
            own = (node.front or "").title() or (
                "Epigraph" if words <= EPIGRAPH_MAX_WORDS else (pre_title if node is pre else own)
            )
        elif node is pre and not own and node.body and _NAMED.match(node.body[0].text):
            own = clean_title(node.body.pop(0).text.rstrip("."))  # "Introduction" set as a plain paragraph
        elif node is pre:
            dedication = len(node.body) <= 3 and sum(b.words for b in node.body) <= 40 and bool(
                node.body) and node.body[0].text.casefold().startswith("to ")
            own = own or (node.front or "").title() or ("Dedication" if dedication else pre_title)
        own = own or (node.front or "").title() or node.fallback or f"Chapter {len(found) + 1}"
        chain = prefix(node)
        title = (
            options.part_titles.replace("{part}", ": ".join(chain)).replace("{chapter}", own) if chain else own
        )
        paragraphs = [b.text for b in node.body]
        if options.notes == "end" and note_text is not None:
            paragraphs += _notes(node, blocks, note_text)
        found.append((" ".join(title.split()), paragraphs))
        titles[id(node)] = found[-1][0]
        lost = _missing(heads, title)
        if lost:
            skips.text("heading words", "heading", "the chapter is titled from the table of contents", node, lost)
        for b in node.body:
            skips.drops(b, node)
    for node, start, end in segments:  # page numbers and markers in headings
        for b in blocks[start:end]:
            if b.heading and _readable(b, options) and b in node.body:
                continue
            if b.heading and _readable(b, options):
                skips.drops(b, node)
    return found, skips.result(titles)


def _missing(text: str, title: str) -> str:
    """The words of `text` that `title` lacks (in order), joined."""
    from tasks.documents.ledger import words

    have = set(words(title))
    return " ".join(w for w in words(text) if w not in have)


def _notes(node: Node, blocks: list[Block], note_text: Callable[[Block, str], list[str]]) -> list[str]:
    """The notes a chapter refers to, in order of first reference: "Footnote 1: ..."."""
    out: list[str] = []
    seen: set[str] = set()
    for block in node.body:
        for href, mark in block.notes:
            if not href or href in seen:
                continue
            seen.add(href)
            text = note_text(block, href)
            if text:
                head = f"Footnote {mark}:" if mark and len(mark) <= 4 else "Footnote:"
                out.append(f"{head} {text[0]}")
                out.extend(text[1:])
    return out


def heading_nodes(blocks: list[Block], *, doc: str, depth: int = 3, skip_title: bool = True) -> list[Node]:
    """Nodes for a document without a table of contents (a web page, a DOCX): one per heading of the
    `depth` highest levels present, nested by level. With skip_title, the h1 headings that open the
    document before any text (the title and author lines) are its title, not chapters."""
    mark_gutenberg(blocks)
    start = 0
    if skip_title:  # the opening h1 lines, and a "by ..." line after them
        while start < len(blocks) and blocks[start].matter is not None:
            start += 1
        first = start
        while start < len(blocks) and blocks[start].matter is None and (
            blocks[start].heading == 1 or (start > first and _BY.match(blocks[start].text) and blocks[start].heading)
        ):
            start += 1
    levels = sorted({b.heading for b in blocks[start:] if 0 < b.heading < 7 and b.matter is None})[:depth]
    roots: list[Node] = []
    open_nodes: list[tuple[int, Node]] = []
    for i in range(start, len(blocks)):
        level = blocks[i].heading
        if level not in levels or blocks[i].matter is not None:
            continue
        node = Node(label="", pos=i, doc=doc, mid_file=i > 0)
        while open_nodes and open_nodes[-1][0] >= level:
            open_nodes.pop()
        (open_nodes[-1][1].children if open_nodes else roots).append(node)
        open_nodes.append((level, node))
    return roots

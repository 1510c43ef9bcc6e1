"""(X)HTML content -> a flat list of blocks (paragraphs and headings), each tagged with what it is.

Used by the EPUB reader (one call per spine document) and the HTML reader. A block knows its
heading level, the publisher matter or notes section it sits in (EPUB semantics: `epub:type`,
the class names EPUB 2 conversions give them, ARIA `doc-*` roles, Project Gutenberg's header
classes), the author front matter it belongs to (preface, dedication, epigraph), and the note
references it holds. Note references, backlinks, page breaks, scripts, styles and images (unless
their alt text is asked for) are never text. Verse lines (`<span>`s and `<br/>`) join with spaces
within their paragraph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from tasks.documents.brackets import bracket_markup

LINE = "\ue000"  # a line break inside a heading (<br/>): "CHAPTER III" / "WHERE THE CLIMATES MEET"

OPS_TYPE = "{http://www.idpf.org/2007/ops}type"

# Semantic token (epub:type, with ":" read as "-"; a class name; an ARIA role without "doc-")
# -> the kind of publisher matter it marks. Skipped unless ReadOptions.keep names the kind.
PUBLISHER: dict[str, str] = {
    "titlepage": "titlepage", "title-page": "titlepage", "cover": "titlepage",
    "halftitlepage": "halftitle", "halftitle": "halftitle", "half-title": "halftitle",
    "imprint": "imprint", "colophon": "colophon",
    "copyright-page": "copyright", "copyright": "copyright", "uncopyright": "copyright",
    "toc": "toc", "loi": "toc", "lot": "toc", "landmarks": "toc", "page-list": "toc", "index": "toc",
    "pgheader": "header", "pg-header": "header", "pg-boilerplate": "header",
    "pgfooter": "license", "pg-footer": "license", "license": "license",
}  # fmt: skip
NOTES = frozenset({"endnotes", "footnotes", "rearnotes", "endnote", "footnote", "rearnote"})
AUTHOR = frozenset(
    "preface foreword dedication epigraph introduction prologue epilogue afterword acknowledgments "
    "appendix conclusion".split()
)
HEADING_TOKENS = frozenset({"title", "subtitle", "fulltitle", "chapnum", "chaptitle", "booknum", "booktitle"})
# Class names that may stand for semantics (EPUB 2 conversions of epub:type, Project Gutenberg);
# other class names are only styling and mean nothing here.
_CLASS_TOKENS = (set(PUBLISHER) - {"index", "license"}) | NOTES | AUTHOR | HEADING_TOKENS | {
    "noteref", "backlink", "pagebreak", "pg-footer", "z3998-song", "z3998-poem", "z3998-verse", "pagenum",
    "caption",
}  # fmt: skip
_SKIP_TAGS = frozenset(
    "head script style title svg math template noscript iframe object embed canvas audio video "
    "button form input select textarea option rt rp map area".split()
)
_BLOCK_TAGS = frozenset(
    "p div h1 h2 h3 h4 h5 h6 li ul ol dl dt dd blockquote section article aside header footer main nav "
    "figure figcaption pre table thead tbody tfoot tr caption address hr body hgroup details summary "
    "center".split()
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_MARKER = re.compile(r"^[\[(]?(?:\d{1,4}|[a-z]|[*†‡§¶]+)[\])]?$")
_BACKLINKS = frozenset({"↩", "↩︎", "↑", "⤴", "^", "[back]", "back"})
_PG_END = re.compile(r"\*\*\*\s*END OF TH[EI]S? PROJECT GUTENBERG|End of (?:the )?Project Gutenberg", re.I)
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_MAX_DEPTH = 200


@dataclass
class Block:
    """One paragraph or heading of a content document."""

    text: str
    heading: int = 0  # 1-6 for h1-h6, 7 for other title elements (an hgroup's <p>, PG's chapnum); 0 for text
    matter: str | None = None  # publisher matter kind, "notes", or "chrome" (a web page's navigation)
    token: str | None = None  # the semantic name that classified it ("uncopyright", "pgheader")
    front: str | None = None  # author front matter it belongs to ("dedication", "epigraph")
    notes: tuple[tuple[str, str], ...] = ()  # note references it holds: (href, label)
    link_words: int = 0  # words inside links to other parts of the book (tables of contents are links)
    source: str = ""  # the file it came from
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) left out of it: page numbers, ...

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass
class Page:
    """A parsed content document: its blocks and where each element with an id starts and ends."""

    blocks: list[Block]
    spans: dict[str, tuple[int, int]]
    title: str = ""
    language: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


def _local(tag: object) -> str:
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def tokens(el: etree._Element) -> set[str]:
    """The semantic names on an element: epub:type values, meaningful class names, doc-* roles."""
    found = {t.replace(":", "-").lower() for t in (el.get(OPS_TYPE) or el.get("epub:type") or "").split()}
    found |= {c for c in (el.get("class") or "").lower().split() if c in _CLASS_TOKENS}
    role = (el.get("role") or "").lower()
    if role.startswith("doc-"):
        found.add(role[4:])
    return found


def _is_noteref(el: etree._Element, name: str, toks: set[str]) -> bool:
    if "noteref" in toks or "annoref" in toks:
        return True
    if name not in ("a", "sup"):
        return False
    text = "".join(el.itertext()).strip()
    if not _MARKER.match(text):
        return False
    if name == "a":  # <a href="#fn1"><sup>1</sup></a>, <sup><a href="#fn1">1</a></sup>, <a href="#n1">[1]</a>
        parent = el.getparent()
        in_sup = parent is not None and _local(parent.tag) == "sup"
        has_sup = any(_local(d.tag) == "sup" for d in el.iterdescendants())
        return "#" in (el.get("href") or "") and (has_sup or in_sup or text.startswith("["))
    return any(_local(d.tag) == "a" for d in el.iterdescendants())  # <sup><a href="#fn1">1</a></sup>


def _is_backlink(el: etree._Element, name: str, toks: set[str]) -> bool:
    if "backlink" in toks or "rearnote-backlink" in toks:
        return True
    return name == "a" and "".join(el.itertext()).strip().lower() in _BACKLINKS


class _Walker:
    def __init__(self, *, web_page: bool, image_alt: bool, source: str) -> None:
        self.web_page = web_page
        self.image_alt = image_alt
        self.source = source
        self.blocks: list[Block] = []
        self.spans: dict[str, tuple[int, int]] = {}
        self.inline: list[str] = []
        self.refs: list[tuple[str, str]] = []
        self.link_words = 0
        self.pending: list[tuple[str, str]] = []  # spans left out, waiting for the block they sit in
        # context: (matter, token, front, heading)
        self.ctx: list[tuple[str | None, str | None, str | None, int]] = [(None, None, None, 0)]

    def flush(self) -> None:
        raw = "".join(self.inline)
        self.inline.clear()
        matter, token, front, heading = self.ctx[-1]
        if heading:
            text = heading_lines([" ".join(line.split()) for line in raw.split(LINE)])
        else:
            text, dropped = bracket_markup(raw.replace(LINE, " "), image_alt=self.image_alt)
            self.pending.extend(dropped)
            text = " ".join(text.split())
        if text or self.refs:
            if text:
                self.blocks.append(
                    Block(text, heading, matter, token, front, tuple(self.refs), self.link_words, self.source,
                          self.pending)
                )
                self.pending = []
            elif self.blocks:  # a note reference alone (after a verse line): it belongs to the last block
                last = self.blocks[-1]
                last.notes = last.notes + tuple(self.refs)
        if self.pending and self.blocks and not text:
            self.blocks[-1].dropped.extend(self.pending)  # a page number between paragraphs: the one before
            self.pending = []
        self.refs = []
        self.link_words = 0

    def _context(self, el: etree._Element, name: str, toks: set[str], depth_in_article: bool) -> tuple[
        str | None, str | None, str | None, int
    ] | None:
        """The context an element opens, or None when it opens none (it inherits its parent's)."""
        matter, token, front, heading = self.ctx[-1]
        changed = False
        if self.web_page and (
            name in ("nav", "aside")
            or (name in ("header", "footer") and not depth_in_article)
            or (el.get("role") or "").lower() in _CHROME_ROLES
        ):
            return ("chrome", name, front, heading)
        kind = next((PUBLISHER[t] for t in toks if t in PUBLISHER), None)
        if kind is None and name == "nav":
            kind, toks = "toc", toks | {"nav"}
        if kind is not None and matter is None:
            token = next((t for t in toks if t in PUBLISHER), name)
            if kind == "header" and _PG_END.search("".join(el.itertext())[:3000]):
                kind = "license"
            matter, changed = kind, True
        if kind is None and matter is None and name == "table" and _contents_table(el):
            matter, token, changed = "toc", "contents table", True
        if matter is None and not self.image_alt and "caption" in toks and _in_figure(el):
            matter, token, changed = "image", "caption", True
        notes = next((t for t in toks if t in NOTES), None)
        if notes is not None and matter is None:
            matter, token, changed = "notes", notes, True
        author = next((t for t in toks if t in AUTHOR), None)
        if author is not None and front is None:
            front, changed = author, True
        level = _HEADINGS.get(name, 0)
        if not level and (toks & HEADING_TOKENS) and name not in ("span", "a", "i", "b", "em", "strong"):
            level = 7
        if level and not heading:
            heading, changed = level, True
        if name == "hgroup" and not heading:
            heading, changed = 7, True
        return (matter, token, front, heading) if changed else None

    def walk(self, el: etree._Element, depth: int = 0, in_article: bool = False) -> None:
        for child in el:
            name = _local(child.tag)
            if not name:  # a comment or processing instruction: only its tail is text
                if child.tail:
                    self.inline.append(child.tail)
                continue
            self._element(child, name, depth, in_article)
            if child.tail:
                self.inline.append(child.tail)

    def _element(self, el: etree._Element, name: str, depth: int, in_article: bool) -> None:
        if name in _SKIP_TAGS or depth > _MAX_DEPTH or el.get("hidden") is not None:
            return
        if (el.get("aria-hidden") or "").lower() == "true" and self.web_page:
            return
        toks = tokens(el)
        if "pagebreak" in toks or "pagenum" in toks:
            self.pending.append(("page number", "".join(el.itertext())))
            return
        if _is_backlink(el, name, toks):
            self.pending.append(("footnote marker", "".join(el.itertext())))
            return
        if _is_noteref(el, name, toks):
            href = el.get("href") or next((a.get("href") or "" for a in el.iterdescendants() if _local(a.tag) == "a"), "")
            marker = "".join(el.itertext()).strip()
            self.refs.append((href, marker.strip("[]()")))
            self.pending.append(("footnote marker", marker))
            return
        if name == "br":
            self.inline.append(LINE if self.ctx[-1][3] else " ")
            return
        if name == "img":
            alt = " ".join((el.get("alt") or "").split())
            if self.image_alt and alt:
                self.flush()
                self.inline.append(alt)
                self.flush()
            elif alt and not _captioned(el):
                self.pending.append(("image", alt))
            return
        ident = el.get("id")
        context = self._context(el, name, toks, in_article)
        block = name in _BLOCK_TAGS or context is not None
        if block:
            self.flush()
        start = len(self.blocks)
        if context is not None:
            self.ctx.append(context)
        words_before = sum(len(s.split()) for s in self.inline)
        self.inline.append(" " if name in ("td", "th") else "")
        if el.text:
            self.inline.append(el.text)
        self.walk(el, depth + 1, in_article or name in ("article", "main", "section"))
        if name == "a" and (el.get("href") or "") and not re.match(r"^[a-z][a-z0-9+.-]*:", el.get("href") or "", re.I):
            self.link_words += sum(len(s.split()) for s in self.inline) - words_before
        if block:
            self.flush()
        if context is not None:
            self.ctx.pop()
        if ident:
            self.spans.setdefault(ident, (start, max(len(self.blocks), start + (0 if block else 1))))


_PAGE_CELL = re.compile(r"^(?:\d{1,4}|[ivxlcdm]{1,8}|page|frontispiece|facing page)\.?$", re.I)


def _contents_table(el: etree._Element) -> bool:
    """A table of contents or of illustrations laid out as a table: most rows end in a page number
    (or a link into the book), and there are at least three."""
    rows = [r for r in el.iter() if _local(r.tag) == "tr"]
    paged = 0
    for row in rows:
        cells = [c for c in row if _local(c.tag) in ("td", "th")]
        texts = [" ".join("".join(c.itertext()).split()) for c in cells]
        texts = [t for t in texts if t]
        if texts and (_PAGE_CELL.match(texts[-1]) or any(
            (a.get("href") or "").startswith("#") for a in row.iter() if _local(a.tag) == "a"
        )):
            paged += 1
    return len(rows) >= 3 and paged >= 0.6 * len(rows)


def _captioned(img: etree._Element) -> bool:
    """An image whose figure also holds a caption (PG's alt text repeats it)."""
    parent = img.getparent()
    while parent is not None and _local(parent.tag) == "a":
        parent = parent.getparent()
    return parent is not None and any(
        "caption" in (d.get("class") or "").split() or _local(d.tag) == "figcaption" for d in parent.iter()
    )


def _in_figure(el: etree._Element) -> bool:
    """A caption inside a PG figure (<div class="figcenter">) or an HTML <figure>."""
    parent = el.getparent()
    depth = 0
    while parent is not None and depth < 4:
        if _local(parent.tag) == "figure" or any(c.startswith("fig") for c in (parent.get("class") or "").split()):
            return True
        parent, depth = parent.getparent(), depth + 1
    return False


_NUMBER_HEAD = re.compile(r"^(?:chapter|part|book|volume|stave|letter|canto|section)\s+\S+\.?$|^[ivxlcdm]+\.?$|^\d+\.?$",
                          re.I)


def heading_lines(lines: list[str]) -> str:
    """The lines of a heading broken with <br/> -> one title: a number line and its title join with a
    colon ("Chapter III: Where the Climates Meet"); two title lines are two sentences ("The second
    tale. The river's song.")."""
    out = ""
    for line in (line for line in lines if line):
        if not out:
            out = line
        elif _NUMBER_HEAD.match(out):
            out = f"{out.rstrip('.')}: {line}"
        else:
            out = f"{out.rstrip('.:;,')}. {line}"
    return out


def walk(root: etree._Element, *, source: str = "", web_page: bool = False, image_alt: bool = False) -> Page:
    """A parsed document -> Page. `web_page` also drops a page's navigation, header, footer and aside."""
    walker = _Walker(web_page=web_page, image_alt=image_alt, source=source)
    body = next((el for el in root.iter() if _local(el.tag) == "body"), root)
    if web_page:
        mains = [el for el in body.iter() if _local(el.tag) == "main" or (el.get("role") or "") == "main"]
        if len(mains) == 1:
            body = mains[0]
    if body is root:
        walker.inline.append(root.text or "")
        walker.walk(root)
    else:
        walker._element(body, "body", 0, False)
    walker.flush()
    title_el = next((el for el in root.iter() if _local(el.tag) == "title"), None)
    meta = {
        (m.get("name") or "").lower(): " ".join((m.get("content") or "").split())
        for m in root.iter()
        if _local(m.tag) == "meta" and m.get("name")
    }
    language = root.get("{http://www.w3.org/XML/1998/namespace}lang") or root.get("lang")
    title = " ".join("".join(title_el.itertext()).split()) if title_el is not None else ""
    return Page(walker.blocks, walker.spans, title, language, meta)


# --- titles -----------------------------------------------------------------------------------

_ROMAN = re.compile(r"M{0,4}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
_NOT_ROMAN = frozenset({"MIX", "DIX", "LIV", "DIV", "MID", "CIVIL", "DC"})


def _keep_roman(word: str, **_: object) -> str | None:
    bare = word.strip(".,:;!?()[]'’\"“”")
    if bare and bare.isupper() and _ROMAN.fullmatch(bare) and bare not in _NOT_ROMAN:
        return word
    return None


def clean_title(text: str) -> str:
    """A heading or ToC label as a spoken title: whitespace collapsed, shouting title-cased (roman
    numerals stay), trailing note markers and dangling punctuation removed."""
    text = " ".join(text.split()).strip(" :;,")
    letters = [c for c in text if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters) and not _ROMAN.fullmatch(text.rstrip(".")):
        from titlecase import titlecase

        text = titlecase(text, callback=_keep_roman)
    return text


def join_title(parts: list[str]) -> str:
    """Heading pieces ("Chapter", "V" / "I", "At the Admiral Benbow") -> one title."""
    out = ""
    for part in (clean_title(p) for p in parts):
        if not part:
            continue
        if not out:
            out = part
        elif out.endswith((":", ".", "—", "-", "–", ";")):
            out = f"{out} {part}"
        else:
            out = f"{out}: {part}"
    return out

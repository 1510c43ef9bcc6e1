"""Source documents -> chapters of paragraphs: plain text, Markdown and EPUB.

    read_document(path, title_hint=None) -> Document (chapters of ChapterText, plus warnings)
    read_text_file(path)                 -> str (UTF-8 text, checked)
    paragraphs_from_text(text)           -> tuple of paragraphs

Paragraphs come out markup-free but not yet normalised (tasks.text.normalize_text does that).
Every problem the user can fix is a SourceError naming the file and the fix. Chapters without text
are dropped with a warning; every other chapter keeps its own title.
"""

from __future__ import annotations

import posixpath
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from tasks.errors import SourceError

__all__ = [
    "MAX_EPUB_BYTES",
    "MAX_TEXT_BYTES",
    "SUFFIXES",
    "ChapterText",
    "Document",
    "paragraphs_from_text",
    "read_document",
    "read_text_file",
]

MAX_TEXT_BYTES = 50 * 1024 * 1024  # 50 MiB of text is ~60 hours of audio: anything larger is a mistake
MAX_EPUB_BYTES = 300 * 1024 * 1024  # EPUBs carry images, so they get more room
SUFFIXES = (".txt", ".md", ".markdown", ".epub")
_OPENING = "Opening"


@dataclass(frozen=True)
class ChapterText:
    """One chapter: its title and its paragraphs (non-empty, markup-free, not yet normalised)."""

    title: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Document:
    """A whole source document: chapters in reading order, and warnings for the run report."""

    chapters: tuple[ChapterText, ...]
    warnings: tuple[str, ...]


# --- files --------------------------------------------------------------------------------------


def _check_file(path: Path, max_bytes: int) -> None:
    """Raise SourceError unless `path` is an existing regular file of at most max_bytes."""
    try:
        exists, is_file = path.exists(), path.is_file()
        size = path.stat().st_size if is_file else 0
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise SourceError(f"cannot be opened ({exc})", file=path, fix="check the source path in the manifest") from None
    if not exists:
        raise SourceError("source file not found", file=path, fix="check the source path in the manifest")
    if not is_file:
        raise SourceError("is not a file", file=path, fix="point the manifest at a .txt, .md or .epub file")
    if size > max_bytes:
        raise SourceError(
            f"is too large ({size / 2**20:.0f} MiB; the limit is {max_bytes / 2**20:.0f} MiB)",
            file=path,
            fix="split the book into several source files",
        )


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or more than 10% control bytes in the first 8 KiB: not a text file."""
    if b"\x00" in data:
        return True
    sample = data[:8192]
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13) or b == 127)
    return len(sample) > 0 and controls > len(sample) // 10


def read_text_file(path: Path) -> str:
    """Read a UTF-8 text file (a UTF-8 byte-order mark is allowed) with "\\n" line ends.

    Raises SourceError when the file is missing, larger than MAX_TEXT_BYTES, binary, UTF-16,
    or not valid UTF-8 (naming the byte offset and line of the first bad byte).
    """
    _check_file(path, MAX_TEXT_BYTES)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"cannot be read ({exc.strerror or exc})", file=path, fix="check its permissions"
        ) from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError("is UTF-16 text", file=path, fix="save it as UTF-8")
    if _looks_binary(data):
        raise SourceError(
            "looks like a binary file, not text",
            file=path,
            fix="export the book as plain text (UTF-8) or EPUB",
        )
    offset = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = offset + exc.start
        line = data[:bad].count(b"\n") + 1
        raise SourceError(
            f"is not valid UTF-8 (byte 0x{data[bad]:02x} at byte offset {bad}, line {line})",
            file=path,
            fix="save it as UTF-8 (most editors offer the encoding under Save As)",
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_document(path: Path, *, title_hint: str | None = None) -> Document:
    """Read a .txt, .md/.markdown or .epub file into chapters.

    `title_hint` (usually the book title from the manifest) names the chapter of text before the
    first heading, or the single chapter of a document without headings; else "Opening" / the
    file stem. Raises SourceError for an unknown suffix, an unreadable file, or no text at all.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SourceError(
            f"has an unsupported file type {suffix or '(no suffix)'!r}",
            file=path,
            fix=f"use one of {', '.join(SUFFIXES)} (convert PDF or Word files to EPUB or text first)",
        )
    found: list[tuple[str, list[str]]]
    extra: list[str] = []
    if suffix == ".txt":
        found = _chapters_from_plain(read_text_file(path), title_hint or path.stem, title_hint)
    elif suffix in (".md", ".markdown"):
        found = _chapters_from_markdown(read_text_file(path), title_hint or path.stem, title_hint)
    else:
        found, extra = _chapters_from_epub(path, title_hint)
    return _finish(path, found, extra)


def _finish(path: Path, found: list[tuple[str, list[str]]], extra: list[str]) -> Document:
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
    return Document(chapters=tuple(chapters), warnings=tuple(notes))


# --- plain text ---------------------------------------------------------------------------------

_BLANK_LINE_RE = re.compile(r"\n[ \t\f\v]*\n")
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    "hundred"
)
_CHAPTER_NUMBER = rf"(?:\d+|[ivxlcdm]+|(?:{_NUMBER_WORDS})(?:[- ](?:{_NUMBER_WORDS}))*)"
# "Chapter 3", "CHAPTER THREE", "Chapter IV", "Chapter 12: The Storm", "Chapter 1. Loomings",
# "Prologue", "Epilogue: After". On a line of its own, at most 100 characters.
_HEADING_RE = re.compile(
    rf"^\s*(?:chapter\s+{_CHAPTER_NUMBER}|prologue|epilogue)\b(?:\s*[:.\-\u2013\u2014]\s*\S.*|\s*[.:]?)\s*$",
    re.IGNORECASE,
)
_ROMAN_RE = re.compile(r"^[ivxlcdm]+$", re.IGNORECASE)


def paragraphs_from_text(text: str) -> tuple[str, ...]:
    """Split text at blank lines into paragraphs; line breaks inside a paragraph become spaces.

    Whitespace runs collapse to one space; empty paragraphs are dropped.
    """
    out = (" ".join(block.split()) for block in _BLANK_LINE_RE.split(text.replace("\r\n", "\n")))
    return tuple(p for p in out if p)


def _tidy_title(line: str) -> str:
    """'  CHAPTER IV.  ' -> 'Chapter IV'; 'chapter 12 : the storm' keeps its words, spaces tidied."""
    title = " ".join(line.split()).rstrip(".:")
    if title.isupper():  # shouting headings become title case; Roman numerals stay upper case
        title = " ".join(w.upper() if _ROMAN_RE.match(w) else w.capitalize() for w in title.split(" "))
    return re.sub(r"\s+([:.])", r"\1", title)


def _chapters_from_plain(
    text: str, default_title: str, title_hint: str | None
) -> list[tuple[str, list[str]]]:
    """Chapters start at heading lines (see _HEADING_RE); a short line right after a heading, alone
    before a blank line, is its subtitle ("Chapter 1" + "The Boy Who Lived")."""
    lines = text.split("\n")
    found: list[tuple[str, list[str]]] = []
    title: str | None = None
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if len(line) <= 100 and _HEADING_RE.match(line):
            if title is not None or any(s.strip() for s in body):
                found.append(
                    (
                        title if title is not None else title_hint or _OPENING,
                        list(paragraphs_from_text("\n".join(body))),
                    )
                )
            title, body = _tidy_title(line), []
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            after = lines[i + 2].strip() if i + 2 < len(lines) else ""
            if (
                nxt
                and not after
                and len(nxt) <= 80
                and nxt[-1] not in ".!?,;\"'"
                and not _HEADING_RE.match(nxt)
            ):
                title = f"{title}: {_tidy_title(nxt)}"
                i += 1
        else:
            body.append(line)
        i += 1
    if title is None:
        return [(default_title, list(paragraphs_from_text("\n".join(body))))]
    found.append((title, list(paragraphs_from_text("\n".join(body)))))
    return found


# --- Markdown -----------------------------------------------------------------------------------

_FRONT_MATTER_RE = re.compile(r"\A\ufeff?---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_YAML_KEY_RE = re.compile(r"\s*[A-Za-z_][\w .-]*:(?:\s|$)")
_HTML_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_HR_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+\[[ xX]\])?(?:[ \t]+|$)")
_QUOTE_RE = re.compile(r"^\s{0,3}(?:>\s?)+")
_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_REF_DEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+.*$")
_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|<])")
# Markers are dropped, not paired: linear on any line, and the words are all that is read.
# Bounded repeats keep the link rules fast on long lines full of unmatched brackets.
_INLINE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"!\[[^\]\n]{0,300}\]\([^()\[\]<>\s]{0,500}(?:\s+\"[^\"\n]{0,200}\")?\)"),
        "",
    ),  # images: not read
    (
        re.compile(r"\[([^\]\n]{0,300})\]\([^()\[\]<>\s]{0,500}(?:\s+\"[^\"\n]{0,200}\")?\)"),
        r"\1",
    ),  # [text](url)
    (re.compile(r"</?[A-Za-z!?][^<>\n]{0,1000}>"), ""),  # HTML tags and <autolinks>; "a < b" stays
    (re.compile(r"`+|\*+|~~+"), ""),  # inline code marks, emphasis stars, strikethrough
    (re.compile(r"(?<!\w)_+|_+(?!\w)"), ""),  # _emphasis_ and __strong__; snake_case stays
)


def _strip_inline_markdown(text: str) -> str:
    """Markdown inline markup -> the words it marks up. Backslash escapes keep their character."""
    escaped: list[str] = []

    def _hide(m: re.Match[str]) -> str:
        escaped.append(m.group(1))
        return f"\ue000{len(escaped) - 1}\ue001"

    out = _ESCAPE_RE.sub(_hide, text)
    for pattern, repl in _INLINE_RULES:
        out = pattern.sub(repl, out)
    return re.sub("\ue000(\\d+)\ue001", lambda m: escaped[int(m.group(1))], out)


def _markdown_blocks(text: str) -> Iterator[tuple[int, str]]:
    """Yield (heading level, text) for headings and (0, text) for paragraphs, in order.

    Dropped: front matter, HTML comments, fenced code, horizontal rules, link definitions,
    table separator rows. List items and table rows are paragraphs of their own (table cells
    joined with ", "); blockquote markers are removed.
    """
    front = _FRONT_MATTER_RE.match(text)
    if front and _YAML_KEY_RE.match(front.group(1)):  # YAML front matter, not a rule above the text
        text = text[front.end() :]
    text = _HTML_COMMENT_RE.sub("", text)
    para: list[str] = []
    fence: str | None = None

    def flush() -> Iterator[tuple[int, str]]:
        if para:
            joined = " ".join(" ".join(para).split())
            para.clear()
            if joined:
                yield 0, joined

    for raw in text.split("\n"):
        m = _FENCE_RE.match(raw)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            yield from flush()
            fence = m.group(1)
            continue
        line = _QUOTE_RE.sub("", raw)
        if not line.strip():
            yield from flush()
            continue
        heading = _ATX_RE.match(line)
        if heading:
            yield from flush()
            title = (heading.group(2) or "").rstrip()
            unclosed = title.rstrip("#")  # a closing "###" sequence is not part of the title
            if unclosed != title and (not unclosed or unclosed[-1] in " \t"):
                title = unclosed
            yield len(heading.group(1)), _strip_inline_markdown(title).strip()
            continue
        setext = _SETEXT_RE.match(line)
        if setext and len(para) == 1 and not _LIST_RE.match(para[0]):
            title = para.pop()
            yield (1 if setext.group(1)[0] == "=" else 2), _strip_inline_markdown(title).strip()
            continue
        if _HR_RE.match(line) or _REF_DEF_RE.match(line):
            yield from flush()
            continue
        stripped = line.strip()
        if stripped.startswith("|") or (para == [] and stripped.count("|") >= 2):
            yield from flush()
            if not _TABLE_SEP_RE.match(stripped):
                cells = [_strip_inline_markdown(c).strip() for c in stripped.strip("|").split("|")]
                para.append(", ".join(c for c in cells if c))
                yield from flush()
            continue
        if _LIST_RE.match(line):
            yield from flush()
            line = _LIST_RE.sub("", line, count=1)
        para.append(_strip_inline_markdown(line))
    yield from flush()


def _chapters_from_markdown(
    text: str, default_title: str, title_hint: str | None
) -> list[tuple[str, list[str]]]:
    """Chapters from headings: with exactly one "#" and several "##", the "#" is the book title and
    "##" are chapters; else the top heading level present is the chapter level. Deeper headings
    are read as paragraphs."""
    blocks = list(_markdown_blocks(text))
    levels = [level for level, _ in blocks if level]
    if not levels:
        return [(default_title, [t for _, t in blocks])]
    book_title: str | None = None
    if levels.count(1) == 1 and levels.count(2) >= 2:
        chapter_level = 2
        book_title = next(t for level, t in blocks if level == 1) or None
    else:
        chapter_level = min(levels)
    found: list[tuple[str, list[str]]] = []
    title: str | None = None
    body: list[str] = []
    for level, block in blocks:
        if level == chapter_level:
            if title is not None or body:
                found.append((title if title is not None else title_hint or book_title or _OPENING, body))
            title, body = block or f"Chapter {len(found) + 1}", []
        elif 0 < level < chapter_level:
            continue  # the book title: not a chapter, not read
        elif block:
            body.append(block)
    found.append((title if title is not None else title_hint or _OPENING, body))
    return found


# --- EPUB ---------------------------------------------------------------------------------------

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

"""Markdown (.md) -> chapters of paragraphs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tasks.documents.files import read_text_file
from tasks.documents.model import OPENING as _OPENING
from tasks.documents.model import Document, ReadOptions, finish_document

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


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """A .md file -> Document."""
    found = _chapters_from_markdown(read_text_file(path), title_hint or path.stem, title_hint)
    return finish_document(path, found, [])

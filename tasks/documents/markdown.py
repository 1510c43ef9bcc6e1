"""Markdown (.md) -> chapters of paragraphs, parsed with markdown-it-py (CommonMark + plugins).

    read(path, *, title_hint, options) -> Document

Chapters come from headings: the first heading level that repeats is the chapter level; a single
heading above it, before all others, is the book title (not read; it fills Metadata.title when the
front matter has none). Deeper headings are read as paragraphs of their chapter. A chapter heading
that holds nothing but footnote definitions (`# Endnotes`) is not a chapter. YAML front matter gives
the title, author(s), description and language, and is never read. Not read (listed in
Document.skipped): code blocks (fenced and indented), tables (with a warning), raw HTML that is not
prose (tables, code, scripts), images (ReadOptions.image_alt reads their alt text), Liquid tags.
Footnotes are skipped, or read at the end of the chapter that first refers to them
(ReadOptions.notes = "end"); their reference marks are never read. See tasks.documents.markdown_inline
for what is read inside a paragraph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from markdown_it.token import Token

from tasks.documents.files import read_text
from tasks.documents.markdown_inline import Tally, html_block_text, inline_words, markdown_parser
from tasks.documents.model import OPENING as _OPENING
from tasks.documents.model import Document, Metadata, ReadOptions, Skipped, finish_document, skip


@dataclass
class _Block:
    """One readable or skipped block, in document order."""

    kind: str  # "heading", "para", "skip"
    text: str = ""
    level: int = 0  # headings: 1-6
    line: int = 0  # first source line (0-based)
    refs: list[int] = field(default_factory=list)  # footnote ids referred to
    what: str = ""  # skip: what it was
    words: int = 0
    warn: bool = False  # skip: also a warning in the run report
    source: str = ""  # skip: the text left out
    ledger: str = ""  # skip: the ledger's reason
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) left out of a paragraph


@dataclass
class _Parsed:
    blocks: list[_Block]
    notes: dict[int, list[str]]  # footnote id -> its paragraphs
    note_lines: list[int]  # first source lines of footnote definitions
    front: dict[str, Any] | None
    front_error: str | None
    tally: Tally  # over the whole document (footnote references are kept per block)
    lines: list[str]


def _words(text: str) -> int:
    return len(text.split())


def _inline_source_words(tokens: list[Token]) -> int:
    return sum(_words(t.content) for t in tokens if t.type == "inline")


def _parse(text: str, options: ReadOptions) -> _Parsed:
    """Walk markdown-it's block tokens once, collecting headings, paragraphs and what is skipped."""
    tokens = markdown_parser().parse(text)
    if tokens and tokens[0].type == "front_matter":
        try:
            is_mapping = isinstance(yaml.safe_load(tokens[0].content), dict)
        except yaml.YAMLError:
            is_mapping = True  # meant as YAML, but broken: not read, and warned about below
        if not is_mapping:  # "---" / text / "---": a rule and a setext heading, not front matter
            tokens = markdown_parser(front_matter=False).parse(text)
    blocks: list[_Block] = []
    notes: dict[int, list[str]] = {}
    note_lines: list[int] = []
    tally = Tally()
    front: dict[str, Any] | None = None
    front_error: str | None = None
    note_id: int | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        line = tok.map[0] if tok.map else 0
        if tok.type == "front_matter":
            try:
                loaded = yaml.safe_load(tok.content)
            except yaml.YAMLError as exc:
                loaded, front_error = None, str(exc).splitlines()[0]
            front = loaded if isinstance(loaded, dict) else None
            blocks.append(_Block("skip", what="front matter", words=_words(tok.content), line=line,
                                 source=tok.content, ledger="front matter"))
        elif tok.type == "heading_open":
            tally.refs = []
            start = len(tally.dropped)
            words = inline_words(tokens[i + 1], options, tally)
            blocks.append(_Block("heading", words, level=int(tok.tag[1:]), line=line, refs=tally.refs,
                                 dropped=tally.dropped[start:]))
            i += 2
        elif tok.type == "paragraph_open":
            refs = tally.refs = []
            start = len(tally.dropped)
            words = inline_words(tokens[i + 1], options, tally)
            if note_id is not None:
                if words:
                    notes.setdefault(note_id, []).append(words)
                    if tok.map:
                        note_lines.append(tok.map[0])
            elif words or len(tally.dropped) > start:
                blocks.append(_Block("para", words, line=line, refs=refs, dropped=tally.dropped[start:]))
            i += 2
        elif tok.type == "table_open":
            j = next(k for k in range(i, len(tokens)) if tokens[k].type == "table_close")
            rows = sum(1 for t in tokens[i:j] if t.type == "tr_open")
            cells = " ".join(t.content for t in tokens[i:j] if t.type == "inline")
            blocks.append(_Block("skip", what=f"table ({rows} rows)", words=_words(cells), line=line, warn=True,
                                 source=cells, ledger="table"))
            i = j
        elif tok.type == "math_block":
            blocks.append(_Block("skip", what="math", words=_words(tok.content), line=line, source=tok.content,
                                 ledger="formula"))
        elif tok.type in ("fence", "code_block"):
            info = f" ({tok.info.split()[0]})" if tok.info.strip() else ""
            blocks.append(_Block("skip", what=f"code block{info}", words=_words(tok.content), line=line,
                                 source=f"{tok.info} {tok.content}", ledger="code block"))
        elif tok.type == "html_block":
            dropped: list[tuple[str, str]] = []
            paragraphs = html_block_text(tok.content, options, dropped)
            if paragraphs is None:
                table = "<table" in tok.content.lower()
                unread = _html_words(tok.content)
                blocks.append(_Block("skip", what="HTML table" if table else "HTML block",
                                     words=_words(unread), line=line, warn=table, source=unread,
                                     ledger="table" if table else "HTML markup"))
            else:
                blocks.extend(_Block("para", p, line=line) for p in paragraphs)
                if dropped:
                    blocks.append(_Block("para", "", line=line, dropped=dropped))
        elif tok.type == "footnote_open":
            note_id = int(tok.meta["id"])
        elif tok.type == "footnote_close":
            note_id = None
        i += 1
    return _Parsed(blocks, notes, note_lines, front, front_error, tally, text.split("\n"))


_DROP_REASONS = {
    "repeated heading": "the title is spoken once",
    "template markup": "site template markup (Liquid / kramdown tags)",
    "HTML comment": "a comment for the site's editors, not text",
    "heading anchor": "a heading's link anchor, not its words",
    "formula": "mathematics is not read",
}


def _html_words(html: str) -> str:
    """The text of an HTML block that is not read (a table, a style sheet), comments included."""
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(html, "html.parser")
    comments = [str(c) for c in soup.find_all(string=lambda s: isinstance(s, Comment))]
    return " ".join([soup.get_text(" "), *comments])


def _chapter_level(headings: list[_Block]) -> tuple[int, list[_Block]]:
    """(chapter level, title headings): a level whose only heading comes before every other heading
    is a title level; the first level after those is the chapter level."""
    title_headings: list[_Block] = []
    remaining = list(headings)
    while remaining:
        top = min(h.level for h in remaining)
        at_top = [h for h in remaining if h.level == top]
        if len(at_top) == 1 and remaining[0] is at_top[0] and len(remaining) > 1:
            title_headings.append(at_top[0])
            remaining = remaining[1:]
            continue
        return top, title_headings
    return (title_headings[-1].level if title_headings else 1), title_headings[:-1]


def _front_metadata(front: dict[str, Any] | None) -> Metadata:
    def text(value: Any) -> str | None:
        return " ".join(str(value).split()) or None if isinstance(value, (str, int, float)) else None

    if not front:
        return Metadata()
    raw = front.get("authors", front.get("author"))
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    authors = tuple(
        name for name in (text(a.get("name")) if isinstance(a, dict) else text(a) for a in items) if name
    )
    return Metadata(
        title=text(front.get("title")),
        authors=authors,
        language=text(front.get("lang", front.get("language"))),
        description=text(front.get("description", front.get("abstract"))),
    )


def _same_words(a: str, b: str) -> bool:
    return re.sub(r"\W+", " ", a).strip().casefold() == re.sub(r"\W+", " ", b).strip().casefold()


def _notes_only(parsed: _Parsed, start: int, end: int) -> bool:
    """True when source lines [start, end) after a heading hold footnote definitions and nothing
    else that is read."""
    return any(start < n < end for n in parsed.note_lines) or any(
        parsed.lines[k].lstrip().startswith("[^") for k in range(start + 1, min(end, len(parsed.lines)))
    )


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """A .md file -> Document."""
    decoded = read_text(path)
    parsed = _parse(decoded.text, options)
    metadata = _front_metadata(parsed.front)
    warnings: list[str] = [decoded.warning] if decoded.warning else []
    if parsed.front_error:
        warnings.append(f"{path}: the front matter is not valid YAML ({parsed.front_error}); it was ignored")
    headings = [b for b in parsed.blocks if b.kind == "heading"]
    level, title_headings = _chapter_level(headings) if headings else (0, [])
    book_title = title_headings[0].text if title_headings else None
    if metadata.title is None and book_title:
        metadata = replace(metadata, title=book_title)
    opening = title_hint or metadata.title or book_title or (_OPENING if headings else path.stem)

    skipped: list[Skipped] = []
    found: list[tuple[str, list[str]]] = []
    chapter_refs: list[list[int]] = []
    title: str | None = None
    body: list[str] = []
    refs: list[int] = []
    titles = {id(b) for b in title_headings}
    starts = [k for k, b in enumerate(parsed.blocks) if b.kind == "heading" and b.level == level
              and id(b) not in titles]
    # per chapter heading: (the source line where its section ends, whether anything is read in it)
    sections = {
        k: (parsed.blocks[nxt].line if nxt < len(parsed.blocks) else len(parsed.lines),
            any(b.text or b.kind == "skip" for b in parsed.blocks[k + 1 : nxt]))
        for k, nxt in zip(starts, [*starts[1:], len(parsed.blocks)][: len(starts)], strict=True)
    }

    drops: dict[tuple[str, str], list[str]] = {}  # (chapter, kind) -> texts left out of its paragraphs

    def close() -> None:
        if title is None and not body:
            return
        if body and title and _same_words(body[0], title):
            drops.setdefault((title, "repeated heading"), []).append(body[0])
            del body[0]  # "## Chapter One" then "**Chapter One**": the title is spoken already
        found.append((title if title is not None else opening, body))
        chapter_refs.append(refs)

    for k, block in enumerate(parsed.blocks):
        where = title if title is not None else opening
        for kind, text in block.dropped:
            drops.setdefault((block.text if k in sections and block.text else where, kind), []).append(text)
        if k in sections:
            close()
            title, body, refs = block.text or f"Chapter {len(found) + 1}", [], list(block.refs)
            section_end, has_body = sections[k]
            if not has_body and _notes_only(parsed, block.line, section_end):
                skipped.append(skip("footnote", title, what=f"{title!r} heading",
                                    reason="it holds only footnote definitions"))
                title = None
            continue
        if block.kind == "heading" and (block.level < level or id(block) in titles):
            skipped.append(skip("title page", block.text, what=f"title heading {block.text!r}",
                                reason="the title is announced from the manifest"))
            continue
        if block.kind == "skip":
            skipped.append(skip(block.ledger or block.what, block.source, what=block.what,
                                reason="not read aloud", chapter=title))
            if block.warn:
                warnings.append(f"{path}: {block.what} in {title or 'the opening'!r} was not read")
            continue
        if block.text:
            body.append(block.text)
        refs.extend(block.refs)
    close()
    for (chapter, kind), texts in drops.items():
        what = {"formula": "inline formula", "template markup": "Liquid/kramdown tag"}.get(kind, kind)
        skipped.append(skip(kind, " ".join(texts), what=f"{len(texts)} {what}(s)", chapter=chapter,
                            reason=_DROP_REASONS.get(kind, "markup, not text")))
    _place_notes(parsed, found, chapter_refs, options, skipped)
    images = parsed.tally.images
    if images:
        skipped.append(skip(
            "image", "" if options.image_alt else " ".join(images), what=f"{len(images)} image(s)",
            reason="read as their alt text" if options.image_alt else "images are not read; set reading.image_alt "
            "to read their alt text",
        ))
    return finish_document(path, found, warnings, skipped=tuple(skipped), metadata=metadata, encoding=decoded.encoding)


def _place_notes(
    parsed: _Parsed, found: list[tuple[str, list[str]]], chapter_refs: list[list[int]],
    options: ReadOptions, skipped: list[Skipped],
) -> None:
    """Footnotes: appended to the chapter that first refers to them ("Footnote 1: ..."), or skipped."""
    if not parsed.notes:
        return
    if options.notes == "skip":
        text = " ".join(p for ps in parsed.notes.values() for p in ps)
        skipped.append(skip("footnote", text, what=f"{len(parsed.notes)} footnote(s)", reason="footnotes are not "
                            "read; set reading.notes: end to read them at the end of their chapter"))
        return
    placed: set[int] = set()
    for (_, body), refs in zip(found, chapter_refs, strict=True):
        for note in refs:
            if note in placed or note not in parsed.notes:
                continue
            placed.add(note)
            first, *more = parsed.notes[note]
            body.append(f"Footnote {note + 1}: {first}")
            body.extend(more)

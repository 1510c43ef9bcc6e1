"""Plain text (.txt) -> chapters of paragraphs.

    read(path, *, title_hint, options) -> Document
    paragraphs_from_text(text)         -> tuple of paragraphs

Paragraphs are separated by blank lines; hard-wrapped lines are joined. A Project Gutenberg text
loses its header, footer and licence (tasks.documents.gutenberg); the "Produced by" lines, a stray
"cover" line, the title block ("Title" / "by Author") and an edition note before the first heading
go too, and so does a Contents list anywhere (its entries are not chapters; what a paragraph is:
tasks.documents.plain_blocks). Chapter headings are
found by tasks.documents.headings; `BOOK ONE` / `PART II` headings are folded into the titles of the
chapters under them through ReadOptions.part_titles. `[Illustration: ...]` markers are dropped (or
read as their caption with ReadOptions.image_alt), `_italic_` and `*emphasis*` marks removed.
`[Footnote 1: ...]` blocks are skipped or read at the end of their chapter (ReadOptions.notes);
their `[1]` reference marks are never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from tasks.documents.brackets import bracket_markup
from tasks.documents.files import read_text
from tasks.documents.gutenberg import split_gutenberg
from tasks.documents.headings import Heading, classify_heading, heading_key, tidy_title
from tasks.documents.model import OPENING as _OPENING
from tasks.documents.model import Document, Metadata, ReadOptions, Skipped, finish_document, skip
from tasks.documents.plain_blocks import (
    CONTENTS_RE,
    contents_end,
    heading_line,
    index_follows,
    is_table,
    title_block,
    title_line,
)

_BLANK_LINE_RE = re.compile(r"\n[ \t\f\v]*\n")
_INDEX_RE = re.compile(r"^index\.?$", re.IGNORECASE)
_NOTE_DEF_RE = re.compile(r"^\[(\d{1,3}|[A-Z]|\*)\][ \t]+(?=\S)")  # " [1] Proc. Royal Irish Academy, ..."
_YEAR_RE = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)\b")
_PRODUCED_RE = re.compile(
    r"^(?:produced[ \t]+by|this[ \t]+e-?(?:text|book)[ \t]+was[ \t]+(?:produced|prepared|created)"
    r"|e-?(?:text|book)[ \t]+(?:prepared|produced)[ \t]+by|transcribed[ \t]+(?:from|by)"
    r"|\[?transcriber['\u2019]?s[ \t]+notes?)\b",
    re.IGNORECASE,
)
_FOOTNOTE_RE = re.compile(r"^\[(?:Footnote|Note)[ \t]*([\w*]{0,10})[ \t]*:[ \t]*", re.IGNORECASE)
_NOTE_REF_RE = re.compile(r"\[(?:\d{1,3}|[A-Z]|\*)\]")  # "text.[1]": a PG footnote reference
_COVER_RE = re.compile(r"^\[?(?:cover|cover image|front cover)\]?$", re.IGNORECASE)
_EDITION_RE = re.compile(
    r"\b(?:produced|digiti[sz]\w*|transcri\w+|proof-?read\w*|scann\w+|e-?text|e-?book|public domain|"
    r"copyright|edition)\b",
    re.IGNORECASE,
)
# Bounded spans keep these linear on long paragraphs full of unmatched marks.
_UNDERSCORE_RE = re.compile(r"(?<![\w_])_(?=[^\s_])([^_]{1,500}?)(?<=[^\s_])_(?![\w_])", re.DOTALL)
_STAR_RE = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*]{1,500}?)(?<=[^\s*])\*(?![\w*])", re.DOTALL)
_BREAK_RE = re.compile(r"^[\s*\-_~=#.\u2022\u00b7]{3,}$")  # "* * *", "-----": a scene break


def paragraphs_from_text(text: str) -> tuple[str, ...]:
    """Split text at blank lines into paragraphs; line breaks inside a paragraph become spaces.

    Whitespace runs collapse to one space; empty paragraphs are dropped.
    """
    out = (" ".join(block.split()) for block in _BLANK_LINE_RE.split(text.replace("\r\n", "\n")))
    return tuple(p for p in out if p)


def _blocks(text: str) -> tuple[list[list[str]], list[bool]]:
    """Paragraphs as lists of stripped lines, and for each whether all its lines were indented. A
    chapter heading line inside a paragraph ("Cambridge, November, 1919." / "CHAPTER I") starts a
    paragraph of its own."""
    blocks: list[list[str]] = []
    indented: list[bool] = []
    current: list[str] = []
    indent = True

    def close() -> None:
        nonlocal current, indent
        if current:
            blocks.append(current)
            indented.append(indent)
        current, indent = [], True

    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            close()
            continue
        if current and heading_line(stripped) and (len(current[-1]) <= 60 or current[-1][-1:] in ".!?"):
            close()
        current.append(stripped)
        indent = indent and line[:1] in (" ", "\t")
    close()
    return blocks, indented


def _words(lines: list[str] | str) -> int:
    return len((lines if isinstance(lines, str) else " ".join(lines)).split())


@dataclass
class _Reader:
    """Walks the paragraphs of a text once, building chapters and the list of what was skipped."""

    options: ReadOptions
    title_keys: frozenset[str]
    gutenberg: bool
    found: list[tuple[str, list[str]]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    title: str | None = None  # the current chapter's title (None: text before the first heading)
    part: str | None = None
    part_pending: bool = False  # a part heading with no chapter under it yet
    body: list[str] = field(default_factory=list)
    heading: str | None = None  # the current chapter's own heading (without its part)
    note_refs: bool = False  # the text has footnotes, so "[1]" marks are references
    notes: list[str] = field(default_factory=list)  # the current chapter's footnotes
    drops: dict[tuple[str | None, str], list[str]] = field(default_factory=dict)  # (chapter, kind) -> texts

    def skip(self, what: str, reason: str, lines: list[str] | str, keep: str | None = None, *,
             kind: str = "") -> bool:
        """Record a skipped part; True unless ReadOptions.keep asks for it to be read."""
        if keep is not None and keep in self.options.keep:
            return False
        text = lines if isinstance(lines, str) else "\n".join(lines)
        self.skipped.append(skip(kind or what, text, what=what, reason=reason, chapter=self.title))
        return True

    def drop(self, kind: str, text: str) -> None:
        """A span left out of a paragraph (a page number, a footnote marker): counted per chapter."""
        key = (self.title, kind)
        self.drops.setdefault(key, []).append(text)

    def note(self, label: str, text: str, source: str = "") -> None:
        """A footnote ("[Footnote 1: ...]" block, or a " [1] ..." definition): kept for the chapter's
        end as "Footnote 1: ...", or counted as skipped."""
        text = " ".join(text.split())
        if self.options.notes == "end" and text:
            self.notes.append(f"Footnote {label}: {text}" if label else f"Footnote: {text}")
        else:
            self.drop("footnote", source or f"{label} {text}")

    def close(self) -> None:
        self.body.extend(self.notes)
        self.notes = []
        if self.title is not None or self.body:
            title = self.title if self.title is not None else _OPENING
            self.found.append((title, self.body))
        self.body = []

    def start(self, heading: Heading) -> None:
        if heading.kind == "part":
            if self.part_pending and not self.body:
                self.title = None  # a part heading straight after another: the first had no text
            self.close()
            self.part, self.title, self.part_pending = heading.title, heading.title, True
            self.heading = heading.title
            return
        if not (self.part_pending and not self.body):
            self.close()
        self.part_pending = False
        self.heading = heading.title
        self.title = (
            self.options.part_titles.format(part=self.part, chapter=heading.title)
            if self.part is not None else heading.title
        )

    def paragraph(self, lines: list[str]) -> None:
        text, dropped = bracket_markup("\n".join(lines), image_alt=self.options.image_alt)
        for kind, span in dropped:
            self.drop(kind, span)
        if self.note_refs:

            def marker(m: re.Match[str]) -> str:
                self.drop("footnote marker", m.group(0))
                return ""

            text = _NOTE_REF_RE.sub(marker, text)
        text = _STAR_RE.sub(r"\1", _UNDERSCORE_RE.sub(r"\1", text))
        text = " ".join(text.split())
        if not self.body and self.heading:
            key, heading = heading_key(text), heading_key(self.heading)
            if key == heading or (len(key.split()) >= 2 and heading.endswith(" " + key)):
                self.drop("repeated heading", text)
                return  # the heading repeated as the chapter's first line: the title is spoken already
        if text:
            self.body.append(text)


def _read_blocks(blocks: list[list[str]], indented: list[bool], reader: _Reader) -> None:
    """The body of a text, paragraph by paragraph."""
    headings = [classify_heading(b) for b in blocks]
    reader.note_refs = any(_FOOTNOTE_RE.match(b[0]) or _NOTE_DEF_RE.match(b[0]) for b in blocks)
    # bare numerals ("II.") are chapters only in a text without numbered chapter headings
    numbered_sections = not any(h and h.kind == "chapter" and h.numbered for h in headings)
    front = True  # before the first heading or paragraph read: title block, cover, edition notes
    i = 0
    while i < len(blocks):
        block, heading = blocks[i], headings[i]
        first = " ".join(block[0].split())
        if _PRODUCED_RE.match(first) and reader.skip(
            f"'{first[:60]}'", "a producer's or transcriber's note", block, "imprint",
            kind="transcriber's note" if "transcriber" in first.lower() else "producer's note",
        ):
            i += 1
            continue
        note = _FOOTNOTE_RE.match(first)
        if note:
            end = i
            while not blocks[end][-1].endswith("]") and end + 1 < min(len(blocks), i + 20):
                end += 1  # a note of several paragraphs closes its bracket in the last one
            text = "\n\n".join("\n".join(b) for b in blocks[i : end + 1])
            reader.note(note.group(1), _FOOTNOTE_RE.sub("", text, count=1).removesuffix("]"), text)
            i = end + 1
            continue
        definition = _NOTE_DEF_RE.match(first)
        if definition and heading is None and _words(block) <= 120:
            reader.note(definition.group(1), " ".join(block)[definition.end():])
            i += 1
            continue
        if heading is None and len(block) == 1 and reader.title_keys and heading_key(first) in reader.title_keys \
                and not front and reader.skip("title", "the book's title repeated (a half-title)", block,
                                              "halftitle", kind="title page"):
            i += 1
            continue
        if front and heading is None:
            if len(block) == 1 and _COVER_RE.match(first) and reader.skip(
                "'cover'", "an image placeholder", block, kind="image"
            ):
                i += 1
                continue
            span = title_block(blocks, i, reader.title_keys, reader.gutenberg)
            if span and reader.skip(
                "title block", "the title and author are announced from the manifest",
                [line for b in blocks[i : i + span] for line in b], "titlepage", kind="title page",
            ):
                i += span
                continue
            if reader.gutenberg and _EDITION_RE.search(" ".join(block)) and _words(block) <= 150 and reader.skip(
                "edition note", "notes on the digital edition, not the book", block, "imprint", kind="edition note"
            ):
                i += 1
                continue
        if CONTENTS_RE.match(first):
            end = contents_end(blocks, headings, indented, i, reader.title_keys)
            lines = [line for b in blocks[i:end] for line in b]
            if not reader.skip("Contents list", f"a table of contents ({len(lines) - 1} entries)", lines, "toc",
                               kind="contents"):
                for kept in blocks[i:end]:  # read as it stands: its entries are still not chapters
                    reader.paragraph(kept)
            i = end
            continue
        if _INDEX_RE.match(first) and len(block) == 1 and index_follows(blocks, i):
            lines = [line for b in blocks[i:] for line in b]
            if reader.skip("Index", "the book's index", lines, "toc", kind="index"):
                break
        if heading is not None and heading.kind == "section" and not numbered_sections:
            reader.drop("section number", first)
            i += 1  # "II." inside a story: a section break, not a chapter (and not read)
            continue
        if heading is not None:
            front = False
            reader.start(heading)
            rest = block[heading.lines :]
            if not heading.has_title and not rest and i + 1 < len(blocks) and title_line(blocks[i + 1], headings[i + 1]):
                nxt = blocks[i + 1][0]
                # "CHAPTER I" / blank / "THE TITLE": a title line in capitals standing alone; a second
                # one ("THE SECOND TALE" / "THE RIVER'S SONG") joins it as a sentence of its own
                second = i + 2 < len(blocks) and title_line(blocks[i + 2], headings[i + 2], second=True) and (
                    i + 3 >= len(blocks) or not title_line(blocks[i + 3], headings[i + 3]))
                parts = [nxt] + ([blocks[i + 2][0]] if second else [])
                title = ". ".join(p.rstrip(".") for p in parts)  # two title lines: two sentences
                retitled = classify_heading([block[0], title])
                if retitled is not None and not retitled.has_title:
                    retitled = replace(retitled, title=f"{retitled.title}: {tidy_title(title)}", has_title=True)
                if retitled is not None:
                    _retitle(reader, retitled)
                    i += 3 if second else 2
                    continue
            if rest:
                reader.paragraph(rest)
            i += 1
            continue
        if _BREAK_RE.match(" ".join(block)):
            i += 1
            continue
        if is_table(blocks, i):
            end = i + 1
            while end < len(blocks) and is_table(blocks, end):
                end += 1
            reader.skip("a table", "tables are not read aloud", [line for b in blocks[i:end] for line in b], kind="table")
            i = end
            continue
        reader.paragraph(block)
        front = False
        i += 1
    reader.close()


def _retitle(reader: _Reader, heading: Heading) -> None:
    """Give the chapter (or part) just started the fuller title of a heading and its title line."""
    reader.heading = heading.title
    if heading.kind == "part":
        reader.part = reader.title = heading.title
    else:
        reader.title = (
            reader.options.part_titles.format(part=reader.part, chapter=heading.title)
            if reader.part is not None else heading.title
        )


_DROPS = {  # kind -> (what, reason) of the spans left out of paragraphs, counted per chapter
    "footnote": ("{n} footnote(s)", "footnotes are not read; set reading.notes: end to read them at the end of their "
                 "chapter"),
    "footnote marker": ("{n} footnote marker(s)", "a footnote's number in the text is not read"),
    "image": ("{n} illustration marker(s)", "images are not read"),
    "page number": ("{n} page number(s)", "page numbers of the printed book are not read"),
    "transcriber's note": ("{n} transcriber's note(s)", "notes on the digital edition, not the book"),
    "markup label": ("{n} sidenote label(s)", "the sidenote's text is read, not its label"),
    "repeated heading": ("heading repeated", "the heading repeated as the chapter's first line is spoken once"),
    "section number": ("{n} section number(s)", "section numbers inside a chapter are breaks, not words"),
}


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """A .txt file -> Document."""
    decoded = read_text(path)
    text = decoded.text
    pg = split_gutenberg(text)
    skipped: list[Skipped] = []
    found: list[tuple[str, list[str]]] = []
    metadata = Metadata()
    if pg is not None:
        metadata = Metadata(title=pg.title, authors=pg.authors)
        if pg.header.strip():
            if "header" in options.keep:
                found.append(("Project Gutenberg Header", list(paragraphs_from_text(pg.header))))
            else:
                skipped.append(skip("licence", pg.header, what="Project Gutenberg header",
                                    reason="publisher boilerplate; add 'header' to reading.keep to read it"))
        text = pg.body
    keys = frozenset(k for k in (heading_key(t) for t in (title_hint, metadata.title) if t) if k)
    reader = _Reader(options=options, title_keys=keys, gutenberg=pg is not None)
    _read_blocks(*_blocks(text), reader)
    found.extend(reader.found)
    skipped.extend(reader.skipped)
    for (chapter, kind), texts in reader.drops.items():
        what, reason = _DROPS.get(kind, (kind, kind))
        count = len(texts)
        skipped.append(skip(kind, " ".join(texts), what=what.format(n=count), chapter=chapter, reason=(
            reason + ("" if kind != "image" or options.image_alt else "; set reading.image_alt to read their captions")
        )))
    if pg is not None and pg.footer.strip():
        if "license" in options.keep:
            found.append(("Project Gutenberg License", list(paragraphs_from_text(pg.footer))))
        else:
            skipped.append(skip("licence", pg.footer, what="Project Gutenberg footer and licence",
                                reason="publisher boilerplate; add 'license' to reading.keep to read it"))
    if title_hint and found and found[0][0] == _OPENING:
        found[0] = (title_hint, found[0][1])
    if len(found) == 1 and found[0][0] == _OPENING:
        found[0] = (title_hint or path.stem, found[0][1])
    return finish_document(path, found, [decoded.warning] if decoded.warning else [], skipped=tuple(skipped),
                           metadata=metadata, encoding=decoded.encoding)
